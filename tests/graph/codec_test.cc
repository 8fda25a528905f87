// Tests for graph/codec.h and graph/sha256.h: the wire encoding of a graph,
// its canonical form and checksum, and decoding of hostile input.
#include "graph/codec.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "graph/builder.h"
#include "graph/sha256.h"

namespace loom::graph {
namespace {

::testing::AssertionResult contains(const std::string& haystack, const std::string& needle) {
  if (haystack.find(needle) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << haystack << "\" does not contain \"" << needle << "\"";
}

// A graph with every node kind and every argument kind, with non-default values
// in every field so that a field dropped by the codec shows.
Graph every_kind_graph() {
  Graph g;
  g.invokes = 3;
  Node read;
  read.kind = NodeKind::kRead;
  read.point = Point{"transformer.h.0", Io::kOutput, 0, 2, 1};
  g.nodes.push_back(read);  // 0

  Node read_input;
  read_input.kind = NodeKind::kRead;
  read_input.point = Point{"", Io::kInput, 3, 0, -1};
  g.nodes.push_back(read_input);  // 1

  Node constant;
  constant.kind = NodeKind::kConstant;
  constant.tensor.dtype = DType::kFloat16;
  constant.tensor.shape = {2, 3};
  constant.tensor.bytes = std::string("\x00\x3c\x00\x40\x00\x00\xff\xfb\x01\x00\x00\x80", 12);  // embedded NULs
  g.nodes.push_back(constant);  // 2

  Node constant_ref;
  constant_ref.kind = NodeKind::kConstant;
  constant_ref.content_sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  g.nodes.push_back(constant_ref);  // 3

  Node op;
  op.kind = NodeKind::kOp;
  op.op = "aten::custom.overload";
  op.args = {
      Arg::none(),
      Arg::of_node(0),
      Arg::of_int(-7),
      Arg::of_float(2.5),
      Arg::of_bool(true),
      Arg::of_ints({1, -2, int64_t{1} << 40}),
      Arg::of_floats({0.5, -1.25, 1e300}),
      Arg::of_dtype(DType::kBFloat16),
      Arg::of_str("hello, world"),
      Arg::of_nodes({0, 1, 2, 3}),
  };
  g.nodes.push_back(op);  // 4

  Node set;
  set.kind = NodeKind::kSet;
  set.point = Point{"transformer.h.1", Io::kInput, 0, 1, 2};
  set.input = 4;
  g.nodes.push_back(set);  // 5

  Node save;
  save.kind = NodeKind::kSave;
  save.input = 4;
  save.name = "result";
  g.nodes.push_back(save);  // 6

  Node stream;
  stream.kind = NodeKind::kStream;
  stream.input = 6;
  stream.name = "callback";
  g.nodes.push_back(stream);  // 7

  Node log;
  log.kind = NodeKind::kLog;
  log.input = 7;
  log.name = "a log line";
  g.nodes.push_back(log);  // 8

  Node stop;
  stop.kind = NodeKind::kStop;
  stop.input = 7;
  g.nodes.push_back(stop);  // 9

  Node grad;
  grad.kind = NodeKind::kGrad;
  grad.point = Point{"transformer.h.1", Io::kOutput, 0, 0, 2, 0, 1};  // invoke 2 is trace 1's
  g.nodes.push_back(grad);  // 10
  Node set_grad;
  set_grad.kind = NodeKind::kSetGrad;
  set_grad.point = grad.point;
  set_grad.input = 10;
  g.nodes.push_back(set_grad);  // 11
  Node backward;
  backward.kind = NodeKind::kBackward;
  backward.input = 7;
  g.nodes.push_back(backward);  // 12
  Node skip;
  skip.kind = NodeKind::kSkip;
  skip.point = Point{"transformer.h.2", Io::kOutput, -1, 1, -1};
  skip.input = 0;
  g.nodes.push_back(skip);  // 13
  Node cache;
  cache.kind = NodeKind::kSave;
  cache.input = 0;
  cache.name = "transformer.h.0.output";
  cache.elements = true;
  g.nodes.push_back(cache);  // 14
  g.trace_invokes = {2, 1};
  return g;
}

void expect_point_eq(const Point& a, const Point& b) {
  EXPECT_EQ(a.module, b.module);
  EXPECT_EQ(a.io, b.io);
  EXPECT_EQ(a.index, b.index);
  EXPECT_EQ(a.call, b.call);
  EXPECT_EQ(a.invoke, b.invoke);
  EXPECT_EQ(a.call_end, b.call_end);
  EXPECT_EQ(a.trace, b.trace);
}

void expect_arg_eq(const Arg& a, const Arg& b) {
  ASSERT_EQ(a.kind, b.kind) << arg_kind_name(a.kind) << " vs " << arg_kind_name(b.kind);
  switch (a.kind) {
    case Arg::Kind::kNone: break;
    case Arg::Kind::kNode: EXPECT_EQ(a.node, b.node); break;
    case Arg::Kind::kInt: EXPECT_EQ(a.i, b.i); break;
    case Arg::Kind::kFloat: EXPECT_EQ(a.f, b.f); break;
    case Arg::Kind::kBool: EXPECT_EQ(a.b, b.b); break;
    case Arg::Kind::kInts: EXPECT_EQ(a.ints, b.ints); break;
    case Arg::Kind::kFloats: EXPECT_EQ(a.floats, b.floats); break;
    case Arg::Kind::kDType: EXPECT_EQ(a.dtype, b.dtype); break;
    case Arg::Kind::kStr: EXPECT_EQ(a.str, b.str); break;
    case Arg::Kind::kNodes: EXPECT_EQ(a.nodes, b.nodes); break;
  }
}

void expect_node_eq(const Node& a, const Node& b) {
  ASSERT_EQ(a.kind, b.kind) << node_kind_name(a.kind) << " vs " << node_kind_name(b.kind);
  switch (a.kind) {
    case NodeKind::kRead: case NodeKind::kGrad: expect_point_eq(a.point, b.point); break;
    case NodeKind::kSet: case NodeKind::kSetGrad: case NodeKind::kSkip:
      expect_point_eq(a.point, b.point);
      EXPECT_EQ(a.input, b.input);
      break;
    case NodeKind::kOp:
      EXPECT_EQ(a.op, b.op);
      ASSERT_EQ(a.args.size(), b.args.size());
      for (size_t i = 0; i < a.args.size(); ++i) {
        SCOPED_TRACE("arg " + std::to_string(i));
        expect_arg_eq(a.args[i], b.args[i]);
      }
      break;
    case NodeKind::kConstant:
      EXPECT_EQ(a.content_sha256, b.content_sha256);
      EXPECT_EQ(a.tensor.dtype, b.tensor.dtype);
      EXPECT_EQ(a.tensor.shape, b.tensor.shape);
      EXPECT_EQ(a.tensor.bytes, b.tensor.bytes);
      break;
    case NodeKind::kSave: case NodeKind::kStream: case NodeKind::kLog:
      EXPECT_EQ(a.input, b.input);
      EXPECT_EQ(a.name, b.name);
      EXPECT_EQ(a.elements, b.elements);
      EXPECT_EQ(a.any_shape, b.any_shape);
      break;
    case NodeKind::kStop: case NodeKind::kBackward: EXPECT_EQ(a.input, b.input); break;
  }
}

void expect_graph_eq(const Graph& a, const Graph& b) {
  EXPECT_EQ(a.invokes, b.invokes);
  EXPECT_EQ(a.trace_invokes, b.trace_invokes);
  ASSERT_EQ(a.nodes.size(), b.nodes.size());
  for (size_t i = 0; i < a.nodes.size(); ++i) {
    SCOPED_TRACE("node " + std::to_string(i));
    expect_node_eq(a.nodes[i], b.nodes[i]);
  }
}

// A trace as a client would write it; `factor` varies it.
Graph traced_graph(double factor) {
  Builder b;
  Value h = b.module("transformer.h.3").output(0);
  b.module("transformer.h.5").output(0).set(h * factor);
  b.output().save("logits");
  return b.graph();
}

// Encodes `g` with one field changed after to_capnp, to produce what this build never writes.
template <typename Mutate>
std::string encode_mutated(const Graph& g, Mutate mutate) {
  capnp::MallocMessageBuilder message;
  auto root = message.initRoot<schema::Graph>();
  to_capnp(g, root);
  mutate(root);
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

// ---- round trip ----------------------------------------------------------------

TEST(Codec, RoundTripKeepsEveryNodeAndArgumentKind) {
  Graph g = every_kind_graph();
  std::string bytes = encode_graph(g);
  EXPECT_EQ(bytes.size() % 8, 0u);
  Result<Graph> back = decode_graph(bytes);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  expect_graph_eq(g, *back);
  // The fixture really covers every kind.
  std::vector<bool> node_kinds(12), arg_kinds(10);
  for (const Node& n : back->nodes) {
    node_kinds[static_cast<int>(n.kind)] = true;
    for (const Arg& a : n.args) arg_kinds[static_cast<int>(a.kind)] = true;
  }
  EXPECT_EQ(std::count(node_kinds.begin(), node_kinds.end(), true), 12);
  EXPECT_EQ(std::count(arg_kinds.begin(), arg_kinds.end(), true), 10);
}

TEST(Codec, RoundTripThroughCapnpBuilderAndReader) {
  Graph g = every_kind_graph();
  capnp::MallocMessageBuilder message;
  to_capnp(g, message.initRoot<schema::Graph>());
  auto root = message.getRoot<schema::Graph>().asReader();
  EXPECT_EQ(root.getVersion(), 1u);
  EXPECT_EQ(root.getInvokes(), 3u);
  Result<Graph> back = from_capnp(root);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  expect_graph_eq(g, *back);
}

TEST(Codec, RoundTripKeepsEveryDType) {
  Graph g;
  for (int d = 0; d <= static_cast<int>(DType::kBool); ++d) {
    Node n;
    n.kind = NodeKind::kConstant;
    n.tensor.dtype = static_cast<DType>(d);
    n.tensor.shape = {1};
    n.tensor.bytes = std::string(dtype_size(n.tensor.dtype), '\x01');
    g.nodes.push_back(n);
    Node op;
    op.kind = NodeKind::kOp;
    op.op = "aten::to.dtype";
    op.args = {Arg::of_node(static_cast<uint32_t>(g.nodes.size() - 1)), Arg::of_dtype(static_cast<DType>(d))};
    g.nodes.push_back(op);
  }
  Result<Graph> back = decode_graph(encode_graph(g));
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  expect_graph_eq(g, *back);
}

TEST(Codec, RoundTripOfAnEmptyGraph) {
  Graph g;
  g.invokes = 1;
  Result<Graph> back = decode_graph(encode_graph(g));
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->invokes, 1u);
  EXPECT_TRUE(back->nodes.empty());
}

TEST(Codec, RoundTripOfABuilderTrace) {
  Graph g = traced_graph(2.0);
  Result<Graph> back = decode_graph(encode_graph(g));
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  expect_graph_eq(g, *back);
}

// ---- canonical bytes and checksum --------------------------------------------------

TEST(Codec, SameGraphBuiltTwiceHasTheSameChecksum) {
  EXPECT_EQ(canonical_graph_bytes(traced_graph(2.0)), canonical_graph_bytes(traced_graph(2.0)));
  EXPECT_EQ(graph_checksum(traced_graph(2.0)), graph_checksum(traced_graph(2.0)));
  EXPECT_EQ(graph_checksum(every_kind_graph()), graph_checksum(every_kind_graph()));
}

TEST(Codec, DifferentGraphsHaveDifferentChecksums) {
  std::vector<std::string> sums = {graph_checksum(traced_graph(2.0)), graph_checksum(traced_graph(3.0)),
                                   graph_checksum(every_kind_graph()), graph_checksum(Graph{})};
  Graph more_invokes = traced_graph(2.0);
  more_invokes.invokes = 2;
  sums.push_back(graph_checksum(more_invokes));
  Graph renamed = every_kind_graph();
  renamed.nodes[6].name = "result2";
  sums.push_back(graph_checksum(renamed));
  Graph other_call = every_kind_graph();
  other_call.nodes[0].point.call = 3;
  sums.push_back(graph_checksum(other_call));
  for (size_t i = 0; i < sums.size(); ++i) {
    for (size_t j = i + 1; j < sums.size(); ++j) EXPECT_NE(sums[i], sums[j]) << i << " vs " << j;
  }
}

TEST(Codec, ChecksumIs64LowercaseHexOfTheCanonicalBytes) {
  Graph g = every_kind_graph();
  std::string sum = graph_checksum(g);
  ASSERT_EQ(sum.size(), 64u);
  for (char c : sum) EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << sum;
  EXPECT_EQ(sum, sha256_hex(canonical_graph_bytes(g)));
}

TEST(Codec, ChecksumSurvivesARoundTrip) {
  Graph g = every_kind_graph();
  Result<Graph> back = decode_graph(encode_graph(g));
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(graph_checksum(*back), graph_checksum(g));
}

// This value pins the wire format. If it changes, the schema (graph/graph.capnp)
// or the canonical encoding changed, every graph's identity changed with it, and
// results cached or deduplicated under the old checksums are invalidated: bump
// the schema version deliberately rather than updating this string.
// Cross-checked with the capnp tool (0.9.2), from graph/:
//   echo '(nodes = [(read = (module = "transformer.h.0", index = 0)),
//     (op = (schema = "aten::mul.Scalar", args = [(node = 0), (float = 2.0)])),
//     (save = (value = 1, name = "h0x2"))])' |
//   capnp convert text:canonical -I/usr/include graph.capnp Graph | sha256sum
TEST(Codec, ChecksumOfAFixedGraphIsPinned) {
  Graph g;
  g.invokes = 1;
  Node read;
  read.kind = NodeKind::kRead;
  read.point = Point{"transformer.h.0", Io::kOutput, 0, 0, -1};
  g.nodes.push_back(read);
  Node mul;
  mul.kind = NodeKind::kOp;
  mul.op = "aten::mul.Scalar";
  mul.args = {Arg::of_node(0), Arg::of_float(2.0)};
  g.nodes.push_back(mul);
  Node save;
  save.kind = NodeKind::kSave;
  save.input = 1;
  save.name = "h0x2";
  g.nodes.push_back(save);
  EXPECT_EQ(graph_checksum(g), "e50c17059827aaa4d494a78ffe8cfa1d11e81127aa330f93d48d78f3382653d3");
}

// ---- hostile input -----------------------------------------------------------------

TEST(Codec, DecodeRejectsEmptyInput) {
  Result<Graph> r = decode_graph("");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(r.status().message(), "malformed graph"));
}

TEST(Codec, DecodeRejectsGarbage) {
  std::string garbage = "this is not a Cap'n Proto message, just text!!!!";
  ASSERT_EQ(garbage.size() % 8, 0u);
  Result<Graph> r = decode_graph(garbage);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(r.status().message(), "malformed graph"));

