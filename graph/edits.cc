#include "graph/edits.h"

#include <algorithm>

namespace loom::graph {
namespace {

void shift(Node& n, uint32_t by) {
  switch (n.kind) {
    case NodeKind::kOp:
      for (Arg& a : n.args) {
        if (a.kind == Arg::Kind::kNode) a.node += by;
        for (uint32_t& x : a.nodes) x += by;
      }
      break;
    case NodeKind::kRead: case NodeKind::kConstant: case NodeKind::kGrad:
      break;
    default:
      n.input += by;
      break;
  }
}

}  // namespace

Status check_edit(const Graph& edit) {
  if (edit.invokes != 1 || !edit.trace_invokes.empty()) {
    return invalid_argument("an edit is one trace of one invoke (it applies to whole batches)");
  }
  for (uint32_t i = 0; i < edit.nodes.size(); ++i) {
    const Node& n = edit.nodes[i];
    switch (n.kind) {
      case NodeKind::kRead: case NodeKind::kSet: case NodeKind::kSkip:
        if (n.point.invoke != -1) {
          return invalid_argument(describe_node(edit, i) + ": an edit applies to the whole batch, not invoke " +
                                  std::to_string(n.point.invoke));
        }
        break;
      case NodeKind::kOp: case NodeKind::kConstant:
        break;
      default:
        return invalid_argument(describe_node(edit, i) + ": an edit only reads, computes, sets and skips; a " +
                                node_kind_name(n.kind) + " node belongs in the trace that uses the edit");
    }
  }
  return Status();
}

Result<Graph> apply_edit(const Graph& edit, const Graph& trace) {
  LOOM_RETURN_IF_ERROR(check_edit(edit));
  // The trace's points see what every stage of the edit set.
  uint32_t depth = 0;
  for (const Node& n : edit.nodes) depth = std::max(depth, n.point.stage + 1);
  Graph out;
  out.invokes = trace.invokes;
  out.trace_invokes = trace.trace_invokes;
  const uint32_t traces = trace.traces();
  const uint64_t total = static_cast<uint64_t>(edit.nodes.size()) * traces + trace.nodes.size();
  if (total > UINT32_MAX) return resource_exhausted("the edit and the trace together have too many nodes");
  out.nodes.reserve(static_cast<size_t>(total));
  for (uint32_t t = 0; t < traces; ++t) {
    const uint32_t base = static_cast<uint32_t>(out.nodes.size());
    for (Node n : edit.nodes) {
      shift(n, base);
      n.point.trace = t;
      out.nodes.push_back(std::move(n));
    }
  }
  const uint32_t base = static_cast<uint32_t>(out.nodes.size());
  for (Node n : trace.nodes) {
    shift(n, base);
    n.point.stage += depth;
    out.nodes.push_back(std::move(n));
  }
  return out;
}

}  // namespace loom::graph
