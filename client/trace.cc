#include "client/trace.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <limits>

#include "graph/validate.h"
#include "runtime/generate.h"
#include "runtime/tensor_data.h"

namespace loom::client {


ModuleRef TraceInvoke::module(const std::string& path) const { return trace_->module(path, index_); }

Trace RemoteModel::trace(std::vector<at::Tensor> inputs) const { return Trace(*this, std::move(inputs)); }

Trace::Trace(std::vector<at::Tensor> inputs) : Builder(0) {
  if (!inputs.empty()) invoke(std::move(inputs));
}

Trace::Trace(runtime::Model& local_model, std::vector<at::Tensor> inputs) : Trace(std::move(inputs)) {
  local_ = &local_model;
}

Trace::Trace(const RemoteModel& remote_model, std::vector<at::Tensor> inputs) : Trace(std::move(inputs)) {
  remote_ = remote_model;
}

TraceInvoke Trace::invoke(std::vector<at::Tensor> inputs) {
  inputs_.push_back(std::move(inputs));
  return TraceInvoke(this, static_cast<int32_t>(add_invoke()));
}

void Trace::on_stream(const std::string& name, std::function<at::Tensor(const at::Tensor&)> fn) {
  streams_[name] = runtime::tensor_stream_fn(std::move(fn));
}

RunOptions Trace::with_streams(const RunOptions& options) const {
  RunOptions o = options;
  for (const auto& [name, fn] : streams_) o.streams.emplace(name, fn);
  return o;
}

void Trace::check_stream_handlers(const std::map<std::string, runtime::StreamFn>& client_handlers,
                                  const RunOptions& options) const {
  const graph::Graph& g = graph();
  for (uint32_t i = 0; i < g.nodes.size(); ++i) {
    const graph::Node& n = g.nodes[i];
    if (n.kind != graph::NodeKind::kStream) continue;
    if (options.streams.count(n.name) || streams_.count(n.name) || client_handlers.count(n.name)) continue;
    throw ValidationError(graph::describe_node(g, i) + ": no handler is registered for stream callback \"" + n.name +
                          "\" (Trace::on_stream, Client::on_stream or RunOptions::streams)");
  }
}

const RemoteModel& Trace::remote_or_throw() const {
  if (!remote_) {
    throw LoomError(StatusCode::kFailedPrecondition,
                    "this trace has no remote model: create it with client.model(KEY).trace(...) or call "
                    "set_remote_model() (or run it locally: {.remote = false})");
  }
  return *remote_;
}

runtime::TraceResult Trace::run(const RunOptions& options) {
  if (!options.remote) return run_local(options);
  Client& client = remote_or_throw().client();
  check_stream_handlers(client.stream_handlers(), options);
  return client.run_blocking(request(options), with_streams(options));
}

graph::ScanReport Trace::scan(const RunOptions& options) {
  if (options.generation) throw ValidationError("a scan runs forward traces: scan the trace without the generation");
  if (options.remote) return remote_or_throw().client().scan(request(options));
  if (local_ == nullptr) {
    throw LoomError(StatusCode::kFailedPrecondition,
                    "this trace has no local model: construct it with a runtime::Model or call set_local_model() "
                    "(or scan it on the server: {.remote = true})");
  }
  if (inputs_.empty()) throw ValidationError("the trace has no inputs: pass them to the constructor or invoke()");
  std::vector<std::vector<c10::IValue>> in;
  for (const auto& invoke : inputs_) in.emplace_back(invoke.begin(), invoke.end());
  auto report = runtime::scan_report(*local_, graph(), in, local_options_);
  if (!report.ok()) throw_status(report.status());
  return std::move(report).value();
}

std::string Trace::submit(const RunOptions& options) {
  return remote_or_throw().client().submit(request(options));
}

AsyncRun Trace::run_async(const RunOptions& options) {
  Client& client = remote_or_throw().client();
  check_stream_handlers(client.stream_handlers(), options);
  return client.run_async(request(options), with_streams(options));
}

runtime::TraceResult Trace::run_local(const RunOptions& options) {
  if (local_ == nullptr) {
    throw LoomError(StatusCode::kFailedPrecondition,
                    "this trace has no local model: construct it with a runtime::Model or call set_local_model() "
                    "(or run it on the server: {.remote = true})");
  }
  if (inputs_.empty()) throw ValidationError("the trace has no inputs: pass them to the constructor or invoke()");
  runtime::ExecOptions eo = local_options_;
  if (options.timeout.count() > 0) eo.limits.max_wall_time = std::min(eo.limits.max_wall_time, options.timeout);
  check_stream_handlers({}, options);
  std::map<std::string, runtime::StreamFn> streams = with_streams(options).streams;
  if (!streams.empty()) eo.on_stream = runtime::local_stream_handler(std::move(streams));
  if (options.on_log) {
    LogCallback log = options.on_log;
    eo.on_log = [log](const std::string& text, const c10::IValue& v) { log(text, runtime::log_summary(v)); };
  }
  Status valid = runtime::validate_for_model(graph(), *local_, eo.limits.graph);
  if (!valid.ok()) throw ValidationError(valid.message(), valid.code());

  std::vector<std::vector<c10::IValue>> in;
  for (const auto& invoke : inputs_) in.emplace_back(invoke.begin(), invoke.end());
  Result<runtime::RunOutput> out = invalid_argument("not run");
  if (options.generation) {
    auto* lm = dynamic_cast<runtime::CausalLm*>(local_);
    if (lm == nullptr) {
      throw ValidationError("generation needs a language model with a KV cache (GPT-2 or the Llama family); this "
                            "model is a " + local_->kind());
    }
    runtime::TokenHandler on_token;
    if (options.on_token) {
      TokenCallback cb = options.on_token;
      on_token = [cb](const runtime::TokenStep& s) {
        cb(TokenEvent{s.step, s.tokens, static_cast<int64_t>(s.elapsed_s * 1000)});
      };
    }
    out = runtime::generate(*lm, graph(), in, eo, *options.generation, on_token);
    if (!out.ok() && out.status().code() == StatusCode::kInvalidArgument) {
      Status s = options.generation->check(lm->vocab_size());
      if (!s.ok()) throw ValidationError(s.message(), s.code());
    }
  } else {
    out = runtime::execute(*local_, graph(), in, eo);
  }
  if (!out.ok()) {
    if (out.status().code() == StatusCode::kCancelled) throw CancelledError(out.status().message());
    throw ExecutionError(out.status().code(), out.status().message());
  }
  runtime::TraceResult result;
  result.saved = std::move(out->saved);
  result.stopped_early = out->stopped_early;
  return result;
}

transport::JobRequest Trace::request(const RunOptions& options) const {
  const RemoteModel& model = remote_or_throw();
  if (inputs_.empty()) throw ValidationError("the trace has no inputs: pass them to the constructor or invoke()");
  const graph::Graph& g = graph();
  graph::ValidateOptions vo;
  vo.module_paths = &model.module_paths();
  Status valid = graph::validate(g, vo);
  if (!valid.ok()) {
    throw ValidationError("model \"" + model.key() + "\" on the server: " + valid.message(), valid.code());
  }
  transport::JobRequest req;
  req.model_key = model.key();
  req.graph = g;
  for (size_t i = 0; i < inputs_.size(); ++i) {
    std::vector<graph::TensorData> invoke;
    for (size_t j = 0; j < inputs_[i].size(); ++j) {
      auto td = runtime::to_tensor_data(inputs_[i][j]);
      if (!td.ok()) {
        throw ValidationError("input " + std::to_string(j) + " of invoke " + std::to_string(i) + ": " +
                              td.status().message());
      }
      invoke.push_back(std::move(td).value());
    }
    req.invokes.push_back(std::move(invoke));
  }
  req.callback_url = options.callback_url;
  req.request_id = options.request_id;
  req.no_cache = options.no_cache;
  req.wall_time_ms = options.wall_time_ms;
  if (options.generation) {
    Status s = options.generation->check();
    if (!s.ok()) throw ValidationError(s.message(), s.code());
    req.generation = options.generation;
  }
  req.stream_timeout_ms = static_cast<uint32_t>(
      std::clamp<int64_t>(options.stream_timeout.count(), 1, std::numeric_limits<uint32_t>::max()));
  return req;
}

}  // namespace loom::client
