#include "graph/codec.h"

#include <capnp/serialize.h>
#include <kj/exception.h>

#include <cstring>

#include "graph/sha256.h"

namespace loom::graph {
namespace {

schema::DType to_wire(DType d) { return static_cast<schema::DType>(static_cast<uint16_t>(d)); }

Result<DType> from_wire(schema::DType d) {
  auto v = static_cast<uint16_t>(d);
  if (v > static_cast<uint16_t>(DType::kBool)) {
    return invalid_argument("unknown dtype enumerant " + std::to_string(v));
  }
  return static_cast<DType>(v);
}

void point_to_capnp(const Point& p, schema::Point::Builder b) {
  b.setModule(p.module);
  b.setIo(p.io == Io::kOutput ? schema::Io::OUTPUT : schema::Io::INPUT);
  b.setIndex(p.index);
  b.setCall(p.call);
  b.setInvoke(p.invoke);
  b.setCallEnd(p.call_end);
  b.setTrace(p.trace);
  b.setStage(p.stage);
}

// The limits a graph is read under: every count and size on the reader is
// checked against them before anything of that size is built, so a small
// hostile message cannot make the decoder allocate far more than it is.
struct ReadBudget {
  const GraphLimits& limits;
  uint64_t inline_bytes = 0;

  Status text(const capnp::Text::Reader& t, const char* what) const {
    if (t.size() <= limits.max_text_bytes) return Status();
    return resource_exhausted(std::string(what) + " is " + std::to_string(t.size()) + " bytes, over the limit of " +
                              std::to_string(limits.max_text_bytes));
  }
  Status list(size_t n) const {
    if (n <= limits.max_list_length) return Status();
    return resource_exhausted("a list argument has " + std::to_string(n) + " elements, over the limit of " +
                              std::to_string(limits.max_list_length));
  }
};

Result<Point> point_from_capnp(schema::Point::Reader r, const ReadBudget& budget) {
  Point p;
  // Each pointer is read once: reads count against the traversal limit.
  const auto module = r.getModule();
  LOOM_RETURN_IF_ERROR(budget.text(module, "module path"));
  p.module = module.cStr();
  switch (r.getIo()) {
    case schema::Io::OUTPUT: p.io = Io::kOutput; break;
    case schema::Io::INPUT: p.io = Io::kInput; break;
    default: return invalid_argument("unknown io enumerant");
  }
  p.index = r.getIndex();
  p.call = r.getCall();
  p.invoke = r.getInvoke();
  p.call_end = r.getCallEnd();
  p.trace = r.getTrace();
  p.stage = r.getStage();
  return p;
}

void arg_to_capnp(const Arg& a, schema::Arg::Builder b) {
  switch (a.kind) {
    case Arg::Kind::kNone: b.setNone(); break;
    case Arg::Kind::kNode: b.setNode(a.node); break;
    case Arg::Kind::kInt: b.setInt(a.i); break;
    case Arg::Kind::kFloat: b.setFloat(a.f); break;
    case Arg::Kind::kBool: b.setBool(a.b); break;
    case Arg::Kind::kInts: {
      auto l = b.initInts(a.ints.size());
      for (size_t i = 0; i < a.ints.size(); ++i) l.set(i, a.ints[i]);
      break;
    }
    case Arg::Kind::kFloats: {
      auto l = b.initFloats(a.floats.size());
      for (size_t i = 0; i < a.floats.size(); ++i) l.set(i, a.floats[i]);
      break;
    }
    case Arg::Kind::kDType: b.setDtype(to_wire(a.dtype)); break;
    case Arg::Kind::kStr: b.setStr(a.str); break;
    case Arg::Kind::kNodes: {
      auto l = b.initNodes(a.nodes.size());
      for (size_t i = 0; i < a.nodes.size(); ++i) l.set(i, a.nodes[i]);
      break;
    }
  }
}

Result<Arg> arg_from_capnp(schema::Arg::Reader r, const ReadBudget& budget) {
  switch (r.which()) {
    case schema::Arg::NONE: return Arg::none();
    case schema::Arg::NODE: return Arg::of_node(r.getNode());
    case schema::Arg::INT: return Arg::of_int(r.getInt());
    case schema::Arg::FLOAT: return Arg::of_float(r.getFloat());
    case schema::Arg::BOOL: return Arg::of_bool(r.getBool());
    case schema::Arg::INTS: {
      const auto list = r.getInts();
      LOOM_RETURN_IF_ERROR(budget.list(list.size()));
      std::vector<int64_t> v;
      v.reserve(list.size());
      for (auto x : list) v.push_back(x);
      return Arg::of_ints(std::move(v));
    }
    case schema::Arg::FLOATS: {
      const auto list = r.getFloats();
      LOOM_RETURN_IF_ERROR(budget.list(list.size()));
      std::vector<double> v;
      v.reserve(list.size());
      for (auto x : list) v.push_back(x);
      return Arg::of_floats(std::move(v));
    }
    case schema::Arg::DTYPE: {
      LOOM_ASSIGN_OR_RETURN(DType d, from_wire(r.getDtype()));
      return Arg::of_dtype(d);
    }
    case schema::Arg::STR: {
      const auto str = r.getStr();
      LOOM_RETURN_IF_ERROR(budget.text(str, "a string argument"));
      return Arg::of_str(str.cStr());
    }
    case schema::Arg::NODES: {
      const auto list = r.getNodes();
      LOOM_RETURN_IF_ERROR(budget.list(list.size()));
      std::vector<uint32_t> v;
      v.reserve(list.size());
      for (auto x : list) v.push_back(x);
      return Arg::of_nodes(std::move(v));
    }
  }
  return invalid_argument("unknown argument kind " + std::to_string(static_cast<int>(r.which())));
}

void node_to_capnp(const Node& n, schema::Node::Builder b) {
  switch (n.kind) {
    case NodeKind::kRead: point_to_capnp(n.point, b.initRead()); break;
    case NodeKind::kSet: {
      auto s = b.initSet();
      point_to_capnp(n.point, s.initPoint());
      s.setValue(n.input);
      break;
    }
    case NodeKind::kOp: {
      auto o = b.initOp();
      o.setSchema(n.op);
      auto args = o.initArgs(n.args.size());
      for (size_t i = 0; i < n.args.size(); ++i) arg_to_capnp(n.args[i], args[i]);
      break;
    }
    case NodeKind::kConstant:
      if (!n.content_sha256.empty()) {
        b.setConstantRef(n.content_sha256);
      } else {
        auto t = b.initConstant();
        t.setDtype(to_wire(n.tensor.dtype));
        auto shape = t.initShape(n.tensor.shape.size());
        for (size_t i = 0; i < n.tensor.shape.size(); ++i) shape.set(i, n.tensor.shape[i]);
        t.setBytes(kj::arrayPtr(reinterpret_cast<const kj::byte*>(n.tensor.bytes.data()),
                                n.tensor.bytes.size()));
      }
      break;
    case NodeKind::kSave: {
      auto s = b.initSave();
      s.setValue(n.input);
      s.setName(n.name);
      s.setElements(n.elements);
      break;
    }
    case NodeKind::kStream: {
      auto s = b.initStream();
      s.setValue(n.input);
      s.setCallback(n.name);
      s.setAnyShape(n.any_shape);
      break;
    }
    case NodeKind::kLog: {
      auto s = b.initLog();
      s.setValue(n.input);
      s.setText(n.name);
      break;
    }
    case NodeKind::kStop: b.setStop(n.input); break;
    case NodeKind::kGrad: point_to_capnp(n.point, b.initGrad()); break;
    case NodeKind::kSetGrad: {
      auto s = b.initSetGrad();
      point_to_capnp(n.point, s.initPoint());
      s.setValue(n.input);
      break;
    }
    case NodeKind::kBackward: b.setBackward(n.input); break;
    case NodeKind::kSkip: {
      auto s = b.initSkip();
      point_to_capnp(n.point, s.initPoint());
      s.setValue(n.input);
      break;
    }
  }
}

Result<Node> node_from_capnp(schema::Node::Reader r, ReadBudget& budget) {
  Node n;
  const GraphLimits& limits = budget.limits;
  switch (r.which()) {
    case schema::Node::READ: {
      n.kind = NodeKind::kRead;
      LOOM_ASSIGN_OR_RETURN(n.point, point_from_capnp(r.getRead(), budget));
      return n;
    }
    case schema::Node::SET: {
      n.kind = NodeKind::kSet;
      LOOM_ASSIGN_OR_RETURN(n.point, point_from_capnp(r.getSet().getPoint(), budget));
      n.input = r.getSet().getValue();
      return n;
    }
    case schema::Node::OP: {
      n.kind = NodeKind::kOp;
      const auto op = r.getOp().getSchema();
      LOOM_RETURN_IF_ERROR(budget.text(op, "the op name"));
      n.op = op.cStr();
      const auto args = r.getOp().getArgs();
      if (args.size() > limits.max_args) {
        return resource_exhausted("has " + std::to_string(args.size()) + " arguments, over the limit of " +
                                  std::to_string(limits.max_args));
      }
      n.args.reserve(args.size());
      for (auto a : args) {
        LOOM_ASSIGN_OR_RETURN(Arg arg, arg_from_capnp(a, budget));
        n.args.push_back(std::move(arg));
      }
      return n;
    }
    case schema::Node::CONSTANT: {
      n.kind = NodeKind::kConstant;
      auto t = r.getConstant();
      LOOM_ASSIGN_OR_RETURN(n.tensor.dtype, from_wire(t.getDtype()));
      const auto shape = t.getShape();
      if (shape.size() > limits.max_rank) {
        return resource_exhausted("constant has rank " + std::to_string(shape.size()) + ", over the limit of " +
                                  std::to_string(limits.max_rank));
      }
      for (auto d : shape) n.tensor.shape.push_back(d);
      auto bytes = t.getBytes();
      budget.inline_bytes += bytes.size();
      if (budget.inline_bytes > limits.max_inline_constant_bytes) {
        return resource_exhausted("inline constants total " + std::to_string(budget.inline_bytes) +
                                  " bytes, over the limit of " + std::to_string(limits.max_inline_constant_bytes) +
                                  " (upload large tensors once and refer to them by SHA-256)");
      }
      n.tensor.bytes.assign(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
      return n;
    }
    case schema::Node::CONSTANT_REF: {
      n.kind = NodeKind::kConstant;
      const auto ref = r.getConstantRef();
      LOOM_RETURN_IF_ERROR(budget.text(ref, "a constant reference"));
      n.content_sha256 = ref.cStr();
      return n;
    }
    case schema::Node::SAVE: {
      n.kind = NodeKind::kSave;
      n.input = r.getSave().getValue();
      const auto name = r.getSave().getName();
      LOOM_RETURN_IF_ERROR(budget.text(name, "the save name"));
      n.name = name.cStr();
      n.elements = r.getSave().getElements();
      return n;
    }
    case schema::Node::STREAM: {
      n.kind = NodeKind::kStream;
      n.input = r.getStream().getValue();
      const auto callback = r.getStream().getCallback();
      LOOM_RETURN_IF_ERROR(budget.text(callback, "the callback name"));
      n.name = callback.cStr();
      n.any_shape = r.getStream().getAnyShape();
      return n;
    }
    case schema::Node::LOG: {
      n.kind = NodeKind::kLog;
      n.input = r.getLog().getValue();
      const auto text = r.getLog().getText();
      LOOM_RETURN_IF_ERROR(budget.text(text, "the log text"));
      n.name = text.cStr();
      return n;
    }
    case schema::Node::STOP:
      n.kind = NodeKind::kStop;
      n.input = r.getStop();
      return n;
    case schema::Node::GRAD: {
      n.kind = NodeKind::kGrad;
      LOOM_ASSIGN_OR_RETURN(n.point, point_from_capnp(r.getGrad(), budget));
      return n;
    }
    case schema::Node::SET_GRAD: {
      n.kind = NodeKind::kSetGrad;
      LOOM_ASSIGN_OR_RETURN(n.point, point_from_capnp(r.getSetGrad().getPoint(), budget));
      n.input = r.getSetGrad().getValue();
      return n;
    }
    case schema::Node::BACKWARD:
      n.kind = NodeKind::kBackward;
      n.input = r.getBackward();
      return n;
    case schema::Node::SKIP: {
      n.kind = NodeKind::kSkip;
      LOOM_ASSIGN_OR_RETURN(n.point, point_from_capnp(r.getSkip().getPoint(), budget));
      n.input = r.getSkip().getValue();
      return n;
    }
  }
  return invalid_argument("unknown node kind " + std::to_string(static_cast<int>(r.which())) +
                          " (sent by a newer client?)");
}

}  // namespace

void to_capnp(const Graph& graph, schema::Graph::Builder out) {
  out.setVersion(1);
  out.setInvokes(graph.invokes);
  if (!graph.trace_invokes.empty()) {
    auto t = out.initTraceInvokes(graph.trace_invokes.size());
    for (size_t i = 0; i < graph.trace_invokes.size(); ++i) t.set(i, graph.trace_invokes[i]);
  }
  auto nodes = out.initNodes(graph.nodes.size());
  for (size_t i = 0; i < graph.nodes.size(); ++i) node_to_capnp(graph.nodes[i], nodes[i]);
}

Result<Graph> from_capnp(schema::Graph::Reader in, const GraphLimits& limits) {
  Graph g;
  Status status;
  ReadBudget budget{limits};
  // Text fields that are not valid (e.g. not NUL-terminated) throw kj exceptions.
  kj::Maybe<kj::Exception> err = kj::runCatchingExceptions([&]() {
    if (in.getVersion() != 1) {
      status = invalid_argument("graph version " + std::to_string(in.getVersion()) +
                                " is not supported (this build reads version 1)");
      return;
    }
    g.invokes = in.getInvokes();
    if (g.invokes > limits.max_invokes) {
      status = resource_exhausted("graph has " + std::to_string(g.invokes) + " invokes, over the limit of " +
                                  std::to_string(limits.max_invokes));
      return;
    }
    const auto traces = in.getTraceInvokes();
    if (traces.size() > kMaxSessionTraces) {
      status = resource_exhausted("the session has " + std::to_string(traces.size()) + " traces, over the limit of " +
                                  std::to_string(kMaxSessionTraces));
      return;
    }
    for (auto t : traces) g.trace_invokes.push_back(t);
    auto nodes = in.getNodes();
    // Checked on the reader: a list of a million empty structs is a few bytes.
    if (nodes.size() > limits.max_nodes) {
      status = resource_exhausted("graph has " + std::to_string(nodes.size()) + " nodes, over the limit of " +
                                  std::to_string(limits.max_nodes));
      return;
    }
    g.nodes.reserve(nodes.size());
    for (uint32_t i = 0; i < nodes.size(); ++i) {
      auto n = node_from_capnp(nodes[i], budget);
      if (!n.ok()) {
        status = n.status().with_context("node " + std::to_string(i));
        return;
      }
      g.nodes.push_back(std::move(n).value());
    }
  });
  KJ_IF_MAYBE(e, err) {
    return invalid_argument(std::string("malformed graph: ") + e->getDescription().cStr());
  }
  if (!status.ok()) return status;
  return g;
}

std::string encode_graph(const Graph& graph) {
  capnp::MallocMessageBuilder message;
  to_capnp(graph, message.initRoot<schema::Graph>());
  auto words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

Result<Graph> decode_graph(const std::string& bytes, const DecodeLimits& limits) {
  if (bytes.size() % sizeof(capnp::word) != 0) {
    return invalid_argument("malformed graph: " + std::to_string(bytes.size()) +
                            " bytes is not a whole number of 8-byte words (truncated?)");
  }
  // Copy into word-aligned memory: the reader requires alignment.
  kj::Array<capnp::word> words = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
  if (!bytes.empty()) std::memcpy(words.begin(), bytes.data(), bytes.size());
  Result<Graph> result = invalid_argument("malformed graph");
  kj::Maybe<kj::Exception> err = kj::runCatchingExceptions([&]() {
    capnp::ReaderOptions options;
    options.traversalLimitInWords = limits.traversal_limit_words;
    options.nestingLimit = limits.nesting_limit;
    capnp::FlatArrayMessageReader reader(words, options);
    result = from_capnp(reader.getRoot<schema::Graph>());
  });
  KJ_IF_MAYBE(e, err) {
    return invalid_argument(std::string("malformed graph: ") + e->getDescription().cStr());
  }
  return result;
}

std::string canonical_graph_bytes(const Graph& graph) {
  capnp::MallocMessageBuilder message;
  to_capnp(graph, message.initRoot<schema::Graph>());
  auto words = capnp::canonicalize(message.getRoot<schema::Graph>().asReader());
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

std::string graph_checksum(const Graph& graph) { return sha256_hex(canonical_graph_bytes(graph)); }

}  // namespace loom::graph
