// Steering a generation: add a vector to the residual stream after block 0
// at every step, as llama.cpp's --control-vector does, and check what
// changed: at each step block 1 sees block 0's output plus the vector, the
// prompt is untouched, and the continuation differs from the unsteered one.
// Runs on a seeded tiny Llama checkpoint (or LOOM_LLAMA_PATH).
#include <ATen/ATen.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "client/trace.h"
#include "example_model.h"
#include "runtime/llama.h"
#include "runtime/tensor_data.h"

namespace {

std::string llama_dir() {
  if (const char* p = std::getenv("LOOM_LLAMA_PATH")) return p;
  std::string dir = (std::filesystem::temp_directory_path() / "loom-example-llama-tiny").string();
  if (!std::filesystem::exists(dir + "/model.safetensors")) {
    loom::runtime::LlamaConfig c = loom::runtime::LlamaConfig::tiny();
    c.eos_token_ids = {};  // random weights: run every row to max_new_tokens
    auto s = loom::runtime::write_random_llama_checkpoint(dir, c, 2024);
    if (!s.ok()) {
      std::cerr << s.message() << "\n";
      std::exit(1);
    }
  }
  return dir;
}

std::string ids_text(const at::Tensor& row) {
  std::string s;
  for (int64_t i = 0; i < row.numel(); ++i) s += (i ? " " : "") + std::to_string(row[i].item<int64_t>());
  return s;
}

}  // namespace

int main() {
  auto model = example::load_or_exit(llama_dir());
  const auto& cfg = dynamic_cast<loom::runtime::LlamaModel&>(*model).config();
  const int64_t prompt_len = 8, new_tokens = 12;
  at::Tensor ids = (at::arange(prompt_len, at::kLong) * 37 % cfg.vocab_size).view({1, prompt_len});
  at::Tensor direction = at::randn({cfg.hidden_size}, at::make_generator<at::CPUGeneratorImpl>(7)) * 3.0;

  loom::client::RunOptions options;
  options.generation = loom::graph::GenerateOptions{};
  options.generation->max_new_tokens = new_tokens;

  loom::client::Trace plain(*model, {ids});
  loom::client::Trace steered(*model, {ids});
  loom::HookPoint h0 = steered.module("model.layers.0").all_steps().output(0);
  h0.set(h0 + steered.constant(loom::runtime::to_tensor_data(direction).value()));
  // Block 0's own output (read before the set) and what block 1 receives, at every step.
  h0.save("h0");
  steered.module("model.layers.1").all_steps().input(0).save("h1_in");
  loom::runtime::TraceResult base, out;
  try {
    base = plain.run(options);
    out = steered.run(options);
  } catch (const loom::client::LoomError& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  const at::Tensor a = base.at("tokens"), b = out.at("tokens");
  std::cout << "prompt:    " << ids_text(ids[0]) << "\n";
  std::cout << "unsteered: " << ids_text(a[0].slice(0, prompt_len)) << "\n";
  std::cout << "steered:   " << ids_text(b[0].slice(0, prompt_len)) << "\n";
  example::check(a.size(1) == prompt_len + new_tokens && b.size(1) == prompt_len + new_tokens,
                 "both runs generated " + std::to_string(new_tokens) + " tokens");
  example::check(at::equal(a.slice(1, 0, prompt_len), b.slice(1, 0, prompt_len)), "the prompt is untouched");
  example::check(!at::equal(a, b), "the steering vector changes the continuation");
  int steps = 0;
  for (const auto& nt : out.saved) steps += nt.name.rfind("h1_in@", 0) == 0 ? 1 : 0;
  example::check(steps == new_tokens, "one saved value per step (h1_in@0 .. h1_in@" + std::to_string(new_tokens - 1) + ")");
  bool added = true;
  for (int k = 0; k < new_tokens; ++k) {
    const std::string s = "@" + std::to_string(k);
    added = added && at::allclose(out.at("h1_in" + s), out.at("h0" + s) + direction, 1e-5, 1e-5);
  }
  example::check(added, "at every step block 1 sees block 0's output plus the vector");
  example::check(out.at("h1_in@0").size(1) == prompt_len && out.at("h1_in@5").size(1) == 1,
                 "step 0 is the prompt, later steps one new position");
  return 0;
}