  Result<Graph> ones = decode_graph(std::string(64, '\xff'));
  ASSERT_FALSE(ones.ok());
  EXPECT_EQ(ones.status().code(), StatusCode::kInvalidArgument);
}

TEST(Codec, DecodeRejectsALengthThatIsNotWholeWords) {
  std::string bytes = encode_graph(every_kind_graph());
  for (size_t extra : {1, 3, 7}) {
    Result<Graph> r = decode_graph(bytes + std::string(extra, '\0'));
    ASSERT_FALSE(r.ok()) << extra;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(contains(r.status().message(), "not a whole number of 8-byte words"));
    EXPECT_TRUE(contains(r.status().message(), std::to_string(bytes.size() + extra)));
  }
  EXPECT_FALSE(decode_graph(bytes.substr(0, bytes.size() - 4)).ok());
}

TEST(Codec, DecodeRejectsEveryTruncatedPrefix) {
  std::string bytes = encode_graph(every_kind_graph());
  ASSERT_GT(bytes.size(), 64u);
  for (size_t len = 0; len < bytes.size(); len += 8) {
    Result<Graph> r = decode_graph(bytes.substr(0, len));
    EXPECT_FALSE(r.ok()) << "prefix of " << len << " of " << bytes.size() << " bytes decoded";
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().to_string();
    }
  }
  EXPECT_TRUE(decode_graph(bytes).ok());
}

