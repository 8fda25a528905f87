#include "graph/validate.h"

#include <algorithm>
#include <unordered_set>

#include "graph/allowlist.h"

namespace loom::graph {
namespace {

Status node_error(const Graph& g, uint32_t i, const std::string& msg) {
  return invalid_argument(describe_node(g, i) + ": " + msg);
}

bool is_hex_sha256(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// The closest module path by shared prefix, for "did you mean" hints.
std::string closest_module(const std::vector<std::string>& paths, const std::string& want) {
  std::string best;
  size_t best_len = 0;
  for (const auto& p : paths) {
    size_t n = 0;
    while (n < p.size() && n < want.size() && p[n] == want[n]) ++n;
    if (n > best_len) { best_len = n; best = p; }
  }
  return best;
}

Status check_point(const Graph& g, uint32_t i, const Point& p, const ValidateOptions& o) {
  if (p.module.size() > o.limits.max_text_bytes) {
    return node_error(g, i, "module path is " + std::to_string(p.module.size()) +
                                " bytes, over the limit of " + std::to_string(o.limits.max_text_bytes));
  }
  if (p.invoke < -1 || (p.invoke >= 0 && static_cast<uint32_t>(p.invoke) >= g.invokes)) {
    return node_error(g, i, "invoke " + std::to_string(p.invoke) + " does not exist (the trace has " +
                                std::to_string(g.invokes) + " invoke(s))");
  }
  if (p.io == Io::kInput && p.index < 0) {
    return node_error(g, i, "an input point needs an argument index >= 0, got " + std::to_string(p.index));
  }
  if (p.index < -1) return node_error(g, i, "element index " + std::to_string(p.index) + " is negative");
  if (p.trace >= g.traces()) {
    return node_error(g, i, "trace " + std::to_string(p.trace) + " does not exist (the session has " +
                                std::to_string(g.traces()) + " trace(s))");
  }
  if (p.invoke >= 0 && (static_cast<uint32_t>(p.invoke) < g.first_invoke(p.trace) ||
                        static_cast<uint32_t>(p.invoke) >= g.first_invoke(p.trace) + g.invokes_of(p.trace))) {
    return node_error(g, i, "invoke " + std::to_string(p.invoke) + " belongs to another trace than trace " +
                                std::to_string(p.trace));
  }
  if (p.call_end != 0 && p.call_end <= p.call) {
    return node_error(g, i, "the step range " + std::to_string(p.call) + ":" + std::to_string(p.call_end) +
                                " is empty (the end must be past the start)");
  }
  if (o.module_paths != nullptr &&
      std::find(o.module_paths->begin(), o.module_paths->end(), p.module) == o.module_paths->end()) {
    std::string hint = closest_module(*o.module_paths, p.module);
    return node_error(g, i, "the model has no module \"" + p.module + "\"" +
                                (hint.empty() ? "" : " (closest: \"" + hint + "\")"));
  }
  return Status();
}

Status check_tensor(const Graph& g, uint32_t i, const TensorData& t, const GraphLimits& limits) {
  if (t.shape.size() > limits.max_rank) {
    return node_error(g, i, "constant has rank " + std::to_string(t.shape.size()) + ", over the limit of " +
                                std::to_string(limits.max_rank));
  }
  uint64_t numel = 1;
  for (int64_t d : t.shape) {
    if (d < 0) return node_error(g, i, "constant has negative dimension " + std::to_string(d));
    if (d > 0 && numel > (UINT64_MAX / 16) / static_cast<uint64_t>(d)) {
      return node_error(g, i, "constant shape overflows");
    }
    numel *= static_cast<uint64_t>(d);
  }
  uint64_t need = numel * dtype_size(t.dtype);
  if (need != t.bytes.size()) {
    return node_error(g, i, std::string("constant of dtype ") + dtype_name(t.dtype) + " needs " +
                                std::to_string(need) + " bytes for its shape but carries " +
                                std::to_string(t.bytes.size()));
  }
  return Status();
}

}  // namespace

bool node_has_value(NodeKind kind) {
  switch (kind) {
    case NodeKind::kRead: case NodeKind::kOp: case NodeKind::kConstant:
    case NodeKind::kStream: case NodeKind::kSave: case NodeKind::kGrad:
      return true;
    case NodeKind::kSet: case NodeKind::kLog: case NodeKind::kStop:
    case NodeKind::kSetGrad: case NodeKind::kBackward: case NodeKind::kSkip:
      return false;
  }
  return false;
}

Status validate(const Graph& g, const ValidateOptions& o) {
  const GraphLimits& limits = o.limits;
  if (g.invokes == 0) return invalid_argument("graph has 0 invokes; it needs at least 1");
  if (g.invokes > limits.max_invokes) {
    return resource_exhausted("graph has " + std::to_string(g.invokes) + " invokes, over the limit of " +
                              std::to_string(limits.max_invokes));
  }
  if (!g.trace_invokes.empty()) {
    if (g.trace_invokes.size() > kMaxSessionTraces) {
      return resource_exhausted("the session has " + std::to_string(g.trace_invokes.size()) +
                                " traces, over the limit of " + std::to_string(kMaxSessionTraces));
    }
    uint64_t total = 0;
    for (size_t t = 0; t < g.trace_invokes.size(); ++t) {
      if (g.trace_invokes[t] == 0) return invalid_argument("trace " + std::to_string(t) + " of the session has no invoke");
      total += g.trace_invokes[t];
    }
    if (total != g.invokes) {
      return invalid_argument("the session's traces have " + std::to_string(total) + " invokes in all, but the graph has " +
                              std::to_string(g.invokes));
    }
  }
  if (g.nodes.size() > limits.max_nodes) {
    return resource_exhausted("graph has " + std::to_string(g.nodes.size()) + " nodes, over the limit of " +
                              std::to_string(limits.max_nodes));
  }
  uint64_t inline_bytes = 0;
  std::unordered_set<std::string> save_names;
  // Per node: whether it uses a gradient (transitively). Gradients exist only
  // during the backward pass, after every forward value they could change.
  std::vector<uint8_t> uses_grad(g.nodes.size(), 0);
  int64_t backward = -1;
  int64_t first_grad = -1;
  for (uint32_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (n.kind == NodeKind::kGrad) uses_grad[i] = 1;
    for (uint32_t dep : n.dependencies()) {
      if (dep >= g.nodes.size()) {
        return node_error(g, i, "refers to node " + std::to_string(dep) + ", which does not exist (the graph has " +
                                    std::to_string(g.nodes.size()) + " nodes)");
      }
      if (dep >= i) {
        return node_error(g, i, "refers to node " + std::to_string(dep) +
                                    ", which does not come before it (a cycle or forward reference)");
      }
      if (!node_has_value(g.nodes[dep].kind)) {
        return node_error(g, i, "uses " + describe_node(g, dep) + ", which has no value");
      }
      if (uses_grad[dep]) uses_grad[i] = 1;
    }
    if (uses_grad[i] && (n.kind == NodeKind::kSet || n.kind == NodeKind::kSkip || n.kind == NodeKind::kBackward ||
                         n.kind == NodeKind::kStop)) {
      return node_error(g, i, "uses a gradient, which exists only during the backward pass, after the forward values "
                              "this node would need it for");
    }
    switch (n.kind) {
      case NodeKind::kRead: case NodeKind::kSet:
        LOOM_RETURN_IF_ERROR(check_point(g, i, n.point, o));
        break;
      case NodeKind::kOp: {
        if (n.op.size() > limits.max_text_bytes) return node_error(g, i, "op name too long");
        if (n.args.size() > limits.max_args) {
          return node_error(g, i, "has " + std::to_string(n.args.size()) + " arguments, over the limit of " +
                                      std::to_string(limits.max_args));
        }
        for (const Arg& a : n.args) {
          size_t len = a.ints.size() + a.floats.size() + a.nodes.size();
          if (len > limits.max_list_length) {
            return node_error(g, i, "a list argument has " + std::to_string(len) + " elements, over the limit of " +
                                        std::to_string(limits.max_list_length));
          }
          if (a.str.size() > limits.max_text_bytes) return node_error(g, i, "a string argument is too long");
        }
        if (o.op_checker != nullptr) {
          Status s = o.op_checker->check(n, g);
          if (!s.ok()) return Status(s.code(), describe_node(g, i) + ": " + s.message());
        } else if (!is_allowlisted_op(n.op)) {
          return node_error(g, i, "op \"" + n.op + "\" is not on the allowlist");
        }
        break;
      }
      case NodeKind::kConstant:
        if (!n.content_sha256.empty()) {
          if (!is_hex_sha256(n.content_sha256)) {
            return node_error(g, i, "content reference \"" + n.content_sha256.substr(0, 80) +
                                        "\" is not a lowercase hex SHA-256");
          }
          break;
        }
        LOOM_RETURN_IF_ERROR(check_tensor(g, i, n.tensor, limits));
        inline_bytes += n.tensor.bytes.size();
        if (inline_bytes > limits.max_inline_constant_bytes) {
          return Status(StatusCode::kResourceExhausted,
                        describe_node(g, i) + ": inline constants total " + std::to_string(inline_bytes) +
                            " bytes, over the limit of " + std::to_string(limits.max_inline_constant_bytes) +
                            " (upload large tensors once and refer to them by SHA-256)");
        }
        break;
      case NodeKind::kSave:
        if (n.name.empty()) return node_error(g, i, "save name is empty");
        if (n.name.size() > limits.max_text_bytes) return node_error(g, i, "save name is too long");
        if (n.name == "__metadata__") return node_error(g, i, "save name \"__metadata__\" is reserved");
        if (!save_names.insert(n.name).second) {
          return node_error(g, i, "save name \"" + n.name + "\" is used twice");
        }
        break;
      case NodeKind::kStream:
        if (n.name.empty()) return node_error(g, i, "stream callback name is empty");
        if (n.name.size() > limits.max_text_bytes) return node_error(g, i, "stream callback name is too long");
        break;
      case NodeKind::kLog:
        if (n.name.size() > limits.max_text_bytes) return node_error(g, i, "log text is too long");
        break;
      case NodeKind::kStop:
        break;
      case NodeKind::kGrad: case NodeKind::kSetGrad:
        LOOM_RETURN_IF_ERROR(check_point(g, i, n.point, o));
        if (n.point.repeats()) {
          return node_error(g, i, "gradients at a point covering several steps are not supported: name one step");
        }
        if (first_grad < 0) first_grad = i;
        break;
      case NodeKind::kBackward:
        if (backward >= 0) {
          return node_error(g, i, "a trace runs one backward pass, and " + describe_node(g, static_cast<uint32_t>(backward)) +
                                      " is already one (sum the losses into one scalar)");
        }
        backward = i;
        break;
      case NodeKind::kSkip:
        LOOM_RETURN_IF_ERROR(check_point(g, i, n.point, o));
        if (n.point.io != Io::kOutput || n.point.index != -1) {
          return node_error(g, i, "a skip replaces a module's whole output: use the output point with no element index");
        }
        if (n.point.invoke != -1) {
          return node_error(g, i, "a module runs for the whole batch, so a skip cannot be limited to invoke " +
                                      std::to_string(n.point.invoke));
        }
        if (n.point.module.empty()) return node_error(g, i, "the root module cannot be skipped");
        break;
    }
  }
  if (first_grad >= 0 && backward < 0) {
    return node_error(g, static_cast<uint32_t>(first_grad),
                      "reads or sets a gradient, but the trace has no backward pass (call backward(loss))");
  }
  return Status();
}

}  // namespace loom::graph
