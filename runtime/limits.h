// Per-run limits, torch-free so that option structs (ServerOptions) can hold
// them without pulling ATen into every file that includes them.
// Thread safety: plain value.
#pragma once

#include <chrono>
#include <cstdint>

#include "graph/validate.h"

namespace loom::runtime {

// Exceeding one fails the run with RESOURCE_EXHAUSTED or DEADLINE_EXCEEDED
// and a message naming the limit; never a crash.
struct Limits {
  graph::GraphLimits graph;                          // nodes, args, inline constants
  uint64_t max_saved_bytes = 2ull << 30;             // all saves together
  uint64_t max_intermediate_bytes = 8ull << 30;      // op results computed during the run
  // What a backward pass keeps alive: the module outputs recorded for
  // autograd from the first gradient point on (an estimate of the saved
  // activations; weights never require grad, so none go to weight gradients).
  uint64_t max_autograd_bytes = 8ull << 30;
  std::chrono::milliseconds max_wall_time{10 * 60 * 1000};
};

}  // namespace loom::runtime
