// Each intervention kind on a generated tiny GPT-2, checked against values
// computed from the model's own unmodified activations.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "runtime/execute.h"
#include "runtime/tensor_data.h"
#include "runtime/trace.h"
#include "tests/runtime/test_util.h"

namespace loom::runtime {
namespace {

using loom::testing::TempDir;

class InterleaverTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    ASSERT_TRUE(write_random_gpt2_checkpoint(dir_->path(), Gpt2Config::tiny(), 11).ok());
    model_ = load_model(dir_->path()).value().release();
  }
  static void TearDownTestSuite() {
    delete model_;
    delete dir_;
  }
  static at::Tensor ids(int64_t batch, int64_t seq, int64_t offset = 0) {
    return (at::arange(batch * seq, at::kLong).view({batch, seq}) * 37 + offset) % 1000;
  }
  static TraceResult run_ok(LocalTrace& tr) {
    auto r = tr.run();
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? std::move(r).value() : TraceResult{};
  }
  static Status run_error(LocalTrace& tr) {
    auto r = tr.run();
    EXPECT_FALSE(r.ok());
    return r.ok() ? Status() : r.status();
  }
  static TempDir* dir_;
  static Model* model_;
};
TempDir* InterleaverTest::dir_ = nullptr;
Model* InterleaverTest::model_ = nullptr;

bool contains(const Status& s, const std::string& text) { return s.message().find(text) != std::string::npos; }

TEST_F(InterleaverTest, ReadsOutputsAndInputs) {
  LocalTrace tr(*model_, {ids(2, 8)});
  tr.module("transformer.drop").output().save("drop");
  tr.module("transformer.h.0").input(0).save("h0_in");
  tr.module("transformer.h.0").output(0).save("h0_out");
  tr.module("transformer.h.1").input(0).save("h1_in");
  tr.input(0).save("ids");
  TraceResult r = run_ok(tr);
  EXPECT_TRUE(at::equal(r.at("drop"), r.at("h0_in")));
  EXPECT_TRUE(at::equal(r.at("h0_out"), r.at("h1_in")));
  EXPECT_TRUE(at::equal(r.at("ids"), ids(2, 8)));
}

TEST_F(InterleaverTest, SetReplacesAModuleOutput) {
  // With the MLP zeroed, the block's output is its input plus attention.
  LocalTrace tr(*model_, {ids(1, 8)});
  HookPoint mlp = tr.module("transformer.h.0.mlp").output();
  mlp.set(mlp.zeros_like());
  tr.module("transformer.h.0").input(0).save("x");
  tr.module("transformer.h.0.attn").output(0).save("attn");
  tr.module("transformer.h.0").output(0).save("out");
  TraceResult r = run_ok(tr);
  EXPECT_TRUE(at::allclose(r.at("out"), r.at("x") + r.at("attn")));
}

TEST_F(InterleaverTest, SetOnTupleElementAndInputReachTheModel) {
  LocalTrace base(*model_, {ids(1, 8)});
  base.module("transformer.h.0").output(0).save("h0");
  base.output().save("logits");
  TraceResult b = run_ok(base);

  LocalTrace tr(*model_, {ids(1, 8)});
  HookPoint h0 = tr.module("transformer.h.0").output(0);
  h0.set(h0 * 2.0);
  tr.module("transformer.h.1").input(0).save("h1_in");
  tr.output().save("logits");
  TraceResult r = run_ok(tr);
  EXPECT_TRUE(at::allclose(r.at("h1_in"), b.at("h0") * 2));
  EXPECT_FALSE(at::allclose(r.at("logits"), b.at("logits")));

  // Setting the block's input to the unmodified value changes nothing.
  LocalTrace same(*model_, {ids(1, 8)});
  HookPoint in = same.module("transformer.h.1").input(0);
  in.set(in + 0.0);
  same.output().save("logits");
  EXPECT_TRUE(at::equal(run_ok(same).at("logits"), b.at("logits")));
}

TEST_F(InterleaverTest, OpsConstantsAndIndexingComputeValues) {
  LocalTrace tr(*model_, {ids(2, 8)});
  Value h = tr.module("transformer.h.1").output(0);
  h.save("h");
  ((h * 2.0 + 1.0).mean({-1})).save("affine_mean");
  h.index({Slice{}, -1}).save("last");
  h.index({0, Slice{2, 5}}).save("rows");
  at::Tensor v = at::linspace(0, 1, 64);
  Value c = tr.constant(to_tensor_data(v).value());
  (h + c).save("plus_const");
  (1.0 - h).save("rsub");
  (h / 4.0).softmax(-1).save("softmax");
  tr.output().argmax(-1).save("argmax");
  tr.output().save("logits");
  TraceResult r = run_ok(tr);
  const at::Tensor& H = r.at("h");
  EXPECT_TRUE(at::allclose(r.at("affine_mean"), (H * 2 + 1).mean({-1})));
  EXPECT_TRUE(at::equal(r.at("last"), H.select(1, -1)));
  EXPECT_TRUE(at::equal(r.at("rows"), H[0].slice(0, 2, 5)));
  EXPECT_TRUE(at::allclose(r.at("plus_const"), H + v));
  EXPECT_TRUE(at::allclose(r.at("rsub"), 1 - H));
  EXPECT_TRUE(at::allclose(r.at("softmax"), at::softmax(H / 4, -1)));
  EXPECT_TRUE(at::equal(r.at("argmax"), r.at("logits").argmax(-1)));
}