// Fault injection: corrupt each byte in turn. Decoding may succeed (a changed
// value is still a graph) but a failure is always INVALID_ARGUMENT, or
// RESOURCE_EXHAUSTED for a count that became too large, never a crash.
TEST(Codec, DecodeOfACorruptedByteIsOkOrInvalidArgument) {
  std::string bytes = encode_graph(every_kind_graph());
  int failures = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string corrupt = bytes;
    corrupt[i] = static_cast<char>(corrupt[i] ^ 0xa5);
    Result<Graph> r = decode_graph(corrupt);
    if (!r.ok()) {
      ++failures;
      EXPECT_TRUE(r.status().code() == StatusCode::kInvalidArgument ||
                  r.status().code() == StatusCode::kResourceExhausted)
          << "byte " << i << ": " << r.status().to_string();
    }
  }
  EXPECT_GT(failures, 0);
}

TEST(Codec, DecodeEnforcesTheTraversalLimit) {
  Graph g = every_kind_graph();
  std::string bytes = encode_graph(g);
  DecodeLimits tiny;
  tiny.traversal_limit_words = 8;
  Result<Graph> r = decode_graph(bytes, tiny);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(r.status().message(), "malformed graph"));
  EXPECT_TRUE(contains(r.status().message(), "traversal limit"));

  DecodeLimits enough;
  enough.traversal_limit_words = bytes.size() / 8;
  EXPECT_TRUE(decode_graph(bytes, enough).ok());
}

