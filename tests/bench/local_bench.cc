// Local tracing cost: GPT-2 small (12 layers, 768 wide, 12 heads, vocab
// 50257; seeded weights) at batch 1, seq 64, bare vs traced with 12
// block-output saves; and the fixed cost of an empty trace on a tiny model.
// Bare and traced runs alternate in pairs (which one goes first alternates
// too), and ratios/differences are taken per pair, then the median: this
// machine's timing noise is larger than the effect being measured.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <filesystem>
#include <iostream>

#include "runtime/execute.h"
#include "runtime/gpt2_config.h"
#include "runtime/trace.h"
#include "tests/bench/bench.h"

namespace loom::bench {
namespace {

std::unique_ptr<runtime::Model> checkpoint(const std::string& dir, const runtime::Gpt2Config& cfg) {
  if (!std::filesystem::exists(dir + "/model.safetensors")) {
    std::cerr << "generating " << dir << "...\n";
    auto s = runtime::write_random_gpt2_checkpoint(dir, cfg, 1234);
    if (!s.ok()) throw std::runtime_error(s.message());
  }
  auto m = runtime::load_model(dir);
  if (!m.ok()) throw std::runtime_error(m.status().message());
  return std::move(m).value();
}

}  // namespace

void run_local(Context& ctx) {
  using clock = std::chrono::steady_clock;
  ctx.add("local.torch_threads", at::get_num_threads(), "threads");
  {
    auto model = checkpoint(ctx.data_dir + "/gpt2-small", runtime::Gpt2Config::small());
    at::Tensor ids = at::arange(64, at::kLong).view({1, 64}) * 13 % 50257;
    runtime::LocalTrace tr(*model, {ids});
    for (int i = 0; i < 12; ++i) tr.module("transformer.h." + std::to_string(i)).output(0).save("h" + std::to_string(i));
    const graph::Graph& g = tr.graph();
    std::vector<std::vector<c10::IValue>> inputs = {{ids}};
    std::vector<double> bare, traced, ratio;
    auto time_bare = [&] {
      auto t0 = clock::now();
      model->forward({ids}, nullptr);
      return seconds_since(t0);
    };
    auto time_traced = [&] {
      auto t0 = clock::now();
      auto r = runtime::execute(*model, g, inputs);
      double t = seconds_since(t0);
      if (!r.ok() || r->saved.size() != 12) throw std::runtime_error("traced run failed: " + r.status().message());
      return t;
    };
    for (int i = 0; i < 64; ++i) {
      double b, t;
      if (i % 2 == 0) {
        b = time_bare();
        t = time_traced();
      } else {
        t = time_traced();
        b = time_bare();
      }
      if (i >= 4) {  // warm-up
        bare.push_back(b);
        traced.push_back(t);
        ratio.push_back(t / b);
      }
    }
    double mb = median(bare), mt = median(traced);
    ctx.add("local.gpt2_small_forward_ms", mb * 1e3, "ms");
    ctx.add("local.gpt2_small_traced_12saves_ms", mt * 1e3, "ms");
    ctx.add("local.trace_ratio_gpt2_small_12saves", median(ratio), "ratio", "<= 1.02");
  }
  {
    auto model = checkpoint(ctx.data_dir + "/gpt2-tiny", runtime::Gpt2Config::tiny());
    at::Tensor ids = at::arange(16, at::kLong).view({1, 16});
    graph::Graph empty;
    std::vector<std::vector<c10::IValue>> inputs = {{ids}};
    std::vector<double> bare, diff;
    for (int i = 0; i < 4000; ++i) {
      auto t0 = clock::now();
      model->forward({ids}, nullptr);
      double b = seconds_since(t0);
      t0 = clock::now();
      auto r = runtime::execute(*model, empty, inputs);
      double t = seconds_since(t0);
      if (!r.ok()) throw std::runtime_error(r.status().message());
      if (i >= 200) {
        bare.push_back(b);
        diff.push_back(t - b);
      }
    }
    ctx.add("local.tiny_forward_us", median(bare) * 1e6, "us");
    ctx.add("local.empty_trace_us", median(diff) * 1e6, "us", "<= 20");
  }
}

}  // namespace loom::bench
