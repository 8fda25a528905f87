// ATen operators named in a graph: resolution against the real operator
// registry, argument type checks against the real schema, and boxed calls.
//
// Besides ATen, one pseudo-op: "loom::element(tuple, int i)" takes element i
// of a tuple value (the outputs of topk, max.dim, sort, tuple module outputs).
// Thread safety: a ResolvedOp is immutable after resolve(); call() is const.
#pragma once

#include <ATen/core/ivalue.h>

#include <memory>
#include <vector>

#include "graph/ir.h"
#include "graph/status.h"
#include "graph/validate.h"

namespace loom::runtime {

class ResolvedOp {
 public:
  // Checks the allowlist, that the op exists, and every argument's kind
  // against the schema. Messages name the argument.
  static Result<ResolvedOp> resolve(const graph::Node& node);

  // `node_values[i]` is the value of the node argument i refers to (for
  // node-list arguments, `lists`); the rest comes from the graph node.
  // Throws c10::Error / std::exception on failure inside ATen.
  c10::IValue call(const graph::Node& node, const std::vector<const c10::IValue*>& node_args) const;

  // Node indexes the op reads, in the order call() expects their values.
  static std::vector<uint32_t> node_arguments(const graph::Node& node);

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

// graph::OpChecker backed by ResolvedOp::resolve().
class AtenOpChecker : public graph::OpChecker {
 public:
  Status check(const graph::Node& node, const graph::Graph& graph) const override;
};

}  // namespace loom::runtime
