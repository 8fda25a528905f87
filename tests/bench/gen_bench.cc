// Generation cost (runtime/generate.h): GPT-2 small and a Llama of the same
// size class (12 layers, hidden 768, 12 heads over 4 kv heads, intermediate
// 2048, vocab 32000), seeded weights, prompt 64, 32 new tokens, batch 1,
// greedy. "Bare" is the loop one writes by hand over forward_step with no
// hooks at all; loom's runs go through generate() and its Interleaver.
// Runs alternate in pairs and ratios are taken per pair, then the median.
#include <ATen/ATen.h>

#include <filesystem>
#include <iostream>

#include "graph/builder.h"
#include "runtime/generate.h"
#include "runtime/gpt2_config.h"
#include "runtime/llama_config.h"
#include "runtime/model.h"
#include "runtime/tensor_data.h"
#include "tests/bench/bench.h"

namespace loom::bench {
namespace {

constexpr int64_t kPrompt = 64, kNew = 32;

std::unique_ptr<runtime::Model> load(const std::string& dir) {
  auto m = runtime::load_model(dir);
  if (!m.ok()) throw std::runtime_error(m.status().message());
  return std::move(m).value();
}

std::unique_ptr<runtime::Model> gpt2(const std::string& dir, const runtime::Gpt2Config& c) {
  if (!std::filesystem::exists(dir + "/model.safetensors")) {
    std::cerr << "generating " << dir << "...\n";
    auto s = runtime::write_random_gpt2_checkpoint(dir, c, 1234);
    if (!s.ok()) throw std::runtime_error(s.message());
  }
  return load(dir);
}

std::unique_ptr<runtime::Model> llama(const std::string& dir) {
  if (!std::filesystem::exists(dir + "/model.safetensors")) {
    std::cerr << "generating " << dir << "...\n";
    runtime::LlamaConfig c = runtime::LlamaConfig::small();
    c.eos_token_ids = {};
    auto s = runtime::write_random_llama_checkpoint(dir, c, 1234);
    if (!s.ok()) throw std::runtime_error(s.message());
  }
  return load(dir);
}

// Greedy decoding by hand: forward_step, argmax, append; no sink.
double bare_seconds(runtime::CausalLm& m, const at::Tensor& prompt, int64_t n) {
  c10::InferenceMode guard;
  auto t0 = std::chrono::steady_clock::now();
  runtime::KvCache cache;
  runtime::StepInputs in{prompt, at::Tensor(), at::Tensor()};
  for (int64_t i = 0; i < n; ++i) {
    at::Tensor next = m.forward_step(in, cache, nullptr).select(1, -1).argmax(-1, true);
    in = runtime::StepInputs{next, at::Tensor(), at::Tensor()};
  }
  return seconds_since(t0);
}

double loom_seconds(runtime::CausalLm& m, const graph::Graph& g, const at::Tensor& prompt, int64_t n,
                    size_t expect_saved) {
  runtime::GenerateOptions o;
  o.max_new_tokens = n;
  o.stop_token_ids = std::vector<int64_t>{};
  auto t0 = std::chrono::steady_clock::now();
  auto r = runtime::generate(m, g, {{prompt}}, {}, o);
  double t = seconds_since(t0);
  if (!r.ok()) throw std::runtime_error("generate: " + r.status().message());
  if (r->saved.size() != expect_saved) throw std::runtime_error("generate saved " + std::to_string(r->saved.size()));
  return t;
}

}  // namespace

void run_gen(Context& ctx) {
  auto small = gpt2(ctx.data_dir + "/gpt2-small", runtime::Gpt2Config::small());
  auto ll = llama(ctx.data_dir + "/llama-small");
  graph::Graph empty;
  for (auto [name, model, vocab] : {std::tuple{"gpt2_small", small.get(), int64_t{50257}},
                                    std::tuple{"llama_small", ll.get(), int64_t{32000}}}) {
    auto& m = static_cast<runtime::CausalLm&>(*model);
    at::Tensor prompt = at::arange(kPrompt, at::kLong).view({1, kPrompt}) * 13 % vocab;
    std::vector<double> t;
    for (int i = 0; i < 6; ++i) {
      double s = loom_seconds(m, empty, prompt, kNew, 1);
      if (i >= 1) t.push_back(s);
    }
    ctx.add(std::string("gen.") + name + "_tokens_per_s", kNew / median(t), "tokens/s");
  }
  {
    // A steering vector at every step plus lm_head saved at every step, vs bare.
    auto& m = static_cast<runtime::CausalLm&>(*ll);
    at::Tensor prompt = at::arange(kPrompt, at::kLong).view({1, kPrompt}) * 13 % 32000;
    Builder b;
    auto h = b.module("model.layers.6").all_steps().output(0);
    h.set(h + b.constant(runtime::to_tensor_data(at::randn({768}) * 0.1).value()));
    b.module("lm_head").all_steps().output().save("logits");
    std::vector<double> ratio, bare;
    for (int i = 0; i < 12; ++i) {
      double x, y;
      if (i % 2 == 0) {
        x = bare_seconds(m, prompt, kNew);
        y = loom_seconds(m, b.graph(), prompt, kNew, kNew + 1);
      } else {
        y = loom_seconds(m, b.graph(), prompt, kNew, kNew + 1);
        x = bare_seconds(m, prompt, kNew);
      }
      if (i >= 2) {
        ratio.push_back(y / x);
        bare.push_back(x);
      }
    }
    ctx.add("gen.llama_small_bare_tokens_per_s", kNew / median(bare), "tokens/s");
    ctx.add("gen.steer_all_ratio", median(ratio), "ratio", "<= 1.05");
  }
  {
    // The interleaver's cost per step with an empty graph, on a tiny model
    // where it is not lost in the matmuls.
    auto tiny = gpt2(ctx.data_dir + "/gpt2-tiny", runtime::Gpt2Config::tiny());
    auto& m = static_cast<runtime::CausalLm&>(*tiny);
    at::Tensor prompt = at::arange(16, at::kLong).view({1, 16});
    std::vector<double> diff;
    for (int i = 0; i < 400; ++i) {
      double x = bare_seconds(m, prompt, kNew);
      double y = loom_seconds(m, empty, prompt, kNew, 1);
      if (i >= 40) diff.push_back((y - x) / kNew);
    }
    ctx.add("gen.per_step_overhead_us", median(diff) * 1e6, "us", "<= 20");
  }
}

}  // namespace loom::bench
