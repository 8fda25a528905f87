// GPT-2 hyper-parameters as in Hugging Face's config.json for GPT2LMHeadModel.
// Thread safety: plain value.
#pragma once

#include <cstdint>
#include <string>

#include "graph/status.h"

namespace loom::runtime {

struct Gpt2Config {
  int64_t vocab_size = 50257;
  int64_t n_positions = 1024;
  int64_t n_embd = 768;
  int64_t n_layer = 12;
  int64_t n_head = 12;
  int64_t n_inner = 0;  // 0 = 4 * n_embd, as Hugging Face
  double layer_norm_epsilon = 1e-5;
  std::string activation_function = "gelu_new";
  int64_t eos_token_id = -1;  // -1: none given (GPT-2's own vocabulary: 50256)

  int64_t inner_dim() const { return n_inner > 0 ? n_inner : 4 * n_embd; }
  // A model small enough for unit tests: 2 layers, 64 wide, 4 heads, vocab 1000.
  static Gpt2Config tiny();
  // GPT-2 small: 12 layers, 768 wide, 12 heads, vocab 50257.
  static Gpt2Config small();
};

// Parses config.json text; unknown keys are ignored (HF configs carry many),
// known keys with wrong types or out-of-range values are rejected by name.
Result<Gpt2Config> parse_gpt2_config(const std::string& json_text);
std::string gpt2_config_to_json(const Gpt2Config& config);

// Writes DIR/config.json and DIR/model.safetensors with seeded random weights
// named as in the official checkpoints (wte.weight, h.0.attn.c_attn.weight,
// ...; "transformer." prefix when `with_prefix`). Same seed, same bytes.
Status write_random_gpt2_checkpoint(const std::string& dir, const Gpt2Config& config,
                                    uint64_t seed, bool with_prefix = false);

}  // namespace loom::runtime
