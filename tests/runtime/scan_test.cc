// Scan (shapes only, meta tensors) against real runs; skip.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "runtime/gpt2.h"
#include "runtime/llama.h"
#include "runtime/trace.h"
#include "tests/runtime/test_util.h"

namespace loom::runtime {
namespace {

using loom::testing::TempDir;

class ScanTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    ASSERT_TRUE(write_random_gpt2_checkpoint(dir_->file("gpt2"), Gpt2Config::tiny(), 51).ok());
    ASSERT_TRUE(write_random_llama_checkpoint(dir_->file("llama"), LlamaConfig::tiny(), 52).ok());
    gpt2_ = load_model(dir_->file("gpt2")).value().release();
    llama_ = load_model(dir_->file("llama")).value().release();
  }
  static void TearDownTestSuite() {
    delete gpt2_;
    delete llama_;
    delete dir_;
  }
  static at::Tensor ids(int64_t batch, int64_t seq) {
    return (at::arange(batch * seq, at::kLong) * 7).remainder(1000).view({batch, seq});
  }
  // Every save of a real run has the shape and dtype scan gives it.
  static void expect_scan_matches_run(Model& model, LocalTrace& tr, const std::vector<std::vector<c10::IValue>>& in) {
    auto scanned = scan(model, tr.graph(), in);
    ASSERT_TRUE(scanned.ok()) << scanned.status().message();
    auto ran = tr.run();
    ASSERT_TRUE(ran.ok()) << ran.status().message();
    ASSERT_EQ(scanned->saves.size(), ran->saved.size());
    for (size_t i = 0; i < ran->saved.size(); ++i) {
      EXPECT_EQ(scanned->saves[i].name, ran->saved[i].name);
      EXPECT_TRUE(scanned->saves[i].tensor.is_meta());
      EXPECT_EQ(scanned->saves[i].tensor.sizes(), ran->saved[i].tensor.sizes()) << ran->saved[i].name;
      EXPECT_EQ(scanned->saves[i].tensor.scalar_type(), ran->saved[i].tensor.scalar_type()) << ran->saved[i].name;
    }
    EXPECT_GT(scanned->saved_bytes, 0u);
    int64_t tokens = 0;
    for (const auto& invoke : in) tokens += invoke[0].toTensor().numel();
    EXPECT_EQ(scanned->tokens, tokens);
  }
  static TempDir* dir_;
  static Model* gpt2_;
  static Model* llama_;
};
TempDir* ScanTest::dir_ = nullptr;
Model* ScanTest::gpt2_ = nullptr;
Model* ScanTest::llama_ = nullptr;

TEST_F(ScanTest, ShapesEqualARealRunsForGpt2WithInvokesSetsAndGradients) {
  LocalTrace tr(*gpt2_);
  Invoke a = tr.invoke({ids(2, 9)});
  Invoke b = tr.invoke({ids(1, 9)});
  HookPoint h0 = a.module("transformer.h.0").output(0);
  b.module("transformer.h.1").output(0).set(h0.slice(0, 0, 1) * 2.0);
  h0.save("h0");
  tr.module("transformer.h.0.attn.attn_dropout").output().save("probs");
  tr.module("transformer.h.1.mlp.c_fc").output().mean({-1}).save("fc_mean");
  tr.output().argmax(-1).save("top");
  b.module("transformer.h.0").output(0).grad().save("grad_b0");
  tr.backward(next_token_loss(tr.output(), tr.input(0)));
  const std::vector<std::vector<c10::IValue>> in = {{ids(2, 9)}, {ids(1, 9)}};
  expect_scan_matches_run(*gpt2_, tr, in);
  auto s = scan(*gpt2_, tr.graph(), in);
  ASSERT_TRUE(s.ok());
  EXPECT_GT(s->autograd_bytes, 0u);
  EXPECT_GT(s->intermediate_bytes, 0u);
  // Every node with a value has its shape: the read of block 0 (invoke 0) is [2, 9, 64].
  bool found = false;
  for (const auto& [node, t] : s->values) {
    if (node == h0.node()) {
      found = true;
      EXPECT_EQ(t.sizes(), (std::vector<int64_t>{2, 9, 64}));
    }
  }
  EXPECT_TRUE(found);
}

TEST_F(ScanTest, ShapesEqualARealRunsForLlama) {
  LocalTrace tr(*llama_, {ids(2, 7)});
  tr.module("model.layers.0.self_attn.k_proj").output().save("k");
  tr.module("model.rotary_emb").output(0).save("cos");
  tr.module("model.layers.1").output(0).save("h1");
  tr.output().log_softmax(-1).save("logp");
  expect_scan_matches_run(*llama_, tr, {{ids(2, 7)}});
}