TEST(Codec, DecodeEnforcesTheNestingLimit) {
  std::string bytes = encode_graph(every_kind_graph());
  DecodeLimits shallow;
  shallow.nesting_limit = 2;  // graph -> nodes -> node is already past it
  Result<Graph> r = decode_graph(bytes, shallow);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(r.status().message(), "nested"));
}

TEST(Codec, DecodeRejectsAnUnsupportedVersion) {
  std::string bytes = encode_mutated(every_kind_graph(), [](schema::Graph::Builder g) { g.setVersion(2); });
  Result<Graph> r = decode_graph(bytes);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(r.status().message(), "version 2"));
  EXPECT_TRUE(contains(r.status().message(), "not supported"));
}

TEST(Codec, DecodeRejectsAnUnknownDTypeAndNamesTheNode) {
  std::string bytes = encode_mutated(every_kind_graph(), [](schema::Graph::Builder g) {
    g.getNodes()[2].getConstant().setDtype(static_cast<schema::DType>(42));
  });
  Result<Graph> r = decode_graph(bytes);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(r.status().message(), "node 2"));
  EXPECT_TRUE(contains(r.status().message(), "unknown dtype enumerant 42"));
}

TEST(Codec, DecodeRejectsAnUnknownDTypeArgument) {
  std::string bytes = encode_mutated(every_kind_graph(), [](schema::Graph::Builder g) {
    g.getNodes()[4].getOp().getArgs()[7].setDtype(static_cast<schema::DType>(10));
  });
  Result<Graph> r = decode_graph(bytes);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.status().message(), "node 4"));
  EXPECT_TRUE(contains(r.status().message(), "unknown dtype enumerant 10"));
}

