#include "runtime/execute.h"

#include <ATen/ATen.h>

#include <chrono>
#include <set>

#include "graph/edits.h"
#include "runtime/interleaver.h"
#include "runtime/ops.h"
#include "runtime/tensor_data.h"

namespace loom::runtime {
namespace {

// Concatenates the invokes' inputs position by position along dim 0.
Result<std::vector<c10::IValue>> batch_inputs(const std::vector<std::vector<c10::IValue>>& invokes,
                                              std::vector<int64_t>& rows) {
  if (invokes.size() == 1) {
    const auto& in = invokes[0];
    rows.push_back(!in.empty() && in[0].isTensor() && in[0].toTensor().dim() > 0 ? in[0].toTensor().size(0) : 1);
    return in;
  }
  const size_t positions = invokes[0].size();
  for (size_t i = 0; i < invokes.size(); ++i) {
    if (invokes[i].size() != positions) {
      return invalid_argument("invoke " + std::to_string(i) + " has " + std::to_string(invokes[i].size()) +
                              " inputs but invoke 0 has " + std::to_string(positions));
    }
  }
  std::vector<c10::IValue> out;
  for (size_t p = 0; p < positions; ++p) {
    std::vector<at::Tensor> parts;
    for (size_t i = 0; i < invokes.size(); ++i) {
      const c10::IValue& v = invokes[i][p];
      if (!v.isTensor() || v.toTensor().dim() == 0) {
        return invalid_argument("invoke " + std::to_string(i) + " input " + std::to_string(p) +
                                ": batching several invokes needs tensors with a batch dimension");
      }
      int64_t r = v.toTensor().size(0);
      if (p == 0) {
        rows.push_back(r);
      } else if (r != rows[i]) {
        return invalid_argument("invoke " + std::to_string(i) + " input " + std::to_string(p) + " has " +
                                std::to_string(r) + " rows but its input 0 has " + std::to_string(rows[i]));
      }
      parts.push_back(v.toTensor());
    }
    try {
      out.emplace_back(at::cat(parts, 0));
    } catch (const c10::Error& e) {
      return invalid_argument("input " + std::to_string(p) + ": the invokes' tensors cannot be batched: " +
                              e.what_without_backtrace());
    }
  }
  return out;
}

// The graph with the model's persistent edits in front; nullopt when it has none.
Result<std::optional<graph::Graph>> with_edits(const Model& model, const graph::Graph& graph) {
  if (model.edits() == nullptr) return std::optional<graph::Graph>();
  LOOM_ASSIGN_OR_RETURN(graph::Graph edited, graph::apply_edit(*model.edits(), graph));
  return std::optional<graph::Graph>(std::move(edited));
}

// Batches each trace's invokes into its forward pass's inputs (one pass
// unless the graph is a session); `rows` gets every invoke's row count.
Result<std::vector<std::vector<c10::IValue>>> batch_traces(const graph::Graph& graph,
                                                           const std::vector<std::vector<c10::IValue>>& invoke_inputs,
                                                           std::vector<int64_t>& rows) {
  if (invoke_inputs.size() != graph.invokes) {
    return invalid_argument("the graph has " + std::to_string(graph.invokes) + " invoke(s) but " +
                            std::to_string(invoke_inputs.size()) + " input set(s) were given");
  }
  std::vector<std::vector<c10::IValue>> passes;
  for (uint32_t t = 0; t < graph.traces(); ++t) {
    const auto first = invoke_inputs.begin() + graph.first_invoke(t);
    std::vector<std::vector<c10::IValue>> mine(first, first + graph.invokes_of(t));
    auto batched = batch_inputs(mine, rows);
    if (!batched.ok()) return graph.traces() > 1 ? batched.status().with_context("trace " + std::to_string(t)) : batched.status();
    passes.push_back(std::move(batched).value());
  }
  return passes;
}

// Runs each pass's forward with the interleaver beside it, in order. A pass
// a stop node ended is not an error; the others go on.
template <typename Forward>
Status run_passes(Interleaver& il, std::vector<std::vector<c10::IValue>> passes, const Forward& forward,
                  c10::IValue* out) {
  std::exception_ptr error;
  for (uint32_t t = 0; t < passes.size(); ++t) {
    if (t > 0) il.begin_trace(t);
    try {
      *out = forward(std::move(passes[t]));
    } catch (...) {
      if (il.stopped() && t + 1 < passes.size()) continue;
      error = std::current_exception();
      break;
    }
  }
  return il.finish(error);
}

}  // namespace

Status validate_for_modules(const graph::Graph& graph, const std::vector<std::string>& module_paths,
                            const graph::GraphLimits& limits) {
  AtenOpChecker checker;
  graph::ValidateOptions options;
  options.limits = limits;
  options.module_paths = &module_paths;
  options.op_checker = &checker;
  return graph::validate(graph, options);
}

Status validate_for_model(const graph::Graph& graph, const Model& model, const graph::GraphLimits& limits) {
  return validate_for_modules(graph, model.module_paths(), limits);
}

Result<ScanResult> scan(Model& model, const graph::Graph& requested,
                        const std::vector<std::vector<c10::IValue>>& invoke_inputs, ExecOptions options) {
  options.scan = true;
  LOOM_ASSIGN_OR_RETURN(std::optional<graph::Graph> edited, with_edits(model, requested));
  const graph::Graph& graph = edited ? *edited : requested;
  LOOM_RETURN_IF_ERROR(validate_for_model(graph, model, options.limits.graph));
  std::vector<int64_t> rows;
  LOOM_ASSIGN_OR_RETURN(auto passes, batch_traces(graph, invoke_inputs, rows));
  ScanResult result;
  for (const auto& inputs : passes) {
    if (!inputs.empty() && inputs[0].isTensor()) result.tokens += inputs[0].toTensor().numel();
  }
  LOOM_ASSIGN_OR_RETURN(std::unique_ptr<Interleaver> interleaver,
                        Interleaver::create(model, graph, std::move(rows), options));
  LOOM_RETURN_IF_ERROR(interleaver->start());
  c10::IValue out;
  LOOM_RETURN_IF_ERROR(run_passes(
      *interleaver, std::move(passes),
      [&](std::vector<c10::IValue> in) { return model.forward_meta(std::move(in), interleaver.get()); }, &out));
  for (uint32_t i = 0; i < graph.nodes.size(); ++i) {
    const c10::IValue& v = interleaver->value(i);
    if (v.isTensor()) result.values.emplace_back(i, v.toTensor());
  }
  result.intermediate_bytes = interleaver->intermediate_bytes();
  result.autograd_bytes = interleaver->autograd_bytes();
  RunOutput saved = interleaver->take_output();
  result.saves = std::move(saved.saved);
  result.saved_bytes = saved.saved_bytes;
  return result;
}

namespace {

// This host's float32 matmul rate, measured once (a few milliseconds).
double cpu_flops_per_second() {
  static const double rate = [] {
    const int64_t n = 256;
    at::Tensor a = at::ones({n, n}), b = at::ones({n, n});
    at::matmul(a, b);  // warm-up
    const int reps = 20;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) at::matmul(a, b);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return s > 0 ? 2.0 * n * n * n * reps / s : 1e10;
  }();
  return rate;
}

}  // namespace

