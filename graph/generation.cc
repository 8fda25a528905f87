#include "graph/generation.h"

#include <cmath>
#include <string>

namespace loom::graph {

Status GenerateOptions::check(int64_t vocab_size) const {
  if (max_new_tokens < 1 || max_new_tokens > kMaxNewTokens) {
    return invalid_argument("max_new_tokens must be in [1, " + std::to_string(kMaxNewTokens) + "], got " +
                            std::to_string(max_new_tokens));
  }
  if (!std::isfinite(temperature) || temperature < 0 || (temperature > 0 && temperature < kMinTemperature)) {
    return invalid_argument("temperature must be 0 (greedy) or in [1e-6, inf), got " + std::to_string(temperature));
  }
  if (top_k < 0 || top_k > kMaxTopK) {
    return invalid_argument("top_k must be in [0, 2^31), got " + std::to_string(top_k));
  }
  if (!(top_p > 0 && top_p <= 1)) return invalid_argument("top_p must be in (0, 1], got " + std::to_string(top_p));
  const int64_t limit = vocab_size < 0 ? INT64_MAX : vocab_size;
  if (stop_token_ids) {
    if (stop_token_ids->size() > kMaxStopTokens) {
      return invalid_argument("at most " + std::to_string(kMaxStopTokens) + " stop token ids, got " +
                              std::to_string(stop_token_ids->size()));
    }
    for (int64_t id : *stop_token_ids) {
      if (id < 0 || id >= limit) {
        return invalid_argument("stop token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                                std::to_string(vocab_size) + ")");
      }
    }
  }
  if (pad_token_id < -1 || pad_token_id >= limit) {
    return invalid_argument("pad token id " + std::to_string(pad_token_id) + " is outside the vocabulary");
  }
  return Status();
}

}  // namespace loom::graph
