// A decoder-only language model that can generate: one forward step at a
// time over a key/value cache, as transformers' generate(use_cache=True).
// GPT-2 and the Llama family implement it; runtime/generate.h drives it.
//
// A step's hook values are what transformers sees with the cache: step 0 is
// the whole prompt [B, T, ...], every later step the one new position
// [B, 1, ...]. Tuple outputs keep the shapes of a forward without cache
// (blocks give (hidden,), attention (output, None)); the cache itself is not
// a hook value.
// Thread safety: as Model; a KvCache belongs to one generation.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "runtime/model.h"

namespace loom::runtime {

// Keys and values of every layer for the positions run so far.
struct KvCache {
  std::vector<at::Tensor> keys;    // per layer [B, kv_heads, past, head_dim]
  std::vector<at::Tensor> values;  // per layer, same shape
  int64_t length() const { return keys.empty() || !keys[0].defined() ? 0 : keys[0].size(2); }
};

struct StepInputs {
  at::Tensor input_ids;       // [B, t] int64, on the model's device
  at::Tensor position_ids;    // [B, t] int64
  // [B, past + t] bool, true where a position may be attended to (false:
  // left padding); undefined means every position.
  at::Tensor attention_mask;
};

class CausalLm : public Model {
 public:
  // Runs `in` after the positions in `cache`, appends their keys and values
  // to it, and returns the logits [B, t, vocab]. Hooks fire as in forward().
  virtual at::Tensor forward_step(const StepInputs& in, KvCache& cache, HookSink* sink) = 0;
  virtual int64_t vocab_size() const = 0;
  virtual int64_t max_positions() const = 0;
  // The config's end-of-sequence ids (generation stops a row there).
  virtual std::vector<int64_t> eos_token_ids() const = 0;
};

}  // namespace loom::runtime
