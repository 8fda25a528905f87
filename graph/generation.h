// How a graph runs as a generation (runtime/generate.h): torch-free options
// shared by the runtime, the wire (transport/request.h) and the client.
// Thread safety: plain value.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "graph/status.h"

namespace loom::graph {

struct GenerateOptions {
  int64_t max_new_tokens = 16;
  // 0: greedy (argmax). > 0: sampling from softmax(logits / temperature),
  // after top_k (0: off) and top_p (1: off), in transformers' order.
  double temperature = 0;
  int64_t top_k = 0;
  double top_p = 1.0;
  uint64_t seed = 0;  // the same seed gives the same tokens
  // A row ends when it produces one of these; nullopt: the model's eos ids.
  std::optional<std::vector<int64_t>> stop_token_ids;
  int64_t pad_token_id = -1;  // -1: the first stop id, else 0

  static constexpr int64_t kMaxNewTokens = 1 << 16;
  static constexpr size_t kMaxStopTokens = 1024;
  static constexpr int64_t kMaxTopK = (int64_t{1} << 31) - 1;  // fits the wire's UInt32
  static constexpr double kMinTemperature = 1e-6;              // below it logits / T overflow
  // What can be checked without the model (vocab_size < 0: not known yet).
  Status check(int64_t vocab_size = -1) const;
};

}  // namespace loom::graph
