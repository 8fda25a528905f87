// Native Llama family (transformers' LlamaForCausalLM numerics, and
// Qwen2ForCausalLM's q/k/v biases) loaded straight from a checkpoint
// directory: config.json with model.safetensors, or sharded
// model-0000N-of-0000M.safetensors with model.safetensors.index.json.
//
// Module paths and hook values follow transformers:
//   ""                                 in: input_ids [B,T] int64  out: logits [B,T,V]
//   model                              in: input_ids              out: (last_hidden_state,)
//   model.embed_tokens                 in: ids                    out: embeddings [B,T,C]
//   model.rotary_emb                   in: hidden                 out: (cos, sin) [B,T,head_dim]
//   model.layers.N                     in: hidden                 out: (hidden,)
//   model.layers.N.input_layernorm / .post_attention_layernorm / model.norm   out: normalised hidden
//   model.layers.N.self_attn           in: hidden                 out: (attn_output, None)
//   model.layers.N.self_attn.q_proj / .k_proj / .v_proj / .o_proj             out: projections
//   model.layers.N.mlp (.gate_proj, .up_proj, .act_fn, .down_proj)
//   lm_head                            in: final hidden           out: logits
// "model.layers" (the ModuleList) is listed but never called, as in transformers.
//
// Numerics: RMSNorm in float32 and cast back; rotate-half RoPE with
// rope_theta and rope_scaling default / linear / dynamic / llama3 (dynamic
// recomputes the frequencies from each step's largest position, without
// transformers' memory of earlier calls); GQA; SwiGLU; softmax in float32.
// Weights are used in the compute dtype: the checkpoint's (torch_dtype, or
// the dtype its tensors have) or float32 when ModelOptions::compute_dtype
// says so; on the CPU, tensors already in that dtype are memory-mapped
// rather than copied. A float16 checkpoint computes in float32 on the CPU
// (LibTorch 1.13 has no float16 matmul there).
// Thread safety: see Model.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "runtime/causal_lm.h"
#include "runtime/llama_config.h"

namespace loom::runtime {

class LlamaModel : public CausalLm {
 public:
  // compute_dtype: "" (the checkpoint's), "float32", "float16" or "bfloat16".
  // `progress` (may be empty) hears the fraction loaded, 0..1.
  static Result<std::unique_ptr<LlamaModel>> load(const std::string& dir, const std::string& device,
                                                  const std::string& compute_dtype = "",
                                                  const std::function<void(double)>& progress = {});

  c10::IValue forward(std::vector<c10::IValue> inputs, HookSink* sink) override;
  at::Tensor forward_step(const StepInputs& in, KvCache& cache, HookSink* sink) override;
  int64_t vocab_size() const override { return config_.vocab_size; }
  int64_t max_positions() const override;
  std::vector<int64_t> eos_token_ids() const override { return config_.eos_token_ids; }
  std::string kind() const override { return config_.model_type; }
  std::string device() const override { return device_; }
  const LlamaConfig& config() const { return config_; }
  at::ScalarType dtype() const { return dtype_; }

 protected:
  void for_each_tensor(const std::function<void(at::Tensor&)>& f) override;
  void set_device(const std::string& device) override { device_ = device; }

 private:
  struct Layer;
  struct Ids;
  struct Step;
  LlamaModel() = default;
  at::Tensor layer(int index, const at::Tensor& x, Step& step, HookSink* sink);
  at::Tensor inv_freq(const at::Tensor& position_ids) const;

  LlamaConfig config_;
  std::string device_;
  at::ScalarType dtype_;
  at::Tensor embed_, norm_w_, lm_head_, inv_freq_;
  std::vector<std::shared_ptr<Layer>> layers_;
  std::shared_ptr<Ids> ids_;
};

// True when DIR/config.json names a Llama-family model_type (llama, qwen2).
bool is_llama_dir(const std::string& dir);

}  // namespace loom::runtime