TEST_F(ScanTest, CatchesAWrongShapeSetAndSkipBeforeRunning) {
  {
    LocalTrace tr(*gpt2_, {ids(1, 5)});
    HookPoint h = tr.module("transformer.h.0").output(0);
    tr.module("transformer.h.1").output(0).set(h.mean({1}));  // [1, 64] for [1, 5, 64]
    auto s = scan(*gpt2_, tr.graph(), {{ids(1, 5)}});
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.status().message().find("the new value has shape [1, 64], but the output it replaces has shape [1, 5, 64]"),
              std::string::npos)
        << s.status().message();
  }
  {
    LocalTrace tr(*gpt2_, {ids(1, 5)});
    tr.module("transformer.h.1.mlp.c_fc").skip(tr.module("transformer.h.1.ln_2").output());  // [.., 64] for [.., 256]
    tr.output().save("logits");
    auto s = scan(*gpt2_, tr.graph(), {{ids(1, 5)}});
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.status().message().find("the skip value is [1, 5, 64] Float, but the module's output is [1, 5, 256] Float"),
              std::string::npos)
        << s.status().message();
    // A real run of it checks the same first (no half-run model).
    auto r = tr.run();
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("the skip value is"), std::string::npos) << r.status().message();
  }
  {  // an op on incompatible shapes
    LocalTrace tr(*gpt2_, {ids(1, 5)});
    (tr.module("transformer.h.0").output(0) + tr.module("transformer.h.0.attn.attn_dropout").output()).save("x");
    auto s = scan(*gpt2_, tr.graph(), {{ids(1, 5)}});
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.status().message().find("aten::add.Tensor"), std::string::npos) << s.status().message();
  }
}

TEST_F(ScanTest, TouchesNoWeightAndLeavesTheModelAsItWas) {
  std::vector<const void*> before;
  for (const at::Tensor& t : gpt2_->tensors()) before.push_back(t.defined() ? t.data_ptr() : nullptr);
  LocalTrace tr(*gpt2_, {ids(1, 6)});
  tr.output().save("logits");
  auto want = tr.run();
  ASSERT_TRUE(want.ok());
  ASSERT_TRUE(scan(*gpt2_, tr.graph(), {{ids(1, 6)}}).ok());
  std::vector<const void*> after;
  for (const at::Tensor& t : gpt2_->tensors()) after.push_back(t.defined() ? t.data_ptr() : nullptr);
  EXPECT_EQ(before, after);
  EXPECT_EQ(gpt2_->device(), "cpu");
  auto again = tr.run();
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->at("logits").equal(want->at("logits")));
  // Token ids are still checked (on the real inputs).
  auto bad = scan(*gpt2_, tr.graph(), {{at::full({1, 3}, 5000, at::kLong)}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("outside the vocabulary"), std::string::npos) << bad.status().message();
}

// A server scans with a model loaded on the meta device: headers only.
TEST_F(ScanTest, AModelLoadedOnTheMetaDeviceScansTheSame) {
  ModelOptions o;
  o.device = "meta";
  for (const char* name : {"gpt2", "llama"}) {
    auto meta = load_model(dir_->file(name), o);
    ASSERT_TRUE(meta.ok()) << meta.status().message();
    EXPECT_EQ((*meta)->device(), "meta");
    Model& real = std::string(name) == "gpt2" ? *gpt2_ : *llama_;
    LocalTrace tr(real, {ids(2, 5)});
    tr.module(real.module_paths().back()).output().save("last");  // lm_head
    tr.output().save("logits");
    auto a = scan(real, tr.graph(), {{ids(2, 5)}});
    auto b = scan(**meta, tr.graph(), {{ids(2, 5)}});
    ASSERT_TRUE(a.ok()) << a.status().message();
    ASSERT_TRUE(b.ok()) << b.status().message();
    ASSERT_EQ(a->saves.size(), b->saves.size());
    for (size_t i = 0; i < a->saves.size(); ++i) EXPECT_EQ(a->saves[i].tensor.sizes(), b->saves[i].tensor.sizes());
    EXPECT_EQ(a->intermediate_bytes, b->intermediate_bytes);
  }
}

TEST_F(ScanTest, SkipRunsNothingOfTheModuleAndGivesItsValue) {
  // Block 0's attention is skipped with zeros: block 0's output is then its
  // input plus the MLP of it, as a hand computation from the same hooks says.
  LocalTrace tr(*gpt2_, {ids(1, 6)});
  HookPoint attn_in = tr.module("transformer.h.0.attn").input(0);
  tr.module("transformer.h.0.attn").skip(attn_in.zeros_like());
  tr.module("transformer.h.0").input(0).save("x");
  tr.module("transformer.h.0.mlp").output().save("mlp");
  tr.module("transformer.h.0").output(0).save("out");
  auto r = tr.run();
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(at::allclose(r->at("out"), r->at("x") + r->at("mlp")));
}

}  // namespace
}  // namespace loom::runtime