Result<graph::ScanReport> scan_report(Model& model, const graph::Graph& graph,
                               const std::vector<std::vector<c10::IValue>>& invoke_inputs, ExecOptions options) {
  LOOM_ASSIGN_OR_RETURN(ScanResult s, scan(model, graph, invoke_inputs, std::move(options)));
  auto dtype_of = [](const at::Tensor& t) {
    auto d = from_scalar_type(t.scalar_type());
    return d.ok() ? std::string(graph::dtype_name(*d)) : std::string(c10::toString(t.scalar_type()));
  };
  graph::ScanReport r;
  for (const auto& [node, t] : s.values) {
    r.values.push_back({node, graph::node_kind_name(graph.nodes[node].kind), t.sizes().vec(), dtype_of(t)});
  }
  for (const NamedTensor& nt : s.saves) r.saves.push_back({nt.name, nt.tensor.sizes().vec(), dtype_of(nt.tensor)});
  r.saved_bytes = s.saved_bytes;
  r.intermediate_bytes = s.intermediate_bytes;
  r.autograd_bytes = s.autograd_bytes;
  r.peak_bytes = s.peak_bytes();
  r.tokens = s.tokens;
  // 2 x parameters x tokens per forward; a backward pass costs about twice that again.
  std::set<const void*> seen;
  double params = 0;
  for (const at::Tensor& t : model.tensors()) {
    if (t.defined() && seen.insert(t.unsafeGetTensorImpl()).second) params += static_cast<double>(t.numel());
  }
  bool backward = false;
  for (const graph::Node& n : graph.nodes) backward = backward || n.kind == graph::NodeKind::kBackward;
  r.flops = 2.0 * params * static_cast<double>(s.tokens) * (backward ? 3.0 : 1.0);
  r.device_ms = 1000.0 * r.flops / cpu_flops_per_second();
  return r;
}

Result<RunOutput> execute(Model& model, const graph::Graph& requested,
                          const std::vector<std::vector<c10::IValue>>& invoke_inputs, const ExecOptions& options) {
  LOOM_ASSIGN_OR_RETURN(std::optional<graph::Graph> edited, with_edits(model, requested));
  const graph::Graph& graph = edited ? *edited : requested;
  LOOM_RETURN_IF_ERROR(validate_for_model(graph, model, options.limits.graph));
  // A skip's value must have the shape the module's output would have had:
  // only a run on shapes knows it (cheap: no data).
  for (const graph::Node& n : graph.nodes) {
    if (n.kind == graph::NodeKind::kSkip && !options.scan) {
      LOOM_RETURN_IF_ERROR(scan(model, graph, invoke_inputs, options).status());
      break;
    }
  }
  std::vector<int64_t> rows;
  LOOM_ASSIGN_OR_RETURN(auto passes, batch_traces(graph, invoke_inputs, rows));
  LOOM_ASSIGN_OR_RETURN(std::unique_ptr<Interleaver> interleaver,
                        Interleaver::create(model, graph, std::move(rows), options));
  LOOM_RETURN_IF_ERROR(interleaver->start());
  c10::IValue out;
  LOOM_RETURN_IF_ERROR(run_passes(
      *interleaver, std::move(passes),
      [&](std::vector<c10::IValue> in) { return model.forward(std::move(in), interleaver.get()); }, &out));
  RunOutput result = interleaver->take_output();
  result.stopped_early = interleaver->stopped();
  if (!result.stopped_early) result.output = std::move(out);
  return result;
}

}  // namespace loom::runtime
