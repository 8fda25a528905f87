// Tests for graph/validate.h: one test per rejection, each checking the code,
// that the message names the node, and that it names the problem.
#include "graph/validate.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "graph/builder.h"

namespace loom::graph {
namespace {

::testing::AssertionResult contains(const std::string& haystack, const std::string& needle) {
  if (haystack.find(needle) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << haystack << "\" does not contain \"" << needle << "\"";
}

// Asserts `s` is an error with `code` whose message contains every one of `parts`.
void expect_error(const Status& s, StatusCode code, const std::vector<std::string>& parts) {
  ASSERT_FALSE(s.ok()) << "validate() accepted the graph";
  EXPECT_EQ(s.code(), code) << s.to_string();
  for (const std::string& p : parts) EXPECT_TRUE(contains(s.message(), p));
}

Node read(const std::string& module, Io io = Io::kOutput, int32_t index = -1, int32_t invoke = -1) {
  Node n;
  n.kind = NodeKind::kRead;
  n.point = Point{module, io, index, 0, invoke};
  return n;
}

Node set(const std::string& module, uint32_t input) {
  Node n;
  n.kind = NodeKind::kSet;
  n.point = Point{module, Io::kOutput, -1, 0, -1};
  n.input = input;
  return n;
}

Node op(const std::string& name, std::vector<Arg> args) {
  Node n;
  n.kind = NodeKind::kOp;
  n.op = name;
  n.args = std::move(args);
  return n;
}

Node with_input(NodeKind kind, uint32_t input, const std::string& name = "") {
  Node n;
  n.kind = kind;
  n.input = input;
  n.name = name;
  return n;
}

Node constant(DType dtype, std::vector<int64_t> shape, size_t bytes) {
  Node n;
  n.kind = NodeKind::kConstant;
  n.tensor.dtype = dtype;
  n.tensor.shape = std::move(shape);
  n.tensor.bytes = std::string(bytes, '\0');
  return n;
}

Node constant_ref(const std::string& sha) {
  Node n;
  n.kind = NodeKind::kConstant;
  n.content_sha256 = sha;
  return n;
}

Graph graph_of(std::vector<Node> nodes, uint32_t invokes = 1) {
  Graph g;
  g.invokes = invokes;
  g.nodes = std::move(nodes);
  return g;
}

const std::string kSha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

// ---- valid graphs ------------------------------------------------------------------

TEST(Validate, AcceptsAValidTrace) {
  Builder b(2);
  Value h = b.module("transformer.h.0", 0).output(0);
  Value scaled = h * 2 + b.scalar(1.0);
  b.module("transformer.h.1", 1).output(0).set(scaled);
  Value reply = b.stream("steer", h.mean({-1}));
  b.log("reply", reply);
  Value ref = b.constant_ref(kSha);
  (ref * reply).save("product");
  b.output().save("logits");
  b.stop(b.module("lm_head").input(0));
  Status s = validate(b.graph());
  EXPECT_TRUE(s.ok()) << s.to_string();

  std::vector<std::string> modules = {"", "transformer.h.0", "transformer.h.1", "lm_head"};
  ValidateOptions o;
  o.module_paths = &modules;
  s = validate(b.graph(), o);
  EXPECT_TRUE(s.ok()) << s.to_string();
}

TEST(Validate, AcceptsAnEmptyGraph) {
  Status s = validate(Graph{});
  EXPECT_TRUE(s.ok()) << s.to_string();
}

TEST(Validate, AcceptsEdgeCaseConstants) {
  Graph g = graph_of({constant(DType::kFloat32, {}, 4),      // scalar
                      constant(DType::kInt64, {0, 5}, 0),    // empty
                      constant(DType::kBool, {2, 3}, 6),
                      constant(DType::kBFloat16, {3}, 6)});
  Status s = validate(g);
  EXPECT_TRUE(s.ok()) << s.to_string();
}

TEST(Validate, NodeHasValueOnlyForValueProducingKinds) {
  EXPECT_TRUE(node_has_value(NodeKind::kRead));
  EXPECT_TRUE(node_has_value(NodeKind::kOp));
  EXPECT_TRUE(node_has_value(NodeKind::kConstant));
  EXPECT_TRUE(node_has_value(NodeKind::kSave));
  EXPECT_TRUE(node_has_value(NodeKind::kStream));
  EXPECT_FALSE(node_has_value(NodeKind::kSet));
  EXPECT_FALSE(node_has_value(NodeKind::kLog));
  EXPECT_FALSE(node_has_value(NodeKind::kStop));
}

// ---- references --------------------------------------------------------------------

TEST(Validate, RejectsADanglingReference) {
  Graph g = graph_of({read("a"), op("aten::neg", {Arg::of_node(5)})});
  expect_error(validate(g), StatusCode::kInvalidArgument,
               {"node 1 (op aten::neg)", "refers to node 5", "does not exist", "2 nodes"});
}

TEST(Validate, RejectsADanglingReferenceInANodeList) {
  Graph g = graph_of({read("a"), read("b"), op("aten::cat", {Arg::of_nodes({0, 1, 9}), Arg::of_int(0)})});
  expect_error(validate(g), StatusCode::kInvalidArgument, {"node 2", "refers to node 9", "does not exist"});
}

TEST(Validate, RejectsADanglingInputOfASave) {
  Graph g = graph_of({with_input(NodeKind::kSave, 3, "x")});
  expect_error(validate(g), StatusCode::kInvalidArgument, {"node 0 (save \"x\")", "refers to node 3"});
}

TEST(Validate, RejectsAForwardReference) {
  Graph g = graph_of({read("a"), with_input(NodeKind::kSave, 2, "early"), op("aten::neg", {Arg::of_node(0)})});
  expect_error(validate(g), StatusCode::kInvalidArgument,
               {"node 1", "refers to node 2", "does not come before it", "forward reference"});
}

TEST(Validate, RejectsASelfReferenceAsACycle) {
  Graph g = graph_of({read("a"), op("aten::add.Tensor", {Arg::of_node(0), Arg::of_node(1), Arg::of_int(1)})});
  expect_error(validate(g), StatusCode::kInvalidArgument, {"node 1", "refers to node 1", "cycle"});
}

TEST(Validate, RejectsUsingANodeWithoutAValue) {
  // set, log and stop have no value; a node that uses one is rejected.
  std::vector<Node> valueless = {set("b", 0), with_input(NodeKind::kLog, 0, "text"), with_input(NodeKind::kStop, 0)};
  for (const Node& v : valueless) {
    SCOPED_TRACE(node_kind_name(v.kind));
    Graph g = graph_of({read("a"), v, op("aten::neg", {Arg::of_node(0)}), op("aten::neg", {Arg::of_node(1)})});
    expect_error(validate(g), StatusCode::kInvalidArgument,
                 {"node 3 (op aten::neg)", std::string("uses node 1 (") + node_kind_name(v.kind), "has no value"});
  }
}

// ---- points ------------------------------------------------------------------------

TEST(Validate, RejectsAnInvokeOutOfRange) {
  Graph g = graph_of({read("a", Io::kOutput, -1, 0), read("b", Io::kOutput, -1, 2)}, 2);
  expect_error(validate(g), StatusCode::kInvalidArgument,
               {"node 1 (read b.output (invoke 2))", "invoke 2 does not exist", "2 invoke(s)"});
}

TEST(Validate, RejectsAnInvokeBelowMinusOne) {
  Graph g = graph_of({read("a", Io::kOutput, -1, -2)});
  expect_error(validate(g), StatusCode::kInvalidArgument, {"node 0", "invoke -2 does not exist"});
}

TEST(Validate, RejectsASetAtAnInvokeOutOfRange) {
  Node s = set("b", 0);
  s.point.invoke = 1;
  Graph g = graph_of({read("a"), s});
  expect_error(validate(g), StatusCode::kInvalidArgument, {"node 1 (set b.output", "invoke 1 does not exist"});
}

TEST(Validate, RejectsAnInputPointWithoutAnIndex) {
  Graph g = graph_of({read("a"), read("mlp", Io::kInput, -1)});
  expect_error(validate(g), StatusCode::kInvalidArgument,
               {"node 1", "input point needs an argument index >= 0", "got -1"});
}

TEST(Validate, RejectsANegativeElementIndex) {
  Graph g = graph_of({read("a"), read("b"), read("attn", Io::kOutput, -3)});
  expect_error(validate(g), StatusCode::kInvalidArgument, {"node 2", "element index -3 is negative"});
}

TEST(Validate, RejectsAnUnknownModuleWithTheClosestHint) {
  std::vector<std::string> modules = {"", "transformer.h.0", "transformer.h.1", "lm_head"};
  ValidateOptions o;
  o.module_paths = &modules;
  Graph g = graph_of({read("transformer.h.0"), read("lm_head"), read("transformer.h.12")});
  expect_error(validate(g, o), StatusCode::kInvalidArgument,
               {"node 2", "the model has no module \"transformer.h.12\"", "(closest: \"transformer.h.1\")"});
}

TEST(Validate, RejectsAnUnknownModuleWithoutAHintWhenNothingIsClose) {
  std::vector<std::string> modules = {"", "transformer.h.0"};
  ValidateOptions o;
  o.module_paths = &modules;
  Graph g = graph_of({read("a"), set("xyz", 0)});
  o.module_paths = &modules;
  Status s = validate(g, o);
  expect_error(s, StatusCode::kInvalidArgument, {"node 0", "no module \"a\""});
  EXPECT_FALSE(contains(s.message(), "closest"));
}

TEST(Validate, RejectsASetOnAnUnknownModule) {
  std::vector<std::string> modules = {"a", "block.0"};
  ValidateOptions o;
  o.module_paths = &modules;
  Graph g = graph_of({read("a"), set("block.1", 0)});
  expect_error(validate(g, o), StatusCode::kInvalidArgument,
               {"node 1 (set block.1.output)", "no module \"block.1\"", "closest: \"block.0\""});
}

TEST(Validate, RejectsAModulePathOverTheLimit) {
  ValidateOptions o;
  o.limits.max_text_bytes = 16;
  Graph g = graph_of({read("abcdefghijklmnop"), read("abcdefghijklmnopq")});
  expect_error(validate(g, o), StatusCode::kInvalidArgument,
               {"node 1", "module path is 17 bytes, over the limit of 16"});
}

// ---- ops ---------------------------------------------------------------------------

TEST(Validate, RejectsAnOpNotOnTheAllowlist) {
  for (const char* name : {"aten::empty.memory_format", "aten::add_.Tensor", "aten::copy_", "aten::ADD.Tensor", ""}) {
    SCOPED_TRACE(name);
    Graph g = graph_of({read("a"), op(name, {Arg::of_node(0)})});
    expect_error(validate(g), StatusCode::kInvalidArgument,
                 {"node 1 (op " + std::string(name) + ")", "op \"" + std::string(name) + "\" is not on the allowlist"});
  }
}

TEST(Validate, RejectsAnOpNameOverTheLimit) {
  ValidateOptions o;
  o.limits.max_text_bytes = 8;
  Graph g = graph_of({read("a"), op("aten::neg", {Arg::of_node(0)})});
  expect_error(validate(g, o), StatusCode::kInvalidArgument, {"node 1", "op name too long"});
}

TEST(Validate, RejectsTooManyArguments) {
  std::vector<Arg> args(65, Arg::of_int(1));
  args[0] = Arg::of_node(0);
  Graph g = graph_of({read("a"), op("aten::add.Tensor", args)});
  expect_error(validate(g), StatusCode::kInvalidArgument, {"node 1", "has 65 arguments, over the limit of 64"});
  args.pop_back();
  Graph at_limit = graph_of({read("a"), op("aten::add.Tensor", args)});
  Status s = validate(at_limit);
  EXPECT_TRUE(s.ok()) << s.to_string();
}

TEST(Validate, RejectsAListArgumentOverTheLimit) {
  Graph ints = graph_of({read("a"), op("aten::reshape", {Arg::of_node(0), Arg::of_ints(std::vector<int64_t>(4097, 1))})});
  expect_error(validate(ints), StatusCode::kInvalidArgument,
               {"node 1", "a list argument has 4097 elements, over the limit of 4096"});

  ValidateOptions o;
  o.limits.max_list_length = 3;
  Graph floats = graph_of({read("a"), op("aten::clamp", {Arg::of_node(0), Arg::of_floats({1, 2, 3, 4})})});
  expect_error(validate(floats, o), StatusCode::kInvalidArgument, {"node 1", "4 elements, over the limit of 3"});
  Graph nodes = graph_of({read("a"), op("aten::cat", {Arg::of_nodes({0, 0, 0, 0}), Arg::of_int(0)})});
  expect_error(validate(nodes, o), StatusCode::kInvalidArgument, {"node 1", "4 elements, over the limit of 3"});
}

TEST(Validate, RejectsAStringArgumentOverTheLimit) {
  ValidateOptions o;
  o.limits.max_text_bytes = 20;
  Graph g = graph_of({read("a"), op("aten::gelu", {Arg::of_node(0), Arg::of_str(std::string(21, 't'))})});
  expect_error(validate(g, o), StatusCode::kInvalidArgument, {"node 1 (op aten::gelu)", "string argument is too long"});
}

// Records the nodes it is asked about; rejects matmul with a code of its choosing.
class RecordingOpChecker : public OpChecker {
 public:
  Status check(const Node& node, const Graph&) const override {
    seen_.push_back(node.op);
    if (node.op == "aten::matmul") return Status(StatusCode::kFailedPrecondition, "expected 2 tensors, got 1");
    return Status();
  }
  mutable std::vector<std::string> seen_;
};

TEST(Validate, ConsultsTheOpCheckerAndPrefixesItsMessageWithTheNode) {
  RecordingOpChecker checker;
  ValidateOptions o;
  o.op_checker = &checker;
  Graph g = graph_of({read("a"), op("aten::neg", {Arg::of_node(0)}), op("aten::matmul", {Arg::of_node(1)})});
  Status s = validate(g, o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << "the checker's code is kept";
  EXPECT_EQ(s.message(), "node 2 (op aten::matmul): expected 2 tensors, got 1");
  EXPECT_EQ(checker.seen_, (std::vector<std::string>{"aten::neg", "aten::matmul"}));
}

TEST(Validate, AnOpCheckerReplacesTheAllowlist) {
  RecordingOpChecker checker;
  ValidateOptions o;
  o.op_checker = &checker;
  Graph g = graph_of({read("a"), op("aten::not_allowlisted", {Arg::of_node(0)})});
  Status s = validate(g, o);
  EXPECT_TRUE(s.ok()) << s.to_string();
  EXPECT_EQ(checker.seen_, (std::vector<std::string>{"aten::not_allowlisted"}));
}

TEST(Validate, ChecksStructureBeforeAskingTheOpChecker) {
  RecordingOpChecker checker;
  ValidateOptions o;
  o.op_checker = &checker;
  Graph g = graph_of({op("aten::neg", {Arg::of_node(4)})});
  expect_error(validate(g, o), StatusCode::kInvalidArgument, {"node 0", "refers to node 4"});
  EXPECT_TRUE(checker.seen_.empty());
}

// ---- constants ---------------------------------------------------------------------

TEST(Validate, RejectsConstantBytesNotMatchingDtypeAndShape) {
  Graph g = graph_of({constant(DType::kFloat32, {2, 3}, 24), constant(DType::kFloat32, {2, 3}, 20)});
  expect_error(validate(g), StatusCode::kInvalidArgument,
               {"node 1 (constant)", "constant of dtype F32 needs 24 bytes for its shape but carries 20"});
  Graph scalar = graph_of({constant(DType::kFloat64, {}, 4)});
  expect_error(validate(scalar), StatusCode::kInvalidArgument, {"node 0", "F64 needs 8 bytes", "carries 4"});
}

TEST(Validate, RejectsANegativeDimension) {
  Graph g = graph_of({constant(DType::kInt8, {2, -1}, 0)});
  expect_error(validate(g), StatusCode::kInvalidArgument, {"node 0", "negative dimension -1"});
}

TEST(Validate, RejectsARankOverTheLimit) {
  Graph g = graph_of({constant(DType::kUInt8, std::vector<int64_t>(17, 1), 1)});
  expect_error(validate(g), StatusCode::kInvalidArgument, {"node 0", "rank 17, over the limit of 16"});
  Graph at_limit = graph_of({constant(DType::kUInt8, std::vector<int64_t>(16, 1), 1)});
  Status s = validate(at_limit);
  EXPECT_TRUE(s.ok()) << s.to_string();
}

TEST(Validate, RejectsAShapeWhoseSizeOverflows) {
  Graph g = graph_of({constant(DType::kFloat64, {int64_t{1} << 31, int64_t{1} << 31, int64_t{1} << 31}, 0)});
  expect_error(validate(g), StatusCode::kInvalidArgument, {"node 0", "overflows"});
}

TEST(Validate, RejectsInlineConstantsOverTheTotalLimit) {
  ValidateOptions o;
  o.limits.max_inline_constant_bytes = 100;
  Graph one = graph_of({constant(DType::kFloat32, {16}, 64)});
  Status s = validate(one, o);
  EXPECT_TRUE(s.ok()) << s.to_string();
  Graph two = graph_of({constant(DType::kFloat32, {16}, 64), constant_ref(kSha), constant(DType::kFloat32, {16}, 64)});
  expect_error(validate(two, o), StatusCode::kResourceExhausted,
               {"node 2 (constant)", "inline constants total 128 bytes, over the limit of 100", "SHA-256"});
}

TEST(Validate, RejectsAMalformedContentReference) {
  std::string upper = kSha;
  upper[0] = 'A';
  for (const std::string& bad : {upper, kSha.substr(1), kSha + "0", std::string(64, 'g'), std::string(64, ' ')}) {
    SCOPED_TRACE(bad);
    Graph g = graph_of({read("a"), constant_ref(bad)});
    expect_error(validate(g), StatusCode::kInvalidArgument,
                 {"node 1 (constant)", "content reference \"" + bad + "\" is not a lowercase hex SHA-256"});
  }
}

TEST(Validate, TruncatesALongContentReferenceInTheMessage) {
  Graph g = graph_of({constant_ref(std::string(10000, 'z'))});
  Status s = validate(g);
  expect_error(s, StatusCode::kInvalidArgument, {"node 0", std::string(80, 'z') + "\" is not"});
  EXPECT_LT(s.message().size(), 200u);
}

// ---- save, stream, log -------------------------------------------------------------

TEST(Validate, RejectsAnEmptySaveName) {
  Graph g = graph_of({read("a"), with_input(NodeKind::kSave, 0, "")});
  expect_error(validate(g), StatusCode::kInvalidArgument, {"node 1 (save \"\")", "save name is empty"});
}

TEST(Validate, RejectsADuplicateSaveName) {
  Graph g = graph_of({read("a"), with_input(NodeKind::kSave, 0, "h"), with_input(NodeKind::kSave, 0, "other"),
                      with_input(NodeKind::kSave, 0, "h")});
  expect_error(validate(g), StatusCode::kInvalidArgument, {"node 3 (save \"h\")", "save name \"h\" is used twice"});
}

TEST(Validate, RejectsTheReservedMetadataSaveName) {
  Graph g = graph_of({read("a"), with_input(NodeKind::kSave, 0, "__metadata__")});
  expect_error(validate(g), StatusCode::kInvalidArgument,
               {"node 1 (save \"__metadata__\")", "save name \"__metadata__\" is reserved"});
}

TEST(Validate, RejectsASaveNameOverTheLimit) {
  ValidateOptions o;
  o.limits.max_text_bytes = 4;
  Graph g = graph_of({read("a"), with_input(NodeKind::kSave, 0, "abcd"), with_input(NodeKind::kSave, 0, "abcde")});
  expect_error(validate(g, o), StatusCode::kInvalidArgument, {"node 2", "save name is too long"});
}

TEST(Validate, RejectsAnEmptyStreamCallbackName) {
  Graph g = graph_of({read("a"), with_input(NodeKind::kStream, 0, "")});
  expect_error(validate(g), StatusCode::kInvalidArgument, {"node 1 (stream \"\")", "stream callback name is empty"});
}

TEST(Validate, RejectsAStreamCallbackNameOverTheLimit) {
  ValidateOptions o;
  o.limits.max_text_bytes = 4;
  Graph g = graph_of({read("a"), with_input(NodeKind::kStream, 0, "steer")});
  expect_error(validate(g, o), StatusCode::kInvalidArgument, {"node 1", "stream callback name is too long"});
}

TEST(Validate, RejectsLogTextOverTheLimitButAcceptsEmptyText) {
  Graph empty = graph_of({read("a"), with_input(NodeKind::kLog, 0, "")});
  Status s = validate(empty);
  EXPECT_TRUE(s.ok()) << s.to_string();
  ValidateOptions o;
  o.limits.max_text_bytes = 4;
  Graph g = graph_of({read("a"), with_input(NodeKind::kLog, 0, "hello")});
  expect_error(validate(g, o), StatusCode::kInvalidArgument, {"node 1 (log)", "log text is too long"});
}

// ---- graph-wide limits -------------------------------------------------------------

TEST(Validate, RejectsTooManyNodes) {
  ValidateOptions o;
  o.limits.max_nodes = 3;
  Graph at_limit = graph_of({read("a"), read("b"), read("c")});
  Status s = validate(at_limit, o);
  EXPECT_TRUE(s.ok()) << s.to_string();
  Graph g = graph_of({read("a"), read("b"), read("c"), read("d")});
  expect_error(validate(g, o), StatusCode::kResourceExhausted, {"4 nodes, over the limit of 3"});
}

TEST(Validate, RejectsZeroInvokes) {
  expect_error(validate(graph_of({read("a")}, 0)), StatusCode::kInvalidArgument, {"0 invokes", "at least 1"});
}

TEST(Validate, RejectsTooManyInvokes) {
  expect_error(validate(graph_of({}, 4097)), StatusCode::kResourceExhausted, {"4097 invokes, over the limit of 4096"});
  ValidateOptions o;
  o.limits.max_invokes = 2;
  expect_error(validate(graph_of({}, 3), o), StatusCode::kResourceExhausted, {"3 invokes, over the limit of 2"});
  Status s = validate(graph_of({}, 2), o);
  EXPECT_TRUE(s.ok()) << s.to_string();
}

TEST(Validate, ReportsTheFirstBadNode) {
  Graph g = graph_of({read("a"), with_input(NodeKind::kSave, 0, ""), op("aten::nope", {Arg::of_node(0)})});
  expect_error(validate(g), StatusCode::kInvalidArgument, {"node 1", "save name is empty"});
}

// ---- gradients, skip, sessions -------------------------------------------

TEST(Validate, GradientNodesNeedOneBackwardPassAndCannotFeedTheForwardPass) {
  {
    Builder b;
    b.module("a").output().grad().save("g");
    expect_error(validate(b.graph()), StatusCode::kInvalidArgument, {"no backward pass", "backward(loss)"});
  }
  {
    Builder b;
    Value h = b.module("a").output();
    b.backward(h.sum({0}));
    b.backward(h.sum({0}));
    expect_error(validate(b.graph()), StatusCode::kInvalidArgument, {"one backward pass", "sum the losses"});
  }
  {
    Builder b;
    HookPoint h = b.module("a").output();
    b.module("b").output().set(h + h.grad());
    b.backward(h.sum({0}));
    expect_error(validate(b.graph()), StatusCode::kInvalidArgument, {"uses a gradient", "backward pass"});
  }
  {
    Builder b;
    b.module("a").all_steps().output().grad().save("g");
    b.backward(b.module("a").output().sum({0}));
    expect_error(validate(b.graph()), StatusCode::kInvalidArgument, {"several steps"});
  }
  Builder ok;
  HookPoint h = ok.module("a").output();
  h.set_grad(h.grad() * 2.0);
  ok.backward(ok.output().sum({0}));
  EXPECT_TRUE(validate(ok.graph()).ok()) << validate(ok.graph()).to_string();
}

TEST(Validate, SkipReplacesAWholeOutputForTheWholeBatch) {
  {
    Builder b(2);
    b.module("a", 1).skip(b.module("x").output());
    expect_error(validate(b.graph()), StatusCode::kInvalidArgument, {"whole batch", "invoke 1"});
  }
  {
    Builder b;
    b.module("").skip(b.scalar(1.0));
    expect_error(validate(b.graph()), StatusCode::kInvalidArgument, {"root module cannot be skipped"});
  }
  Graph g = graph_of({read("x"), read("a")});
  g.nodes[1].kind = NodeKind::kSkip;
  g.nodes[1].point.index = 0;
  g.nodes[1].input = 0;
  expect_error(validate(g), StatusCode::kInvalidArgument, {"whole output"});
}

TEST(Validate, SessionsNameTheirTracesAndInvokes) {
  Builder b(0);
  b.module("a", -1);
  // Built by hand: invokes 0 and 1 in trace 0, invoke 2 in trace 1.
  Graph g = graph_of({read("a", Io::kOutput, -1, 2), read("a")}, 3);
  g.trace_invokes = {2, 1};
  g.nodes[0].point.trace = 1;
  EXPECT_TRUE(validate(g).ok()) << validate(g).to_string();
  g.nodes[1].point.invoke = 2;  // trace 0 reading trace 1's invoke
  expect_error(validate(g), StatusCode::kInvalidArgument, {"invoke 2 belongs to another trace than trace 0"});
  g.nodes[1].point.invoke = -1;
  g.nodes[1].point.trace = 2;
  expect_error(validate(g), StatusCode::kInvalidArgument, {"trace 2 does not exist", "2 trace(s)"});
  g.nodes[1].point.trace = 0;
  g.trace_invokes = {3, 0};
  expect_error(validate(g), StatusCode::kInvalidArgument, {"trace 1 of the session has no invoke"});
  g.trace_invokes = {1, 1};
  expect_error(validate(g), StatusCode::kInvalidArgument, {"2 invokes in all", "graph has 3"});
  g.trace_invokes.assign(kMaxSessionTraces + 1, 1);
  expect_error(validate(g), StatusCode::kResourceExhausted, {"traces, over the limit of 64"});
}

TEST(Validate, BuilderSessionsNumberInvokesAcrossTraces) {
  Builder b(0);
  b.module("a").output().save("first");  // trace 0, before any next_trace()
  EXPECT_EQ(b.current_trace(), 0u);
  EXPECT_EQ(b.next_trace(), 1u);
  b.module("a").output().save("second");
  EXPECT_EQ(b.graph().trace_invokes, (std::vector<uint32_t>{0, 0}));
  EXPECT_EQ(b.graph().nodes[0].point.trace, 0u);
  EXPECT_EQ(b.graph().nodes[2].point.trace, 1u);
}

}  // namespace
}  // namespace loom::graph
