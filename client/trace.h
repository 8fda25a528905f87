// loom::client::Trace: one trace that runs locally or on a loom-server.
//
//   loom::client::Client client;                          // LOOM_HOST, LOOM_API_KEY
//   auto gpt2 = client.model("gpt2");                     // module tree fetched
//   auto tr = gpt2.trace({ids});                          // one invoke
//   tr.module("transformer.h.3").output(0).save("h3");
//   auto remote = tr.run({.remote = true});               // blocks, live status line
//
//   auto local_model = loom::runtime::load_model("gpt2/").value();
//   tr.set_local_model(*local_model);
//   auto local = tr.run();                                // same graph, same inputs, here
//
// The graph and inputs are the same either way; both run paths execute the
// same runtime code, so the saved tensors are bitwise identical on the same
// device. Several invokes batch into one forward pass, as with
// runtime::LocalTrace (invoke()).
//
// run() throws the typed exceptions of remote/errors.h in both modes:
// ValidationError (naming the node) before anything runs, ExecutionError
// (local) or RemoteError (remote) when the run fails.
// Thread safety: one thread; the local model and the RemoteModel's Client
// must outlive the trace.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "client/client.h"
#include "graph/builder.h"
#include "runtime/execute.h"
#include "runtime/trace.h"

namespace loom::client {

class Trace;

// One batch group of a Trace: its hook points see only its rows.
class TraceInvoke {
 public:
  TraceInvoke(Trace* trace, int32_t index) : trace_(trace), index_(index) {}
  ModuleRef module(const std::string& path) const;
  HookPoint output(int32_t element = -1) const { return module("").output(element); }
  HookPoint input(int32_t arg = 0) const { return module("").input(arg); }
  int32_t index() const { return index_; }

 private:
  Trace* trace_;
  int32_t index_;
};

class Trace : public Builder {
 public:
  // Non-empty inputs make the first invoke; more come with invoke().
  explicit Trace(std::vector<at::Tensor> inputs = {});
  Trace(runtime::Model& local_model, std::vector<at::Tensor> inputs = {});
  Trace(const RemoteModel& remote_model, std::vector<at::Tensor> inputs = {});

  TraceInvoke invoke(std::vector<at::Tensor> inputs);

  // Where run() goes: the local model (remote = false) or the server's.
  void set_local_model(runtime::Model& model) { local_ = &model; }
  void set_remote_model(const RemoteModel& model) { remote_ = model; }

  // The callback for stream nodes named `name`, local and remote alike
  // (remote: it runs here while the server waits; see Client).
  void on_stream(const std::string& name, std::function<at::Tensor(const at::Tensor&)> fn);
  // The same for named sets of tensors (tuples; runtime/stream_value.h).
  void on_stream_set(const std::string& name, runtime::StreamFn fn) { streams_[name] = std::move(fn); }
  // Local runs: limits and the rest of the executor's options.
  runtime::ExecOptions& local_options() { return local_options_; }

  // Runs the trace and returns its saved values (in save order).
  runtime::TraceResult run(const RunOptions& options = {});
  // Runs it on shapes only (meta tensors: no data, no weight read): every
  // node's shape and dtype, the saves, and estimates of its memory and
  // device time. Errors that need shapes (a set or skip of the wrong shape)
  // throw ValidationError before anything runs or is queued. Remote: POST
  // /v1/jobs?scan=1, answered at once. Forward traces (no generation).
  graph::ScanReport scan(const RunOptions& options = {});
  // Remote: submits and returns the job ID at once (`Client::wait`,
  // `Client::result` or `Client::attach` pick it up later).
  std::string submit(const RunOptions& options = {});
  // Remote, on a background thread (see Client::run_async).
  AsyncRun run_async(const RunOptions& options = {});

  // What a remote run sends. Checks the graph against the remote model's
  // module tree first (ValidationError naming the node).
  transport::JobRequest request(const RunOptions& options = {}) const;

 private:
  runtime::TraceResult run_local(const RunOptions& options);
  const RemoteModel& remote_or_throw() const;

  runtime::Model* local_ = nullptr;
  std::optional<RemoteModel> remote_;
  std::vector<std::vector<at::Tensor>> inputs_;  // per invoke
  // RunOptions with this trace's stream callbacks added (the options' win).
  RunOptions with_streams(const RunOptions& options) const;
  // ValidationError naming a stream node that no callback will answer.
  void check_stream_handlers(const std::map<std::string, runtime::StreamFn>& client_handlers,
                             const RunOptions& options) const;

  std::map<std::string, runtime::StreamFn> streams_;
  runtime::ExecOptions local_options_;
};

}  // namespace loom::client
