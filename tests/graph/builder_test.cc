// Tests for graph/builder.h: what each tracing call records in the graph.
#include "graph/builder.h"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "graph/allowlist.h"
#include "graph/validate.h"

namespace loom {
namespace {

using graph::Arg;
using graph::Io;
using graph::Node;
using graph::NodeKind;

const Node& node_of(const Value& v) { return v.builder()->graph().nodes.at(v.node()); }

// Argument matchers: each compares kind and payload, with the values in the failure message.
::testing::AssertionResult is_node(const Arg& a, uint32_t node) {
  if (a.kind == Arg::Kind::kNode && a.node == node) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "want node " << node << ", got " << graph::arg_kind_name(a.kind)
                                       << " (node " << a.node << ")";
}
::testing::AssertionResult is_int(const Arg& a, int64_t v) {
  if (a.kind == Arg::Kind::kInt && a.i == v) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "want int " << v << ", got " << graph::arg_kind_name(a.kind) << " " << a.i;
}
::testing::AssertionResult is_float(const Arg& a, double v) {
  if (a.kind == Arg::Kind::kFloat && a.f == v) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "want float " << v << ", got " << graph::arg_kind_name(a.kind) << " "
                                       << a.f;
}
::testing::AssertionResult is_bool(const Arg& a, bool v) {
  if (a.kind == Arg::Kind::kBool && a.b == v) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "want bool " << v << ", got " << graph::arg_kind_name(a.kind) << " "
                                       << a.b;
}
::testing::AssertionResult is_ints(const Arg& a, const std::vector<int64_t>& v) {
  if (a.kind == Arg::Kind::kInts && a.ints == v) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "want int[] of " << v.size() << ", got " << graph::arg_kind_name(a.kind)
                                       << " of " << a.ints.size();
}
::testing::AssertionResult is_none(const Arg& a) {
  if (a.kind == Arg::Kind::kNone) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "want None, got " << graph::arg_kind_name(a.kind);
}

// ---- reads and hook points ---------------------------------------------------

TEST(Builder, ReadsOneNodePerDistinctHookPoint) {
  Builder b;
  Value a = b.module("transformer.h.0").output(0);
  Value again = b.module("transformer.h.0").output(0);
  EXPECT_EQ(a.node(), again.node());
  ASSERT_EQ(b.graph().nodes.size(), 1u);

  // Using the point in expressions twice still reads it once.
  Value sum = b.module("transformer.h.0").output(0) + b.module("transformer.h.0").output(0);
  EXPECT_TRUE(is_node(node_of(sum).args[0], a.node()));
  EXPECT_TRUE(is_node(node_of(sum).args[1], a.node()));
  EXPECT_EQ(b.graph().nodes.size(), 2u);  // the read and the add

  // Any difference in the point is a different read.
  std::vector<uint32_t> others = {
      Value(b.module("transformer.h.0").output(1)).node(),
      Value(b.module("transformer.h.0").output()).node(),
      Value(b.module("transformer.h.0").input(0)).node(),
      Value(b.module("transformer.h.0").call(1).output(0)).node(),
      Value(b.module("transformer.h.1").output(0)).node(),
  };
  for (uint32_t n : others) EXPECT_NE(n, a.node());
  EXPECT_EQ(b.graph().nodes.size(), 7u);
}

TEST(Builder, ReadNodeRecordsItsPoint) {
  Builder b(2);
  Value v = b.module("transformer.h.3", 1).call(2).output(0);
  const Node& n = node_of(v);
  EXPECT_EQ(n.kind, NodeKind::kRead);
  EXPECT_EQ(n.point.module, "transformer.h.3");
  EXPECT_EQ(n.point.io, Io::kOutput);
  EXPECT_EQ(n.point.index, 0);
  EXPECT_EQ(n.point.call, 2u);
  EXPECT_EQ(n.point.invoke, 1);
  EXPECT_EQ(n.point.to_string(), "transformer.h.3.output.0@2 (invoke 1)");
}

TEST(Builder, OutputElementIsPointIndex) {
  Builder b;
  graph::Point whole = b.module("attn").output().point();
  EXPECT_EQ(whole.io, Io::kOutput);
  EXPECT_EQ(whole.index, -1);
  graph::Point second = b.module("attn").output(1).point();
  EXPECT_EQ(second.io, Io::kOutput);
  EXPECT_EQ(second.index, 1);
  EXPECT_EQ(second.module, "attn");
}

TEST(Builder, InputArgumentIsPointIndex) {
  Builder b;
  graph::Point first = b.module("mlp").input().point();
  EXPECT_EQ(first.io, Io::kInput);
  EXPECT_EQ(first.index, 0);
  graph::Point third = b.module("mlp").input(2).point();
  EXPECT_EQ(third.io, Io::kInput);
  EXPECT_EQ(third.index, 2);
}

TEST(Builder, CallSelectsTheNthCallAndLeavesTheOriginalAlone) {
  Builder b;
  ModuleRef m = b.module("block");
  ModuleRef third = m.call(3);
  EXPECT_EQ(third.output().point().call, 3u);
  EXPECT_EQ(third.input(1).point().call, 3u);
  EXPECT_EQ(m.output().point().call, 0u);
}

TEST(Builder, ModuleInvokeIsPointInvoke) {
  Builder b(3);
  EXPECT_EQ(b.invokes(), 3u);
  EXPECT_EQ(b.graph().invokes, 3u);
  EXPECT_EQ(b.module("lm_head").output().point().invoke, -1);
  EXPECT_EQ(b.module("lm_head", 2).output().point().invoke, 2);
  EXPECT_EQ(b.module("lm_head", 1).call(4).input(0).point().invoke, 1);
}

TEST(Builder, RootOutputAndInputUseTheEmptyPath) {
  Builder b;
  graph::Point out = b.output().point();
  EXPECT_EQ(out.module, "");
  EXPECT_EQ(out.io, Io::kOutput);
  EXPECT_EQ(out.index, -1);
  EXPECT_EQ(out.invoke, -1);
  graph::Point in = b.input(1).point();
  EXPECT_EQ(in.module, "");
  EXPECT_EQ(in.io, Io::kInput);
  EXPECT_EQ(in.index, 1);
  EXPECT_EQ(b.output(0).point().index, 0);
}

// ---- set, save -----------------------------------------------------------------

TEST(Builder, SetAddsASetNodeWithPointAndInput) {
  Builder b(2);
  Value h = b.module("transformer.h.3").output(0);
  HookPoint target = b.module("transformer.h.5", 1).output(0);  // a hook point is also its read
  target.set(h);
  ASSERT_EQ(b.graph().nodes.size(), 3u);
  EXPECT_EQ(b.graph().nodes[target.node()].kind, NodeKind::kRead);
  const Node& n = b.graph().nodes[2];
  EXPECT_EQ(n.kind, NodeKind::kSet);
  EXPECT_EQ(n.input, h.node());
  EXPECT_EQ(n.point.module, "transformer.h.5");
  EXPECT_EQ(n.point.io, Io::kOutput);
  EXPECT_EQ(n.point.index, 0);
  EXPECT_EQ(n.point.invoke, 1);
}

TEST(Builder, EverySetIsItsOwnNode) {
  Builder b;
  Value h = b.module("a").output();
  b.module("b").output().set(h);
  b.module("b").output().set(h);
  ASSERT_EQ(b.graph().nodes.size(), 4u);  // read a, read b (once), set, set
  EXPECT_EQ(b.graph().nodes[1].kind, NodeKind::kRead);
  EXPECT_EQ(b.graph().nodes[2].kind, NodeKind::kSet);
  EXPECT_EQ(b.graph().nodes[3].kind, NodeKind::kSet);
}

TEST(Builder, SaveAddsASaveNodeAndReturnsAChainableValue) {
  Builder b;
  Value h = b.module("transformer.h.0").output(0);
  Value saved = h.save("hidden");
  const Node& first = node_of(saved);
  EXPECT_EQ(first.kind, NodeKind::kSave);
  EXPECT_EQ(first.input, h.node());
  EXPECT_EQ(first.name, "hidden");

  Value again = saved.save("hidden_again");
  EXPECT_EQ(node_of(again).kind, NodeKind::kSave);
  EXPECT_EQ(node_of(again).input, saved.node());

  // The saved value is usable in expressions.
  Value doubled = saved * 2;
  EXPECT_TRUE(is_node(node_of(doubled).args[0], saved.node()));
}

TEST(Builder, HookPointSaveReadsThenSaves) {
  Builder b;
  Value logits = b.output().save("logits");
  ASSERT_EQ(b.graph().nodes.size(), 2u);
  EXPECT_EQ(b.graph().nodes[0].kind, NodeKind::kRead);
  EXPECT_EQ(node_of(logits).kind, NodeKind::kSave);
  EXPECT_EQ(node_of(logits).input, 0u);
  EXPECT_EQ(node_of(logits).name, "logits");
}

// ---- operators ---------------------------------------------------------------

TEST(Builder, BinaryOperatorsOnTwoValuesUseTensorOverloads) {
  Builder b;
  Value x = b.module("x").output();
  Value y = b.module("y").output();
  struct Case {
    Value v;
    const char* op;
    bool has_alpha;
  };
  std::vector<Case> cases = {
      {x + y, "aten::add.Tensor", true},
      {x - y, "aten::sub.Tensor", true},
      {x * y, "aten::mul.Tensor", false},
      {x / y, "aten::div.Tensor", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.op);
    const Node& n = node_of(c.v);
    EXPECT_EQ(n.kind, NodeKind::kOp);
    EXPECT_EQ(n.op, c.op);
    ASSERT_EQ(n.args.size(), c.has_alpha ? 3u : 2u);
    EXPECT_TRUE(is_node(n.args[0], x.node()));
    EXPECT_TRUE(is_node(n.args[1], y.node()));
    if (c.has_alpha) {
      EXPECT_TRUE(is_int(n.args[2], 1));
    }
  }
}

TEST(Builder, ValueTimesScalarIsMulScalarWithAFloat) {
  Builder b;
  Value h = b.module("h").output();
  Value v = h * 2;
  const Node& n = node_of(v);
  EXPECT_EQ(n.op, "aten::mul.Scalar");
  ASSERT_EQ(n.args.size(), 2u);
  EXPECT_TRUE(is_node(n.args[0], h.node()));
  EXPECT_TRUE(is_float(n.args[1], 2.0));
}

TEST(Builder, ScalarOnTheRightUsesScalarOverloads) {
  Builder b;
  Value h = b.module("h").output();
  const Node& add = node_of(h + 1.5);
  EXPECT_EQ(add.op, "aten::add.Scalar");
  ASSERT_EQ(add.args.size(), 3u);
  EXPECT_TRUE(is_node(add.args[0], h.node()));
  EXPECT_TRUE(is_float(add.args[1], 1.5));
  EXPECT_TRUE(is_int(add.args[2], 1));

  const Node& sub = node_of(h - 3);
  EXPECT_EQ(sub.op, "aten::sub.Scalar");
  ASSERT_EQ(sub.args.size(), 3u);
  EXPECT_TRUE(is_float(sub.args[1], 3.0));
  EXPECT_TRUE(is_int(sub.args[2], 1));

  const Node& div = node_of(h / 4.0);
  EXPECT_EQ(div.op, "aten::div.Scalar");
  ASSERT_EQ(div.args.size(), 2u);
  EXPECT_TRUE(is_node(div.args[0], h.node()));
  EXPECT_TRUE(is_float(div.args[1], 4.0));
}

TEST(Builder, ScalarOnTheLeftKeepsTheOperandOrder) {
  Builder b;
  Value h = b.module("h").output();

  const Node& mul = node_of(2 * h);  // commutative: same as h * 2
  EXPECT_EQ(mul.op, "aten::mul.Scalar");
  EXPECT_TRUE(is_node(mul.args[0], h.node()));
  EXPECT_TRUE(is_float(mul.args[1], 2.0));

  const Node& add = node_of(1.0 + h);
  EXPECT_EQ(add.op, "aten::add.Scalar");
  EXPECT_TRUE(is_node(add.args[0], h.node()));
  EXPECT_TRUE(is_float(add.args[1], 1.0));

  // 5 - h is rsub(h, 5): "other - self".
  const Node& sub = node_of(5 - h);
  EXPECT_EQ(sub.op, "aten::rsub.Scalar");
  ASSERT_EQ(sub.args.size(), 3u);
  EXPECT_TRUE(is_node(sub.args[0], h.node()));
  EXPECT_TRUE(is_float(sub.args[1], 5.0));
  EXPECT_TRUE(is_int(sub.args[2], 1));

  // 3 / h is reciprocal(h) * 3.
  Value q = 3 / h;
  const Node& scaled = node_of(q);
  EXPECT_EQ(scaled.op, "aten::mul.Scalar");
  EXPECT_TRUE(is_float(scaled.args[1], 3.0));
  ASSERT_EQ(scaled.args[0].kind, Arg::Kind::kNode);
  const Node& recip = b.graph().nodes.at(scaled.args[0].node);
  EXPECT_EQ(recip.op, "aten::reciprocal");
  ASSERT_EQ(recip.args.size(), 1u);
  EXPECT_TRUE(is_node(recip.args[0], h.node()));
}

TEST(Builder, NegationIsNeg) {
  Builder b;
  Value h = b.module("h").output();
  const Node& n = node_of(-h);
  EXPECT_EQ(n.op, "aten::neg");
  ASSERT_EQ(n.args.size(), 1u);
  EXPECT_TRUE(is_node(n.args[0], h.node()));
}

TEST(Builder, MatmulMethodAndFunctionAgree) {
  Builder b;
  Value x = b.module("x").output();
  Value w = b.module("w").output();
  for (const Value& v : {x.matmul(w), matmul(x, w)}) {
    const Node& n = node_of(v);
    EXPECT_EQ(n.op, "aten::matmul");
    ASSERT_EQ(n.args.size(), 2u);
    EXPECT_TRUE(is_node(n.args[0], x.node()));
    EXPECT_TRUE(is_node(n.args[1], w.node()));
  }
}

// ---- indexing ------------------------------------------------------------------

TEST(Builder, SubscriptSelectsAlongTheFirstDimension) {
  Builder b;
  Value h = b.module("h").output();
  const Node& n = node_of(h[3]);
  EXPECT_EQ(n.op, "aten::select.int");
  ASSERT_EQ(n.args.size(), 3u);
  EXPECT_TRUE(is_node(n.args[0], h.node()));
  EXPECT_TRUE(is_int(n.args[1], 0));
  EXPECT_TRUE(is_int(n.args[2], 3));
}

TEST(Builder, IndexWithFullSliceThenIntegerSelectsTheSecondDimension) {
  Builder b;
  Value h = b.module("h").output();
  size_t before = b.graph().nodes.size();
  Value last = h.index({Slice{}, -1});  // h[:, -1]
  EXPECT_EQ(b.graph().nodes.size(), before + 1) << "a full slice adds no node";
  const Node& n = node_of(last);
  EXPECT_EQ(n.op, "aten::select.int");
  ASSERT_EQ(n.args.size(), 3u);
  EXPECT_TRUE(is_node(n.args[0], h.node()));
  EXPECT_TRUE(is_int(n.args[1], 1));
  EXPECT_TRUE(is_int(n.args[2], -1));
}

TEST(Builder, IndexWithBoundedSliceAddsSliceThenSelect) {
  Builder b;
  Value h = b.module("h").output();
  Value v = h.index({Slice{1, 5}, -1});  // h[1:5, -1]
  const Node& select = node_of(v);
  EXPECT_EQ(select.op, "aten::select.int");
  EXPECT_TRUE(is_int(select.args[1], 1));
  EXPECT_TRUE(is_int(select.args[2], -1));
  ASSERT_EQ(select.args[0].kind, Arg::Kind::kNode);
  const Node& slice = b.graph().nodes.at(select.args[0].node);
  EXPECT_EQ(slice.op, "aten::slice.Tensor");
  ASSERT_EQ(slice.args.size(), 5u);
  EXPECT_TRUE(is_node(slice.args[0], h.node()));
  EXPECT_TRUE(is_int(slice.args[1], 0));
  EXPECT_TRUE(is_int(slice.args[2], 1));
  EXPECT_TRUE(is_int(slice.args[3], 5));
  EXPECT_TRUE(is_int(slice.args[4], 1));
}

TEST(Builder, IndexIntegerDropsTheDimensionForTheNextIndex) {
  Builder b;
  Value h = b.module("h").output();
  Value v = h.index({0, Slice{2, std::nullopt, 2}});  // h[0, 2::2]
  const Node& slice = node_of(v);
  EXPECT_EQ(slice.op, "aten::slice.Tensor");
  ASSERT_EQ(slice.args.size(), 5u);
  EXPECT_TRUE(is_int(slice.args[1], 0)) << "dim 0 again: select removed the first";
  EXPECT_TRUE(is_int(slice.args[2], 2));
  EXPECT_TRUE(is_none(slice.args[3]));
  EXPECT_TRUE(is_int(slice.args[4], 2));
  const Node& select = b.graph().nodes.at(slice.args[0].node);
  EXPECT_EQ(select.op, "aten::select.int");
  EXPECT_TRUE(is_node(select.args[0], h.node()));
  EXPECT_TRUE(is_int(select.args[1], 0));
  EXPECT_TRUE(is_int(select.args[2], 0));
}

TEST(Builder, SliceWithOnlyAStopLeavesTheStartNone) {
  Builder b;
  Value h = b.module("h").output();
  const Node& n = node_of(h.slice(2, std::nullopt, 3));
  EXPECT_EQ(n.op, "aten::slice.Tensor");
  EXPECT_TRUE(is_int(n.args[1], 2));
  EXPECT_TRUE(is_none(n.args[2]));
  EXPECT_TRUE(is_int(n.args[3], 3));
  EXPECT_TRUE(is_int(n.args[4], 1));
}

// ---- methods -------------------------------------------------------------------

TEST(Builder, MethodsRecordTheirSchemaAndArguments) {
  Builder b;
  Value h = b.module("h").output();
  struct Case {
    const char* op;
    Value v;
    std::function<void(const std::vector<Arg>&)> check;  // arguments after self
  };
  std::vector<Case> cases = {
      {"aten::softmax.int", h.softmax(-1), [](const auto& a) { ASSERT_EQ(a.size(), 1u); EXPECT_TRUE(is_int(a[0], -1)); }},
      {"aten::log_softmax.int", h.log_softmax(2), [](const auto& a) { EXPECT_TRUE(is_int(a.at(0), 2)); }},
      {"aten::mean.dim", h.mean({1}, true),
       [](const auto& a) { ASSERT_EQ(a.size(), 2u); EXPECT_TRUE(is_ints(a[0], {1})); EXPECT_TRUE(is_bool(a[1], true)); }},
      {"aten::sum.dim_IntList", h.sum({0, 2}),
       [](const auto& a) { ASSERT_EQ(a.size(), 2u); EXPECT_TRUE(is_ints(a[0], {0, 2})); EXPECT_TRUE(is_bool(a[1], false)); }},
      {"aten::norm.ScalarOpt_dim", h.norm({-1}, true),
       [](const auto& a) {
         ASSERT_EQ(a.size(), 3u);
         EXPECT_TRUE(is_float(a[0], 2.0));
         EXPECT_TRUE(is_ints(a[1], {-1}));
         EXPECT_TRUE(is_bool(a[2], true));
       }},
      {"aten::argmax", h.argmax(-1),
       [](const auto& a) { ASSERT_EQ(a.size(), 2u); EXPECT_TRUE(is_int(a[0], -1)); EXPECT_TRUE(is_bool(a[1], false)); }},
      {"aten::reshape", h.reshape({2, -1}), [](const auto& a) { EXPECT_TRUE(is_ints(a.at(0), {2, -1})); }},
      {"aten::view", h.view({-1}), [](const auto& a) { EXPECT_TRUE(is_ints(a.at(0), {-1})); }},
      {"aten::transpose.int", h.transpose(0, 1),
       [](const auto& a) { ASSERT_EQ(a.size(), 2u); EXPECT_TRUE(is_int(a[0], 0)); EXPECT_TRUE(is_int(a[1], 1)); }},
      {"aten::permute", h.permute({2, 0, 1}), [](const auto& a) { EXPECT_TRUE(is_ints(a.at(0), {2, 0, 1})); }},
      {"aten::unsqueeze", h.unsqueeze(1), [](const auto& a) { EXPECT_TRUE(is_int(a.at(0), 1)); }},
      {"aten::squeeze.dim", h.squeeze(0), [](const auto& a) { EXPECT_TRUE(is_int(a.at(0), 0)); }},
      {"aten::flatten.using_ints", h.flatten(),
       [](const auto& a) { ASSERT_EQ(a.size(), 2u); EXPECT_TRUE(is_int(a[0], 0)); EXPECT_TRUE(is_int(a[1], -1)); }},
      {"aten::to.dtype", h.to(DType::kFloat16),
       [](const auto& a) {
         ASSERT_EQ(a.size(), 4u);
         EXPECT_EQ(a[0].kind, Arg::Kind::kDType);
         EXPECT_EQ(a[0].dtype, DType::kFloat16);
         EXPECT_TRUE(is_bool(a[1], false));  // non_blocking
         EXPECT_TRUE(is_bool(a[2], false));  // copy
         EXPECT_TRUE(is_none(a[3]));         // memory_format
       }},
      {"aten::clone", h.clone(), [](const auto& a) { ASSERT_EQ(a.size(), 1u); EXPECT_TRUE(is_none(a[0])); }},
      {"aten::pow.Tensor_Scalar", h.pow(3.0), [](const auto& a) { EXPECT_TRUE(is_float(a.at(0), 3.0)); }},
      {"aten::zeros_like", h.zeros_like(), [](const auto& a) { EXPECT_TRUE(a.empty()); }},
      {"aten::exp", h.exp(), [](const auto& a) { EXPECT_TRUE(a.empty()); }},
      {"aten::log", h.log(), [](const auto& a) { EXPECT_TRUE(a.empty()); }},
      {"aten::abs", h.abs(), [](const auto& a) { EXPECT_TRUE(a.empty()); }},
      {"aten::sqrt", h.sqrt(), [](const auto& a) { EXPECT_TRUE(a.empty()); }},
      {"aten::relu", h.relu(), [](const auto& a) { EXPECT_TRUE(a.empty()); }},
      {"aten::tanh", h.tanh(), [](const auto& a) { EXPECT_TRUE(a.empty()); }},
      {"aten::sigmoid", h.sigmoid(), [](const auto& a) { EXPECT_TRUE(a.empty()); }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.op);
    const Node& n = node_of(c.v);
    EXPECT_EQ(n.kind, NodeKind::kOp);
    EXPECT_EQ(n.op, c.op);
    ASSERT_FALSE(n.args.empty());
    EXPECT_TRUE(is_node(n.args[0], h.node()));
    c.check(std::vector<Arg>(n.args.begin() + 1, n.args.end()));
  }
}

TEST(Builder, CatAndStackTakeANodeList) {
  Builder b;
  Value x = b.module("x").output();
  Value y = b.module("y").output();
  for (const auto& [v, op] : {std::pair{cat({x, y}, 1), "aten::cat"}, std::pair{stack({y, x}), "aten::stack"}}) {
    SCOPED_TRACE(op);
    const Node& n = node_of(v);
    EXPECT_EQ(n.op, op);
    ASSERT_EQ(n.args.size(), 2u);
    EXPECT_EQ(n.args[0].kind, Arg::Kind::kNodes);
  }
  EXPECT_EQ(node_of(cat({x, y}, 1)).args[0].nodes, (std::vector<uint32_t>{x.node(), y.node()}));
  EXPECT_TRUE(is_int(node_of(cat({x, y}, 1)).args[1], 1));
  EXPECT_TRUE(is_int(node_of(stack({x, y})).args[1], 0));
  EXPECT_THROW(cat({}), std::logic_error);
  EXPECT_THROW(stack({}), std::logic_error);
}

TEST(Builder, WhereTakesConditionThenBranches) {
  Builder b;
  Value c = b.module("c").output();
  Value x = b.module("x").output();
  Value y = b.module("y").output();
  const Node& n = node_of(where(c, x, y));
  EXPECT_EQ(n.op, "aten::where.self");
  ASSERT_EQ(n.args.size(), 3u);
  EXPECT_TRUE(is_node(n.args[0], c.node()));
  EXPECT_TRUE(is_node(n.args[1], x.node()));
  EXPECT_TRUE(is_node(n.args[2], y.node()));
}

// The builder's own ops must pass the allowlist, or traced graphs would be rejected.
TEST(Builder, EveryOpTheBuilderEmitsIsAllowlisted) {
  Builder b;
  Value h = b.module("h").output();
  Value w = b.module("w").output();
  std::vector<Value> vs = {h + w, h - w, h * w, h / w, h + 1, h - 1, h * 2, h / 2, 1 - h, 1 / h, -h, h.matmul(w),
                           h[0], h.index({Slice{1, 2}, -1}), h.softmax(-1), h.log_softmax(-1), h.mean({0}),
                           h.sum({0}), h.norm({0}), h.argmax(0), h.reshape({-1}), h.view({-1}),
                           h.transpose(0, 1), h.permute({1, 0}), h.unsqueeze(0), h.squeeze(0), h.flatten(),
                           h.to(DType::kBFloat16), h.clone(), h.zeros_like(), h.exp(), h.log(), h.abs(),
                           h.sqrt(), h.relu(), h.tanh(), h.sigmoid(), h.pow(2), cat({h, w}), stack({h, w}),
                           where(h, h, w)};
  EXPECT_GT(vs.size(), 0u);
  for (const Node& n : b.graph().nodes) {
    if (n.kind == NodeKind::kOp) {
      EXPECT_TRUE(graph::is_allowlisted_op(n.op)) << n.op;
    }
  }
  Status s = graph::validate(b.graph());
  EXPECT_TRUE(s.ok()) << s.to_string();
}

// ---- constants, stream, log, stop ------------------------------------------------

TEST(Builder, ConstantCarriesTheTensorInline) {
  Builder b;
  graph::TensorData t;
  t.dtype = DType::kInt16;
  t.shape = {2, 2};
  t.bytes = std::string("\x01\x00\x02\x00\x03\x00\x04\x00", 8);
  Value c = b.constant(t);
  const Node& n = node_of(c);
  EXPECT_EQ(n.kind, NodeKind::kConstant);
  EXPECT_EQ(n.tensor.dtype, DType::kInt16);
  EXPECT_EQ(n.tensor.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(n.tensor.bytes, t.bytes);
  EXPECT_TRUE(n.content_sha256.empty());
}

TEST(Builder, ScalarIsARankZeroFloat32Constant) {
  Builder b;
  Value s = b.scalar(0.5);
  const Node& n = node_of(s);
  EXPECT_EQ(n.kind, NodeKind::kConstant);
  EXPECT_EQ(n.tensor.dtype, DType::kFloat32);
  EXPECT_TRUE(n.tensor.shape.empty());
  ASSERT_EQ(n.tensor.bytes.size(), 4u);
  float f = 0;
  std::memcpy(&f, n.tensor.bytes.data(), 4);
  EXPECT_EQ(f, 0.5f);
}

TEST(Builder, ConstantRefCarriesOnlyTheDigest) {
  Builder b;
  const std::string sha(64, 'a');
  const Node& n = node_of(b.constant_ref(sha));
  EXPECT_EQ(n.kind, NodeKind::kConstant);
  EXPECT_EQ(n.content_sha256, sha);
  EXPECT_TRUE(n.tensor.bytes.empty());
  EXPECT_TRUE(n.tensor.shape.empty());
}

TEST(Builder, StreamAddsANodeWhoseValueIsTheReply) {
  Builder b;
  Value h = b.module("h").output();
  Value reply = b.stream("steer", h);
  const Node& n = node_of(reply);
  EXPECT_EQ(n.kind, NodeKind::kStream);
  EXPECT_EQ(n.input, h.node());
  EXPECT_EQ(n.name, "steer");
  b.module("h").output().set(reply);
  EXPECT_EQ(b.graph().nodes.back().input, reply.node());
}

TEST(Builder, LogAndStopAddValuelessNodes) {
  Builder b;
  Value h = b.module("h").output();
  b.log("norm of h", h);
  b.stop(h);
  ASSERT_EQ(b.graph().nodes.size(), 3u);
  const Node& log = b.graph().nodes[1];
  EXPECT_EQ(log.kind, NodeKind::kLog);
  EXPECT_EQ(log.input, h.node());
  EXPECT_EQ(log.name, "norm of h");
  const Node& stop = b.graph().nodes[2];
  EXPECT_EQ(stop.kind, NodeKind::kStop);
  EXPECT_EQ(stop.input, h.node());
}

TEST(Builder, OpAcceptsEveryArgumentKind) {
  Builder b;
  Value h = b.module("h").output();
  Value w = b.module("w").output();
  Value v = b.op("aten::custom", {h, 7, int64_t{-8}, 2.5, true, std::vector<int64_t>{1, 2}, {3, 4},
                                  DType::kInt8, "text", std::string("more"), std::nullopt,
                                  std::vector<Value>{w, h}});
  const Node& n = node_of(v);
  EXPECT_EQ(n.kind, NodeKind::kOp);
  EXPECT_EQ(n.op, "aten::custom");
  ASSERT_EQ(n.args.size(), 12u);
  EXPECT_TRUE(is_node(n.args[0], h.node()));
  EXPECT_TRUE(is_int(n.args[1], 7));
  EXPECT_TRUE(is_int(n.args[2], -8));
  EXPECT_TRUE(is_float(n.args[3], 2.5));
  EXPECT_TRUE(is_bool(n.args[4], true));
  EXPECT_TRUE(is_ints(n.args[5], {1, 2}));
  EXPECT_TRUE(is_ints(n.args[6], {3, 4}));
  EXPECT_EQ(n.args[7].kind, Arg::Kind::kDType);
  EXPECT_EQ(n.args[7].dtype, DType::kInt8);
  EXPECT_EQ(n.args[8].kind, Arg::Kind::kStr);
  EXPECT_EQ(n.args[8].str, "text");
  EXPECT_EQ(n.args[9].kind, Arg::Kind::kStr);
  EXPECT_EQ(n.args[9].str, "more");
  EXPECT_TRUE(is_none(n.args[10]));
  EXPECT_EQ(n.args[11].kind, Arg::Kind::kNodes);
  EXPECT_EQ(n.args[11].nodes, (std::vector<uint32_t>{w.node(), h.node()}));
  EXPECT_EQ(n.dependencies(), (std::vector<uint32_t>{h.node(), w.node(), h.node()}));
}

TEST(Builder, NodesAreAppendedInCallOrder) {
  Builder b;
  Value h = b.module("h").output();  // 0
  Value c = b.scalar(2);             // 1
  Value m = h * c;                   // 2
  m.save("m");                       // 3
  EXPECT_EQ(h.node(), 0u);
  EXPECT_EQ(c.node(), 1u);
  EXPECT_EQ(m.node(), 2u);
  EXPECT_EQ(b.graph().nodes.size(), 4u);
  EXPECT_EQ(b.graph().nodes[3].kind, NodeKind::kSave);
}

// ---- misuse --------------------------------------------------------------------

TEST(Builder, CombiningValuesFromTwoBuildersThrows) {
  Builder b1;
  Builder b2;
  Value x = b1.module("x").output();
  Value y = b2.module("y").output();
  size_t n1 = b1.graph().nodes.size();
  size_t n2 = b2.graph().nodes.size();
  EXPECT_THROW(x + y, std::logic_error);
  EXPECT_THROW(x - y, std::logic_error);
  EXPECT_THROW(x * y, std::logic_error);
  EXPECT_THROW(y / x, std::logic_error);
  EXPECT_THROW(x.matmul(y), std::logic_error);
  EXPECT_THROW(where(x, x, y), std::logic_error);
  EXPECT_THROW(where(y, x, x), std::logic_error);
  EXPECT_THROW(b1.module("x").output().set(y), std::logic_error);
  EXPECT_THROW(cat({x, y}), std::logic_error);
  EXPECT_THROW(stack({x, y}), std::logic_error);
  EXPECT_THROW(b1.op("aten::neg", {y}), std::logic_error);
  EXPECT_THROW(b1.op("aten::cat", {std::vector<Value>{x, y}, 0}), std::logic_error);
  EXPECT_THROW(b1.stream("cb", y), std::logic_error);
  EXPECT_THROW(b1.log("text", y), std::logic_error);
  EXPECT_THROW(b1.stop(y), std::logic_error);
  // A rejected call records nothing in either trace.
  EXPECT_EQ(b1.graph().nodes.size(), n1);
  EXPECT_EQ(b2.graph().nodes.size(), n2);
}

TEST(Builder, UsingAnEmptyValueThrows) {
  Builder b;
  Value h = b.module("h").output();
  Value empty;
  EXPECT_FALSE(empty.valid());
  EXPECT_THROW(empty * 2, std::logic_error);
  EXPECT_THROW(h + empty, std::logic_error);
  EXPECT_THROW(empty.softmax(0), std::logic_error);
  EXPECT_THROW(empty.save("x"), std::logic_error);
  EXPECT_THROW(b.op("aten::neg", {empty}), std::logic_error);
  EXPECT_THROW(b.op("aten::cat", {std::vector<Value>{h, empty}}), std::logic_error);
  EXPECT_THROW(b.module("h").output().set(empty), std::logic_error);
  EXPECT_THROW(b.stream("cb", empty), std::logic_error);
  EXPECT_THROW(b.log("text", empty), std::logic_error);
  EXPECT_THROW(b.stop(empty), std::logic_error);
  EXPECT_EQ(b.graph().nodes.size(), 1u);
}

}  // namespace
}  // namespace loom
