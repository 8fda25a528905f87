// Pieces shared by the native decoders (GPT-2, Llama) for cached steps.
// Thread safety: free functions.
#pragma once

#include <ATen/ATen.h>

#include <limits>

#include "runtime/causal_lm.h"

namespace loom::runtime::internal {

// Which keys each query of a step of t positions may attend to: [B or 1, 1, t, past + t]
// bool, causal (query i sits at position past + i) and, when the step has
// an attention mask, not on padding.
inline at::Tensor step_mask(const StepInputs& in, int64_t past, int64_t t, const at::TensorOptions& device) {
  const int64_t total = past + t;
  at::Tensor q = at::arange(past, total, device.dtype(at::kLong)).unsqueeze(1);
  at::Tensor k = at::arange(total, device.dtype(at::kLong)).unsqueeze(0);
  at::Tensor allowed = k.le(q).unsqueeze(0).unsqueeze(0);  // [1, 1, t, total]
  if (in.attention_mask.defined()) {
    allowed = allowed.logical_and(in.attention_mask.to(at::kBool).unsqueeze(1).unsqueeze(2));
  }
  return allowed;
}

// Scores where attention is not allowed get the dtype's lowest value (as
// transformers' eager attention), so a fully masked padding row stays finite.
// (torch.finfo(dtype).min).
inline at::Tensor mask_scores(const at::Tensor& scores, const at::Tensor& allowed) {
  double lowest = std::numeric_limits<float>::lowest();
  switch (scores.scalar_type()) {
    case at::kHalf: lowest = -65504.0; break;
    case at::kBFloat16: lowest = -3.3895313892515355e38; break;
    case at::kDouble: lowest = std::numeric_limits<double>::lowest(); break;
    default: break;
  }
  return at::where(allowed, scores, at::full({}, lowest, scores.options()));
}

// Appends this step's keys or values to a layer's cache entry and returns all of them.
inline at::Tensor append_cache(at::Tensor& slot, const at::Tensor& now) {
  slot = slot.defined() ? at::cat({slot, now}, 2) : now;
  return slot;
}

// Position ids for a step without any: [1, t] = past, past + 1, ..., as
// transformers makes them from cache_position (shared by every row).
inline at::Tensor default_positions(int64_t past, int64_t t, const at::TensorOptions& device) {
  return at::arange(past, past + t, device.dtype(at::kLong)).unsqueeze(0);
}

}  // namespace loom::runtime::internal
