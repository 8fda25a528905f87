// Native GPT-2 (Hugging Face GPT2LMHeadModel numerics) loaded straight from a
// checkpoint directory: config.json + model.safetensors, no Python.
//
// Module paths and hook values follow Hugging Face (use_cache=False):
//   ""                          in: input_ids [B,T] int64   out: logits [B,T,V]
//   transformer                 in: input_ids               out: (last_hidden_state,)
//   transformer.wte / .wpe      in: ids / position ids      out: embeddings
//   transformer.drop            in/out: embeddings sum
//   transformer.h.N             in: hidden                  out: (hidden,)
//   transformer.h.N.ln_1 / .ln_2 / transformer.ln_f        out: normalised hidden
//   transformer.h.N.attn        in: hidden                  out: (attn_output, None)
//   transformer.h.N.attn.c_attn out: qkv [B,T,3C]; .c_proj out: [B,T,C]
//   transformer.h.N.attn.attn_dropout  in/out: attention probabilities [B,H,T,T]
//   transformer.h.N.attn.resid_dropout in/out: attention output [B,T,C]
//   transformer.h.N.mlp (.c_fc, .act, .c_proj, .dropout)
//   lm_head                     in: final hidden            out: logits
// "transformer.h" (the ModuleList) is listed but never called, as in HF.
// Thread safety: see Model.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "runtime/causal_lm.h"
#include "runtime/gpt2_config.h"

namespace loom::runtime {

class Gpt2Model : public CausalLm {
 public:
  // Reads DIR/config.json and DIR/model.safetensors; parameter names with or
  // without a "transformer." prefix; attn.bias / attn.masked_bias buffers
  // ignored; lm_head.weight used if present, else tied to wte.
  // `progress` (may be empty) hears the fraction loaded, 0..1.
  static Result<std::unique_ptr<Gpt2Model>> load(const std::string& dir, const std::string& device,
                                                 const std::function<void(double)>& progress = {});

  c10::IValue forward(std::vector<c10::IValue> inputs, HookSink* sink) override;
  at::Tensor forward_step(const StepInputs& in, KvCache& cache, HookSink* sink) override;
  int64_t vocab_size() const override { return config_.vocab_size; }
  int64_t max_positions() const override { return config_.n_positions; }
  std::vector<int64_t> eos_token_ids() const override;
  std::string kind() const override { return "gpt2"; }
  std::string device() const override { return device_; }
  const Gpt2Config& config() const { return config_; }

 protected:
  void for_each_tensor(const std::function<void(at::Tensor&)>& f) override;
  void set_device(const std::string& device) override { device_ = device; }

 private:
  struct Layer;
  struct Ids;
  Gpt2Model() = default;
  struct Step;
  at::Tensor block(int layer, const at::Tensor& x, Step& step, HookSink* sink);

  Gpt2Config config_;
  std::string device_;
  at::Tensor wte_, wpe_, ln_f_w_, ln_f_b_, lm_head_;
  std::vector<std::shared_ptr<Layer>> layers_;
  std::shared_ptr<Ids> ids_;
};

}  // namespace loom::runtime
