// Gradients: GPT-2 small (seeded weights) at batch 1, seq 64. loom runs a
// forward and backward pass with the LM loss and one gradient read (and
// saved) at each of the 12 block outputs; the bare run is the same forward
// and backward in plain LibTorch: the model with no interventions, block
// 0's output made the autograd leaf (as loom's first gradient point makes
// it), the same loss, torch::autograd::backward. Both differentiate the same
// graph; the ratio is loom's cost for the hooks, saves and bookkeeping.
// Pairs alternate and the median per-pair ratio is reported.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <filesystem>
#include <iostream>

#include "runtime/execute.h"
#include "runtime/gpt2_config.h"
#include "runtime/trace.h"
#include "tests/bench/bench.h"

namespace loom::bench {
namespace {

// The bare baseline's only hook: block 0's output becomes the leaf.
class LeafSink : public runtime::HookSink {
 public:
  explicit LeafSink(int block0) : block0_(block0) {}
  bool wants_grad() const override { return true; }
  void on_input(int, int, c10::IValue&) override {}
  void on_output(int id, c10::IValue& value) override {
    if (id != block0_) return;
    std::vector<c10::IValue> elems = value.toTupleRef().elements().vec();
    leaf = elems[0].toTensor().detach().requires_grad_(true);
    elems[0] = leaf;
    value = c10::ivalue::Tuple::create(std::move(elems));
  }
  at::Tensor leaf;

 private:
  int block0_;
};

}  // namespace

void run_grad(Context& ctx) {
  using clock = std::chrono::steady_clock;
  const std::string dir = ctx.data_dir + "/gpt2-small";
  if (!std::filesystem::exists(dir + "/model.safetensors")) {
    std::cerr << "generating " << dir << "...\n";
    auto s = runtime::write_random_gpt2_checkpoint(dir, runtime::Gpt2Config::small(), 1234);
    if (!s.ok()) throw std::runtime_error(s.message());
  }
  auto loaded = runtime::load_model(dir);
  if (!loaded.ok()) throw std::runtime_error(loaded.status().message());
  runtime::Model& model = **loaded;
  at::Tensor ids = at::arange(64, at::kLong).view({1, 64}) * 13 % 50257;

  runtime::LocalTrace tr(model, {ids});
  for (int i = 0; i < 12; ++i) {
    tr.module("transformer.h." + std::to_string(i)).output(0).grad().save("grad:h" + std::to_string(i));
  }
  tr.backward(next_token_loss(tr.output(), tr.input(0)));
  const graph::Graph& g = tr.graph();
  const std::vector<std::vector<c10::IValue>> inputs = {{ids}};

  const int block0 = model.module_id("transformer.h.0");
  auto time_bare = [&] {
    auto t0 = clock::now();
    LeafSink sink(block0);
    at::Tensor logits = model.forward({ids}, &sink).toTensor();
    at::Tensor logp = at::log_softmax(logits.slice(1, 0, -1), -1);
    at::Tensor loss = -at::gather(logp, -1, ids.slice(1, 1).unsqueeze(-1)).mean();
    torch::autograd::backward({loss}, {}, false, false, {sink.leaf});
    return seconds_since(t0);
  };
  auto time_loom = [&] {
    auto t0 = clock::now();
    auto r = runtime::execute(model, g, inputs);
    double t = seconds_since(t0);
    if (!r.ok() || r->saved.size() != 12) throw std::runtime_error("gradient run failed: " + r.status().message());
    return t;
  };
  std::vector<double> bare, traced, ratio;
  for (int i = 0; i < 24; ++i) {
    double b, t;
    if (i % 2 == 0) {
      b = time_bare();
      t = time_loom();
    } else {
      t = time_loom();
      b = time_bare();
    }
    if (i >= 4) {  // warm-up
      bare.push_back(b);
      traced.push_back(t);
      ratio.push_back(t / b);
    }
  }
  ctx.add("grad.gpt2_small_bare_forward_backward_ms", median(bare) * 1e3, "ms");
  ctx.add("grad.gpt2_small_loom_12_grads_ms", median(traced) * 1e3, "ms");
  ctx.add("grad.backward_ratio", median(ratio), "ratio", "<= 1.1");
  auto scanned = runtime::scan(model, g, inputs);
  if (scanned.ok()) ctx.add("grad.autograd_bytes_estimate", static_cast<double>(scanned->autograd_bytes), "bytes");
}

}  // namespace loom::bench