TEST_F(InterleaverTest, OpsFedOnlyByConstantsRunOnce) {
  // (1 - c) is ready before the forward pass; the product must still wait for h.
  LocalTrace tr(*model_, {ids(1, 8)});
  Value c = tr.constant(to_tensor_data(at::zeros({64})).value());
  HookPoint h = tr.module("transformer.h.0").output(0);
  h.save("h");
  (h * (1.0 - c)).save("same");
  TraceResult r = run_ok(tr);
  EXPECT_TRUE(at::equal(r.at("same"), r.at("h")));
}

TEST_F(InterleaverTest, TupleResultsAreIndexedWithElement) {
  LocalTrace tr(*model_, {ids(1, 4)});
  Value logits = tr.output();
  Value top = tr.op("aten::topk", {logits, 3, -1, true, true});
  tr.op("loom::element", {top, 1}).save("indices");
  logits.save("logits");
  TraceResult r = run_ok(tr);
  EXPECT_TRUE(at::equal(r.at("indices"), std::get<1>(at::topk(r.at("logits"), 3, -1))));
}

TEST_F(InterleaverTest, InvokesSeeOnlyTheirOwnRows) {
  at::Tensor a = ids(1, 8, 1), b = ids(2, 8, 500);
  LocalTrace alone(*model_, {a});
  alone.output().save("logits");
  TraceResult ra = run_ok(alone);

  LocalTrace tr(*model_);
  Invoke ia = tr.invoke({a});
  Invoke ib = tr.invoke({b});
  HookPoint hb = ib.module("transformer.h.0").output(0);
  hb.set(hb.zeros_like());
  ia.module("transformer.h.0").output(0).save("a_h0");
  hb.save("b_h0");  // the read sees the value before the set
  ia.output().save("a_logits");
  ib.module("transformer.h.1").input(0).save("b_h1_in");
  TraceResult r = run_ok(tr);
  EXPECT_EQ(r.at("a_h0").size(0), 1);
  EXPECT_EQ(r.at("b_h0").size(0), 2);
  EXPECT_TRUE(at::equal(r.at("b_h1_in"), at::zeros({2, 8, 64})));
  EXPECT_TRUE(at::allclose(r.at("a_logits"), ra.at("logits"), 1e-5, 1e-5));
  EXPECT_NE(r.at("b_h0").abs().sum().item<float>(), 0.0f);
}

TEST_F(InterleaverTest, ActivationPatchingBetweenInvokes) {
  at::Tensor clean = ids(1, 8, 3), corrupt = ids(1, 8, 400);
  LocalTrace tr(*model_);
  Invoke ic = tr.invoke({clean});
  Invoke ix = tr.invoke({corrupt});
  ix.module("transformer.h.1").output(0).set(ic.module("transformer.h.1").output(0));
  ic.output().save("clean");
  ix.output().save("patched");
  TraceResult r = run_ok(tr);
  // Everything after the last block depends only on its output.
  EXPECT_TRUE(at::allclose(r.at("patched"), r.at("clean"), 1e-5, 1e-5));
}

TEST_F(InterleaverTest, UsingALaterModuleEarlierNamesBothModules) {
  LocalTrace tr(*model_, {ids(1, 8)});
  tr.module("transformer.h.0").output(0).set(tr.module("transformer.h.1").output(0));
  Status s = run_error(tr);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(s, "module \"transformer.h.1\" runs after \"transformer.h.0\"")) << s.message();
}

TEST_F(InterleaverTest, HookPointNeverReachedIsAnError) {
  LocalTrace tr(*model_, {ids(1, 8)});
  tr.module("transformer.h.0").call(3).output(0).save("never");
  Status s = run_error(tr);
  EXPECT_TRUE(contains(s, "save \"never\"")) << s.message();
  EXPECT_TRUE(contains(s, "ran 1 time(s)")) << s.message();

  LocalTrace tr2(*model_, {ids(1, 8)});
  tr2.module("transformer.h").output().set(tr2.scalar(1));  // the ModuleList is never called
  Status s2 = run_error(tr2);
  EXPECT_TRUE(contains(s2, "never applied")) << s2.message();
}

