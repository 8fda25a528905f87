// Structural validation of a graph, before anything runs. Every message names
// the node ("node 4 (op aten::add.Tensor): ...") and the problem.
//
// validate() is torch-free; what needs the model or ATen comes in through
// ValidateOptions: the model's module paths and an OpChecker (the runtime's
// checks an op against its real ATen schema). Thread safety: pure function.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "graph/ir.h"
#include "graph/status.h"

namespace loom::graph {

struct GraphLimits {
  uint32_t max_nodes = 100000;          // a traced graph has tens to thousands
  uint32_t max_invokes = 4096;
  uint32_t max_args = 64;               // per op
  uint32_t max_list_length = 4096;      // int lists, node lists
  uint64_t max_inline_constant_bytes = 64ull << 20;  // all inline constants together
  uint32_t max_rank = 16;
  uint32_t max_text_bytes = 4096;       // module paths, names, op names
};

// Checks an op node against the operator's real schema. Returns a message
// (without the node prefix) on error.
class OpChecker {
 public:
  virtual ~OpChecker() = default;
  virtual Status check(const Node& node, const Graph& graph) const = 0;
};

struct ValidateOptions {
  GraphLimits limits;
  // When set, reads and sets must name one of these (the model's modules).
  const std::vector<std::string>* module_paths = nullptr;
  // When set, every op node is checked by it; otherwise only the allowlist.
  const OpChecker* op_checker = nullptr;
};

Status validate(const Graph& graph, const ValidateOptions& options = {});

// Whether a node kind produces a value other nodes may use.
bool node_has_value(NodeKind kind);

}  // namespace loom::graph
