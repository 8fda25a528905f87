#include "graph/ir.h"

namespace loom::graph {

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return "F32";
    case DType::kFloat64: return "F64";
    case DType::kFloat16: return "F16";
    case DType::kBFloat16: return "BF16";
    case DType::kInt64: return "I64";
    case DType::kInt32: return "I32";
    case DType::kInt16: return "I16";
    case DType::kInt8: return "I8";
    case DType::kUInt8: return "U8";
    case DType::kBool: return "BOOL";
  }
  return "?";
}

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kFloat64: case DType::kInt64: return 8;
    case DType::kFloat32: case DType::kInt32: return 4;
    case DType::kFloat16: case DType::kBFloat16: case DType::kInt16: return 2;
    case DType::kInt8: case DType::kUInt8: case DType::kBool: return 1;
  }
  return 0;
}

std::string Point::to_string() const {
  std::string s = module.empty() ? std::string("<root>") : module;
  s += io == Io::kOutput ? ".output" : ".input";
  if (index >= 0) s += "." + std::to_string(index);
  if (call_end == kEveryCall) {
    s += call == 0 ? std::string("@all") : "@" + std::to_string(call) + ":";
  } else if (call_end != 0) {
    s += "@" + std::to_string(call) + ":" + std::to_string(call_end);
  } else if (call > 0) {
    s += "@" + std::to_string(call);
  }
  if (invoke >= 0) s += " (invoke " + std::to_string(invoke) + ")";
  if (trace > 0) s += " (trace " + std::to_string(trace) + ")";
  return s;
}

uint32_t Graph::first_invoke(uint32_t t) const {
  uint32_t first = 0;
  for (uint32_t i = 0; i < t && i < trace_invokes.size(); ++i) first += trace_invokes[i];
  return first;
}

const char* arg_kind_name(Arg::Kind kind) {
  switch (kind) {
    case Arg::Kind::kNone: return "None";
    case Arg::Kind::kNode: return "node";
    case Arg::Kind::kInt: return "int";
    case Arg::Kind::kFloat: return "float";
    case Arg::Kind::kBool: return "bool";
    case Arg::Kind::kInts: return "int[]";
    case Arg::Kind::kFloats: return "float[]";
    case Arg::Kind::kDType: return "dtype";
    case Arg::Kind::kStr: return "str";
    case Arg::Kind::kNodes: return "node[]";
  }
  return "?";
}

const char* node_kind_name(NodeKind kind) {
  switch (kind) {
    case NodeKind::kRead: return "read";
    case NodeKind::kSet: return "set";
    case NodeKind::kOp: return "op";
    case NodeKind::kConstant: return "constant";
    case NodeKind::kSave: return "save";
    case NodeKind::kStream: return "stream";
    case NodeKind::kLog: return "log";
    case NodeKind::kStop: return "stop";
    case NodeKind::kGrad: return "grad";
    case NodeKind::kSetGrad: return "set_grad";
    case NodeKind::kBackward: return "backward";
    case NodeKind::kSkip: return "skip";
  }
  return "?";
}

std::vector<uint32_t> Node::dependencies() const {
  switch (kind) {
    case NodeKind::kSet: case NodeKind::kSave: case NodeKind::kStream:
    case NodeKind::kLog: case NodeKind::kStop: case NodeKind::kSetGrad:
    case NodeKind::kBackward: case NodeKind::kSkip:
      return {input};
    case NodeKind::kOp: {
      std::vector<uint32_t> deps;
      for (const Arg& a : args) {
        if (a.kind == Arg::Kind::kNode) deps.push_back(a.node);
        if (a.kind == Arg::Kind::kNodes) deps.insert(deps.end(), a.nodes.begin(), a.nodes.end());
      }
      return deps;
    }
    case NodeKind::kRead: case NodeKind::kConstant: case NodeKind::kGrad:
      return {};
  }
  return {};
}

std::string describe_node(const Graph& graph, uint32_t index) {
  std::string s = "node " + std::to_string(index);
  if (index >= graph.nodes.size()) return s;
  const Node& n = graph.nodes[index];
  s += " (";
  s += node_kind_name(n.kind);
  switch (n.kind) {
    case NodeKind::kRead: case NodeKind::kSet: case NodeKind::kGrad: case NodeKind::kSetGrad:
    case NodeKind::kSkip:
      s += " " + n.point.to_string();
      break;
    case NodeKind::kOp: s += " " + n.op; break;
    case NodeKind::kSave: case NodeKind::kStream: s += " \"" + n.name + "\""; break;
    default: break;
  }
  return s + ")";
}

}  // namespace loom::graph
