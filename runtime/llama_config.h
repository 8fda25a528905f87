// Llama-family hyper-parameters as in transformers' config.json for
// LlamaForCausalLM (model_type "llama") and Qwen2ForCausalLM ("qwen2": q/k/v
// biases, no o_proj bias), and a seeded checkpoint generator for tests and
// benchmarks. Thread safety: plain values and free functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "graph/status.h"

namespace loom::runtime {

// rope_scaling (its "rope_type", or the legacy "type" key).
struct RopeScaling {
  std::string type = "default";  // default, linear, dynamic, llama3
  double factor = 1.0;
  double low_freq_factor = 1.0;   // llama3
  double high_freq_factor = 4.0;  // llama3
  int64_t original_max_position_embeddings = 8192;  // llama3
};

struct LlamaConfig {
  std::string model_type = "llama";
  int64_t vocab_size = 32000;
  int64_t hidden_size = 4096;
  int64_t intermediate_size = 11008;
  int64_t num_hidden_layers = 32;
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 0;  // 0: as num_attention_heads
  int64_t head_dim = 0;             // 0: hidden_size / num_attention_heads
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool attention_bias = false;  // q, k, v and o projections
  bool mlp_bias = false;
  bool tie_word_embeddings = false;
  std::string torch_dtype = "float32";  // float32, float16, bfloat16
  std::vector<int64_t> eos_token_ids;    // eos_token_id: an int or a list
  int64_t bos_token_id = -1;

  int64_t kv_heads() const { return num_key_value_heads > 0 ? num_key_value_heads : num_attention_heads; }
  int64_t head_size() const { return head_dim > 0 ? head_dim : hidden_size / num_attention_heads; }
  bool qkv_bias() const { return attention_bias || model_type == "qwen2"; }
  bool o_bias() const { return attention_bias; }

  // 2 layers, hidden 64, 4 heads, 2 kv heads, intermediate 128, vocab 1000.
  static LlamaConfig tiny();
  // The benchmark shape: 12 layers, hidden 768, 12 heads, 4 kv heads,
  // intermediate 2048, vocab 32000.
  static LlamaConfig small();
};

// Parses config.json text. Unknown keys are ignored (configs carry many);
// known keys with wrong types or impossible values are rejected by name, as
// are architectures other than llama and qwen2 and activations other than silu.
Result<LlamaConfig> parse_llama_config(const std::string& json_text);
std::string llama_config_to_json(const LlamaConfig& config);

struct LlamaCheckpointOptions {
  std::string dtype = "float32";  // float32, float16, bfloat16: the stored dtype
  int shards = 1;                 // > 1: model-0000N-of-0000M.safetensors + index
};

// Writes DIR/config.json and the weights, named as transformers saves them
// (model.embed_tokens.weight, model.layers.0.self_attn.q_proj.weight, ...;
// no lm_head.weight when tied). The same seed gives the same values in every
// dtype (each rounded from the same float32 draw).
Status write_random_llama_checkpoint(const std::string& dir, const LlamaConfig& config, uint64_t seed,
                                     const LlamaCheckpointOptions& options = {});

}  // namespace loom::runtime
