#include "runtime/trace.h"

#include <ATen/ATen.h>

#include <stdexcept>

namespace loom::runtime {

const at::Tensor& TraceResult::at(const std::string& name) const {
  for (const auto& nt : saved) {
    if (nt.name == name) return nt.tensor;
  }
  throw std::out_of_range("loom: no saved value named \"" + name + "\"");
}

ModuleRef Invoke::module(const std::string& path) const { return trace_->module(path, index_); }

LocalTrace::LocalTrace(Model& model) : Builder(0), model_(model) {}

LocalTrace::LocalTrace(Model& model, std::vector<at::Tensor> inputs) : Builder(0), model_(model) {
  invoke(std::move(inputs));
}

Invoke LocalTrace::invoke(std::vector<at::Tensor> inputs) {
  std::vector<c10::IValue> in(inputs.begin(), inputs.end());
  inputs_.push_back(std::move(in));
  return Invoke(this, static_cast<int32_t>(add_invoke()));
}

void LocalTrace::on_stream(const std::string& name, std::function<at::Tensor(const at::Tensor&)> fn) {
  streams_[name] = tensor_stream_fn(std::move(fn));
}

Result<TraceResult> LocalTrace::run() {
  if (inputs_.empty()) return invalid_argument("the trace has no inputs: pass them to the constructor or invoke()");
  ExecOptions options = options_;
  if (!streams_.empty()) options.on_stream = local_stream_handler(streams_);
  LOOM_ASSIGN_OR_RETURN(RunOutput out, execute(model_, graph(), inputs_, options));
  TraceResult result;
  result.saved = std::move(out.saved);
  result.stopped_early = out.stopped_early;
  return result;
}

}  // namespace loom::runtime