TEST_F(InterleaverTest, StopEndsTheForwardPassEarly) {
  LocalTrace tr(*model_, {ids(1, 8)});
  Value h = tr.module("transformer.h.0").output(0).save("h0");
  tr.stop(h);
  auto r = tr.run();
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->stopped_early);
  EXPECT_EQ(r->at("h0").sizes(), (std::vector<int64_t>{1, 8, 64}));

  LocalTrace late(*model_, {ids(1, 8)});
  late.stop(late.module("transformer.h.0").output(0));
  late.output().save("logits");
  Status s = run_error(late);
  EXPECT_TRUE(contains(s, "before the run was stopped")) << s.message();
}

TEST_F(InterleaverTest, ErrorsInsideAtenNameTheNode) {
  LocalTrace tr(*model_, {ids(1, 8)});
  Value h = tr.module("transformer.h.0").output(0);
  h.matmul(h).save("bad");  // [1,8,64] @ [1,8,64]
  Status s = run_error(tr);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(s, "(op aten::matmul)")) << s.message();
  // The model is intact for the next run.
  LocalTrace ok(*model_, {ids(1, 8)});
  ok.output().save("logits");
  EXPECT_TRUE(ok.run().ok());
}

TEST_F(InterleaverTest, ValidationAgainstTheModelNamesTheProblem) {
  auto check = [&](const std::function<void(LocalTrace&)>& build, const std::string& text) {
    LocalTrace tr(*model_, {ids(1, 4)});
    build(tr);
    Status s = run_error(tr);
    EXPECT_TRUE(contains(s, text)) << "want \"" << text << "\" in: " << s.message();
  };
  check([](LocalTrace& t) { t.op("aten::frobnicate", {Value(t.output())}).save("x"); }, "unknown op \"aten::frobnicate\"");
  check([](LocalTrace& t) { t.op("aten::exponential_", {Value(t.output())}).save("x"); }, "is not on the allowlist");
  check([](LocalTrace& t) { t.op("aten::add.Tensor", {Value(t.output()), 3}).save("x"); },
        "argument 1 (other) of aten::add.Tensor must be Tensor, got int");
  check([](LocalTrace& t) { t.op("aten::softmax.int", {Value(t.output())}).save("x"); },
        "argument 1 (dim: int) of aten::softmax.int is missing");
  check([](LocalTrace& t) { t.module("transformer.h.9").output(0).save("x"); },
        "the model has no module \"transformer.h.9\"");
  check([](LocalTrace& t) { t.module("transformer.ln_f").output(0).save("x"); }, "is a Tensor, not a tuple");
  check([](LocalTrace& t) { t.module("transformer.h.0").output().save("x"); }, "can only save a tensor, got a Tuple");
}

TEST_F(InterleaverTest, StreamCallbacksRunInProcess) {
  LocalTrace tr(*model_, {ids(1, 8)});
  HookPoint attn = tr.module("transformer.h.0.attn.c_proj").output();
  Value doubled = tr.stream("double", attn);
  attn.set(doubled);
  attn.save("before");
  tr.module("transformer.h.0.attn.resid_dropout").input(0).save("after");
  int calls = 0;
  tr.on_stream("double", [&](const at::Tensor& t) {
    ++calls;
    return t * 2;
  });
  TraceResult r = run_ok(tr);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(at::allclose(r.at("after"), r.at("before") * 2));

  LocalTrace bad(*model_, {ids(1, 8)});
  bad.stream("boom", bad.module("transformer.h.0").output(0)).save("x");
  bad.on_stream("boom", [](const at::Tensor&) -> at::Tensor { throw std::runtime_error("callback exploded"); });
  Status s = run_error(bad);
  EXPECT_TRUE(contains(s, "callback exploded")) << s.message();

  LocalTrace none(*model_, {ids(1, 8)});
  none.stream("missing", none.module("transformer.h.0").output(0)).save("x");
  Status s2 = run_error(none);
  EXPECT_TRUE(contains(s2, "stream callback \"missing\"")) << s2.message();
}

TEST_F(InterleaverTest, LogNodesReachTheLogHandler) {
  LocalTrace tr(*model_, {ids(1, 8)});
  tr.log("norm of h0", tr.module("transformer.h.0").output(0).value().norm({-1}));
  std::vector<std::string> texts;
  tr.on_log([&](const std::string& text, const c10::IValue& v) {
    texts.push_back(text);
    EXPECT_EQ(v.toTensor().sizes(), (std::vector<int64_t>{1, 8}));
  });
  tr.output().save("logits");
  run_ok(tr);
  EXPECT_EQ(texts, std::vector<std::string>{"norm of h0"});
}

}  // namespace
}  // namespace loom::runtime
