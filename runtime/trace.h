// The runtime's internal tracing API: a Builder bound to a loaded model and
// its inputs, returning Result<> instead of throwing. Users trace with
// loom::client::Trace (client/trace.h), which runs the same graph locally or
// on a loom-server; this class stays for the runtime's own tests and for
// loom-trace, which need no client library.
//
//   auto model = loom::runtime::load_model("gpt2-tiny/").value();
//   loom::runtime::LocalTrace tr(*model, {input_ids});
//   tr.module("transformer.h.0").output(0).save("h0");
//   auto result = tr.run();           // Result<TraceResult>
//   at::Tensor h0 = result->at("h0");
//
// Several invokes batch into one forward pass:
//   LocalTrace tr(*model);
//   auto a = tr.invoke({ids_a});      // an Invoke: .module(path) sees its rows
//   auto b = tr.invoke({ids_b});
//   b.module("transformer.h.1").output(0).set(a.module("transformer.h.1").output(0));
//
// Thread safety: one thread; the model must outlive the trace.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

#include "graph/builder.h"
#include "runtime/execute.h"
#include "runtime/stream_value.h"

namespace loom::runtime {

struct TraceResult {
  std::vector<NamedTensor> saved;  // in save order
  bool stopped_early = false;
  // The saved tensor `name`; throws std::out_of_range when there is none.
  const at::Tensor& at(const std::string& name) const;
};

class LocalTrace;

// One batch group of a trace: its hook points see only its rows.
class Invoke {
 public:
  Invoke(LocalTrace* trace, int32_t index) : trace_(trace), index_(index) {}
  ModuleRef module(const std::string& path) const;
  HookPoint output(int32_t element = -1) const { return module("").output(element); }
  int32_t index() const { return index_; }

 private:
  LocalTrace* trace_;
  int32_t index_;
};

class LocalTrace : public Builder {
 public:
  explicit LocalTrace(Model& model);  // add inputs with invoke()
  LocalTrace(Model& model, std::vector<at::Tensor> inputs);  // one invoke

  Invoke invoke(std::vector<at::Tensor> inputs);
  // Registers the callback for stream nodes named `name` (runs in-process).
  void on_stream(const std::string& name, std::function<at::Tensor(const at::Tensor&)> fn);
  // The same for named sets of tensors (tuples; runtime/stream_value.h).
  void on_stream_set(const std::string& name, StreamFn fn) { streams_[name] = std::move(fn); }
  void on_log(LogHandler fn) { options_.on_log = std::move(fn); }
  ExecOptions& options() { return options_; }

  Result<TraceResult> run();

 private:
  Model& model_;
  std::vector<std::vector<c10::IValue>> inputs_;
  std::map<std::string, StreamFn> streams_;
  ExecOptions options_;
};

}  // namespace loom::runtime
