#include "runtime/generate.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "graph/edits.h"
#include "runtime/interleaver.h"

namespace loom::runtime {
namespace {

// Prompts of all invokes, left-padded to the longest: ids, mask, positions.
struct Batch {
  at::Tensor ids, mask, positions;  // mask and positions: undefined for one invoke (no padding)
  std::vector<int64_t> rows;        // per invoke
};

Result<Batch> left_pad(const std::vector<std::vector<c10::IValue>>& invokes, int64_t pad) {
  Batch b;
  int64_t longest = 0;
  for (size_t i = 0; i < invokes.size(); ++i) {
    const auto& in = invokes[i];
    if (in.size() != 1 || !in[0].isTensor()) {
      return invalid_argument("invoke " + std::to_string(i) + ": generation takes one input, the prompt ids [rows, T]");
    }
    const at::Tensor& t = in[0].toTensor();
    if (t.dim() != 2 || !at::isIntegralType(t.scalar_type(), false) || t.size(0) == 0 || t.size(1) == 0) {
      return invalid_argument("invoke " + std::to_string(i) + ": prompt ids must be a non-empty integer tensor [rows, T], got " +
                              std::string(c10::toString(t.scalar_type())) + " " + c10::str(t.sizes()));
    }
    longest = std::max(longest, t.size(1));
    b.rows.push_back(t.size(0));
  }
  if (invokes.size() == 1) {  // one invoke: nothing to pad, and every row is its own position
    b.ids = invokes[0][0].toTensor().to(at::kLong);
    return b;
  }
  std::vector<at::Tensor> ids, mask;
  for (const auto& in : invokes) {
    at::Tensor t = in[0].toTensor().to(at::kLong);
    const int64_t missing = longest - t.size(1);
    ids.push_back(at::cat({at::full({t.size(0), missing}, pad, t.options()), t}, 1));
    mask.push_back(at::cat({at::zeros({t.size(0), missing}, t.options()), at::ones_like(t)}, 1));
  }
  b.ids = at::cat(ids, 0);
  b.mask = at::cat(mask, 0);
  // As transformers' generate: cumsum(mask) - 1, and 1 where padded.
  b.positions = (b.mask.cumsum(1) - 1).masked_fill(b.mask.eq(0), 1);
  return b;
}

// Draws a token from one row of float64 logits, after temperature, top-k and
// top-p as transformers' warpers apply them.
int64_t sample_row(std::vector<double> logits, const GenerateOptions& g, std::mt19937_64& rng) {
  const double neg_inf = -std::numeric_limits<double>::infinity();
  for (double& x : logits) x = std::isnan(x) ? neg_inf : x / g.temperature;  // NaN from an intervention: never drawn
  const size_t n = logits.size();
  if (g.top_k > 0 && static_cast<size_t>(g.top_k) < n) {
    std::vector<double> sorted = logits;
    std::nth_element(sorted.begin(), sorted.begin() + (g.top_k - 1), sorted.end(), std::greater<>());
    const double kth = sorted[g.top_k - 1];
    for (double& x : logits) {
      if (x < kth) x = neg_inf;
    }
  }
  if (g.top_p < 1.0) {
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return logits[a] < logits[b]; });
    const double top = logits[order.back()];
    double z = 0;
    for (double x : logits) z += std::exp(x - top);
    double cum = 0;
    // Ascending: drop while the mass so far stays within 1 - top_p; the last (largest) always stays.
    for (size_t i = 0; i + 1 < n; ++i) {
      cum += std::exp(logits[order[i]] - top) / z;
      if (cum <= 1.0 - g.top_p) logits[order[i]] = neg_inf;
    }
  }
  const double top = *std::max_element(logits.begin(), logits.end());
  double z = 0;
  for (double& x : logits) {
    x = std::exp(x - top);
    z += x;
  }
  const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53 * z;
  double acc = 0;
  for (size_t i = 0; i < n; ++i) {
    acc += logits[i];
    if (u < acc) return static_cast<int64_t>(i);
  }
  for (size_t i = n; i-- > 0;) {
    if (logits[i] > 0) return static_cast<int64_t>(i);
  }
  return 0;
}