TEST(Codec, DecodeRejectsAnUnknownIo) {
  std::string bytes = encode_mutated(every_kind_graph(), [](schema::Graph::Builder g) {
    g.getNodes()[5].getSet().getPoint().setIo(static_cast<schema::Io>(7));
  });
  Result<Graph> r = decode_graph(bytes);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.status().message(), "node 5"));
  EXPECT_TRUE(contains(r.status().message(), "unknown io enumerant"));
}

// ---- SHA-256 -------------------------------------------------------------------------

TEST(Sha256, MatchesTheNistTestVectors) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, IncrementalEqualsOneShot) {
  std::string data;
  for (int i = 0; i < 100000; ++i) data.push_back(static_cast<char>(i * 31 + 7));
  const std::string want = sha256_hex(data);
  for (size_t chunk : {1, 3, 64, 1000, 65536}) {
    Sha256 h;
    for (size_t off = 0; off < data.size(); off += chunk) h.update(std::string_view(data).substr(off, chunk));
    EXPECT_EQ(h.hex_digest(), want) << "chunk " << chunk;
  }
  Sha256 empty_pieces;
  empty_pieces.update("");
  empty_pieces.update("ab");
  empty_pieces.update("");
  empty_pieces.update("c");
  EXPECT_EQ(empty_pieces.hex_digest(), sha256_hex("abc"));
}

TEST(Sha256, MillionAsMatchesTheNistVector) {
  Sha256 h;
  const std::string thousand(1000, 'a');
  for (int i = 0; i < 1000; ++i) h.update(thousand);
  EXPECT_EQ(h.hex_digest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

}  // namespace
}  // namespace loom::graph