// Each row's next token, on the CPU.
std::vector<int64_t> choose(const at::Tensor& last_logits, const GenerateOptions& g, std::mt19937_64& rng) {
  const int64_t B = last_logits.size(0);
  if (g.temperature <= 0) {
    at::Tensor ids = last_logits.argmax(-1).to(at::kCPU).contiguous();
    return std::vector<int64_t>(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + B);
  }
  at::Tensor cpu = last_logits.to(at::kCPU, at::kDouble).contiguous();
  const int64_t V = cpu.size(1);
  std::vector<int64_t> out(B);
  const double* p = cpu.data_ptr<double>();
  for (int64_t b = 0; b < B; ++b) out[b] = sample_row(std::vector<double>(p + b * V, p + (b + 1) * V), g, rng);
  return out;
}

}  // namespace

namespace {
Result<RunOutput> generate_unguarded(CausalLm& model, const graph::Graph& graph,
                                     const std::vector<std::vector<c10::IValue>>& invoke_inputs,
                                     const ExecOptions& options, const GenerateOptions& gen,
                                     const TokenHandler& on_token) {
  const auto started = std::chrono::steady_clock::now();
  LOOM_RETURN_IF_ERROR(gen.check(model.vocab_size()));
  LOOM_RETURN_IF_ERROR(validate_for_model(graph, model, options.limits.graph));
  if (graph.traces() > 1) {
    return invalid_argument("a session (several traces) runs forward passes; it cannot generate");
  }
  for (const graph::Node& n : graph.nodes) {
    if (n.kind == graph::NodeKind::kSave && n.name == kTokensName) {
      return invalid_argument(std::string("the save name \"") + kTokensName + "\" is taken by the generated ids");
    }
  }
  if (invoke_inputs.size() != graph.invokes) {
    return invalid_argument("the graph has " + std::to_string(graph.invokes) + " invoke(s) but " +
                            std::to_string(invoke_inputs.size()) + " input set(s) were given");
  }
  for (uint32_t i = 0; i < graph.nodes.size(); ++i) {
    const graph::Node& n = graph.nodes[i];
    const bool has_point = n.kind == graph::NodeKind::kRead || n.kind == graph::NodeKind::kSet ||
                           n.kind == graph::NodeKind::kGrad || n.kind == graph::NodeKind::kSetGrad ||
                           n.kind == graph::NodeKind::kSkip;
    if (has_point && static_cast<int64_t>(n.point.call) >= gen.max_new_tokens) {
      return invalid_argument(describe_node(graph, i) + ": step " + std::to_string(n.point.call) +
                              " never runs: a generation of " + std::to_string(gen.max_new_tokens) +
                              " new tokens has steps 0.." + std::to_string(gen.max_new_tokens - 1));
    }
  }
  const std::vector<int64_t> stops = gen.stop_token_ids ? *gen.stop_token_ids : model.eos_token_ids();
  const int64_t pad = gen.pad_token_id >= 0 ? gen.pad_token_id : (stops.empty() ? 0 : stops[0]);
  LOOM_ASSIGN_OR_RETURN(Batch batch, left_pad(invoke_inputs, pad));
  const int64_t T = batch.ids.size(1), B = batch.ids.size(0);
  if (T + gen.max_new_tokens - 1 > model.max_positions()) {
    return invalid_argument("a prompt of " + std::to_string(T) + " tokens plus " + std::to_string(gen.max_new_tokens) +
                            " new ones passes the model's " + std::to_string(model.max_positions()) + " positions");
  }
  LOOM_ASSIGN_OR_RETURN(std::unique_ptr<Interleaver> il, Interleaver::create(model, graph, batch.rows, options));
  LOOM_RETURN_IF_ERROR(il->start());

  // A backward pass needs autograd history, which inference tensors lack.
  c10::InferenceMode guard(!il->wants_grad());
  // The per-step bookkeeping is plain C++ on the CPU: a handful of ATen
  // calls per step would cost more than the interleaver (bench gen).
  const at::Device device(model.device());
  const bool padded = batch.mask.defined() && batch.mask.eq(0).any().item<bool>();
  const int64_t N = gen.max_new_tokens;
  at::Tensor mask;  // [B, T + N] when padded: each step sees a prefix view
  std::vector<int64_t> last_pos(B);
  if (padded) {
    mask = at::ones({B, T + N}, batch.mask.options());
    mask.narrow(1, 0, T).copy_(batch.mask);
    mask = mask.to(device);
    at::Tensor lp = batch.positions.select(1, -1).contiguous();
    last_pos.assign(lp.data_ptr<int64_t>(), lp.data_ptr<int64_t>() + B);
  }
  std::vector<std::vector<int64_t>> generated(B);
  std::vector<uint8_t> finished(B, 0);
  std::mt19937_64 rng(gen.seed);
  KvCache cache;
  StepInputs in{batch.ids.to(device), padded ? batch.positions.to(device) : at::Tensor(),
                padded ? mask.narrow(1, 0, T) : at::Tensor()};
  std::exception_ptr error;
  int64_t steps = 0;
  for (int64_t step = 0; step < N; ++step) {
    il->begin_step(static_cast<uint32_t>(step));
    at::Tensor logits;
    try {
      logits = model.forward_step(in, cache, il.get());
    } catch (...) {
      error = std::current_exception();
      break;
    }
    steps = step + 1;
    // The logits may come from an intervention on lm_head or the root.
    if (logits.dim() != 3 || logits.size(0) != B || logits.size(1) < 1 || logits.size(2) != model.vocab_size() ||
        !at::isFloatingType(logits.scalar_type())) {
      return invalid_argument("step " + std::to_string(step) + ": the logits must be floating [" + std::to_string(B) +
                              ", t, " + std::to_string(model.vocab_size()) + "], got " +
                              std::string(c10::toString(logits.scalar_type())) + " " + c10::str(logits.sizes()) +
                              " (an intervention changed them)");
    }
    std::vector<int64_t> next = choose(logits.select(1, -1).to(at::kFloat), gen, rng);
    bool all_done = true;
    for (int64_t b = 0; b < B; ++b) {
      if (finished[b]) next[b] = pad;
      finished[b] = finished[b] || std::find(stops.begin(), stops.end(), next[b]) != stops.end();
      all_done = all_done && finished[b];
      generated[b].push_back(next[b]);
    }
    if (on_token) {
      std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - started;
      on_token({step, next, elapsed.count()});
    }
    if (all_done || step + 1 == N) break;
    at::Tensor pos;
    if (padded) {
      for (int64_t& p : last_pos) ++p;
      pos = at::tensor(last_pos, at::kLong).view({B, 1}).to(device);
    }
    in = StepInputs{at::tensor(next, at::kLong).view({B, 1}).to(device), pos,
                    padded ? mask.narrow(1, 0, T + step + 1) : at::Tensor()};
  }
  const int64_t width = T + static_cast<int64_t>(generated[0].size());  // every row got the same steps
  at::Tensor tokens = at::empty({B, width}, at::kLong);
  tokens.narrow(1, 0, T).copy_(batch.ids);
  int64_t* out = tokens.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) std::copy(generated[b].begin(), generated[b].end(), out + b * width + T);
  if (!error) il->set_steps_run(static_cast<uint32_t>(steps));
  LOOM_RETURN_IF_ERROR(il->finish(error));
  RunOutput result = il->take_output();
  result.stopped_early = il->stopped();
  result.saved.push_back({kTokensName, tokens});
  return result;
}

}  // namespace

Result<RunOutput> generate(CausalLm& model, const graph::Graph& graph,
                           const std::vector<std::vector<c10::IValue>>& invoke_inputs, const ExecOptions& options,
                           const GenerateOptions& gen, const TokenHandler& on_token) {
  // The model and the graph report through Statuses; this catches what the
  // loop's own tensor work may still throw (out of memory).
  try {
    if (model.edits() != nullptr) {  // the model's persistent edits run first
      LOOM_ASSIGN_OR_RETURN(graph::Graph edited, graph::apply_edit(*model.edits(), graph));
      return generate_unguarded(model, edited, invoke_inputs, options, gen, on_token);
    }
    return generate_unguarded(model, graph, invoke_inputs, options, gen, on_token);
  } catch (const std::exception& e) {
    return internal_error(std::string("generation failed: ") + e.what());
  }
}

}  // namespace loom::runtime
