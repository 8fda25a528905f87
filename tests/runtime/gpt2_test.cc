// Native GPT-2 against an independent computation: tests/fixtures/gpt2_reference.py
// implements Hugging Face's formulas in Python on the same generated weights.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>

#include "runtime/execute.h"
#include "runtime/gpt2.h"
#include "runtime/trace.h"
#include "tests/runtime/test_util.h"

namespace loom::runtime {
namespace {

using loom::testing::TempDir;

class Gpt2Test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    ASSERT_TRUE(write_random_gpt2_checkpoint(dir_->file("ckpt"), Gpt2Config::tiny(), 7).ok());
    auto m = load_model(dir_->file("ckpt"));
    ASSERT_TRUE(m.ok()) << m.status().message();
    model_ = std::move(m).value().release();
  }
  static void TearDownTestSuite() {
    delete model_;
    delete dir_;
  }
  static at::Tensor ids(int64_t batch, int64_t seq, uint64_t seed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    return at::randint(0, Gpt2Config::tiny().vocab_size, {batch, seq}, gen, at::kLong);
  }
  static TempDir* dir_;
  static Model* model_;
};
TempDir* Gpt2Test::dir_ = nullptr;
Model* Gpt2Test::model_ = nullptr;

TEST_F(Gpt2Test, MatchesIndependentReferenceImplementation) {
  at::Tensor input = ids(2, 16, 1);
  ASSERT_TRUE(write_safetensors_file(dir_->file("in.safetensors"), {{"0", input}}).ok());
  ASSERT_EQ(loom::testing::run_fixture_script("gpt2_reference.py", dir_->file("ckpt") + " " +
                                                                        dir_->file("in.safetensors") + " " +
                                                                        dir_->file("ref.safetensors")),
            0);
  auto ref = loom::testing::read_or_die(dir_->file("ref.safetensors"));

  LocalTrace tr(*model_, {input});
  tr.output().save("logits");
  for (int i = 0; i < 2; ++i) {
    std::string p = "transformer.h." + std::to_string(i);
    tr.module(p).output(0).save(p + ".output.0");
  }
  tr.module("transformer.h.0.attn.attn_dropout").output().save("transformer.h.0.attn.attn_dropout.output");
  tr.module("transformer.ln_f").output().save("transformer.ln_f.output");
  tr.module("transformer.h.0.mlp.act").output().save("transformer.h.0.mlp.act.output");
  auto result = tr.run();
  ASSERT_TRUE(result.ok()) << result.status().message();
  ASSERT_EQ(result->saved.size(), 6u);
  for (const auto& nt : result->saved) {
    at::Tensor expected = ref.find(nt.name);
    ASSERT_TRUE(expected.defined()) << nt.name;
    EXPECT_EQ(nt.tensor.sizes(), expected.sizes()) << nt.name;
    EXPECT_TRUE(at::allclose(nt.tensor, expected, 1e-4, 1e-5))
        << nt.name << " max diff " << (nt.tensor - expected).abs().max().item<float>();
  }
  // Attention rows are distributions and causal.
  at::Tensor attn = result->at("transformer.h.0.attn.attn_dropout.output");
  EXPECT_TRUE(at::allclose(attn.sum(-1), at::ones({2, 4, 16}), 1e-5, 1e-5));
  EXPECT_EQ(attn.triu(1).abs().max().item<float>(), 0.0f);
}

TEST_F(Gpt2Test, ModulePathsFollowHuggingFace) {
  const auto& paths = model_->module_paths();
  EXPECT_EQ(paths[0], "");
  for (const char* p : {"transformer", "transformer.wte", "transformer.wpe", "transformer.drop", "transformer.h",
                        "transformer.h.1", "transformer.h.1.ln_1", "transformer.h.1.attn", "transformer.h.1.attn.c_attn",
                        "transformer.h.1.attn.c_proj", "transformer.h.1.attn.attn_dropout",
                        "transformer.h.1.attn.resid_dropout", "transformer.h.1.ln_2", "transformer.h.1.mlp",
                        "transformer.h.1.mlp.c_fc", "transformer.h.1.mlp.act", "transformer.h.1.mlp.c_proj",
                        "transformer.h.1.mlp.dropout", "transformer.ln_f", "lm_head"}) {
    EXPECT_GE(model_->module_id(p), 0) << p;
  }
  EXPECT_EQ(model_->module_id("transformer.h.2"), -1);
  EXPECT_EQ(paths.size(), 6u + 2u * 13u + 2u);
}

TEST_F(Gpt2Test, EmptyTraceIsBitwiseIdenticalToBareForward) {
  at::Tensor input = ids(3, 12, 2);
  at::Tensor bare = model_->forward({input}, nullptr).toTensor();
  graph::Graph empty;
  auto run = execute(*model_, empty, {{input}});
  ASSERT_TRUE(run.ok()) << run.status().message();
  EXPECT_TRUE(at::equal(run->output.toTensor(), bare));
  // Reads alone do not disturb the forward pass either.
  LocalTrace tr(*model_, {input});
  for (int i = 0; i < 2; ++i) tr.module("transformer.h." + std::to_string(i)).output(0).save("h" + std::to_string(i));
  auto run2 = execute(*model_, tr.graph(), {{input}});
  ASSERT_TRUE(run2.ok()) << run2.status().message();
  EXPECT_TRUE(at::equal(run2->output.toTensor(), bare));
}

TEST_F(Gpt2Test, LoadsPrefixedCheckpointWithMaskBuffers) {
  TempDir d;
  ASSERT_TRUE(write_random_gpt2_checkpoint(d.file("p"), Gpt2Config::tiny(), 7, /*with_prefix=*/true).ok());
  auto file = loom::testing::read_or_die(d.file("p/model.safetensors"));
  // Some checkpoints carry the causal-mask buffers; they must be ignored.
  file.tensors.push_back({"transformer.h.0.attn.bias", at::ones({1, 1, 128, 128})});
  file.tensors.push_back({"transformer.h.0.attn.masked_bias", at::full({}, -1e4)});
  ASSERT_TRUE(write_safetensors_file(d.file("p/model.safetensors"), file.tensors).ok());
  auto m = load_model(d.file("p"));
  ASSERT_TRUE(m.ok()) << m.status().message();
  at::Tensor input = ids(1, 8, 3);
  EXPECT_TRUE(at::equal((*m)->forward({input}, nullptr).toTensor(), model_->forward({input}, nullptr).toTensor()));
}

TEST_F(Gpt2Test, RejectsCheckpointsThatDoNotMatchTheConfig) {
  TempDir d;
  ASSERT_TRUE(write_random_gpt2_checkpoint(d.path(), Gpt2Config::tiny(), 7).ok());
  auto file = loom::testing::read_or_die(d.file("model.safetensors"));
  auto rewrite = [&](std::vector<NamedTensor> tensors) {
    ASSERT_TRUE(write_safetensors_file(d.file("model.safetensors"), tensors).ok());
  };
  // Missing tensor.
  std::vector<NamedTensor> missing;
  for (auto& nt : file.tensors) if (nt.name != "h.1.mlp.c_fc.bias") missing.push_back(nt);
  rewrite(missing);
  auto m = load_model(d.path());
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("missing tensor \"h.1.mlp.c_fc.bias\""), std::string::npos) << m.status().message();
  // Wrong shape.
  std::vector<NamedTensor> wrong = file.tensors;
  for (auto& nt : wrong) if (nt.name == "wpe.weight") nt.tensor = at::zeros({7, 64});
  rewrite(wrong);
  m = load_model(d.path());
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("\"wpe.weight\" has shape [7, 64]"), std::string::npos) << m.status().message();
  // A tensor a GPT-2 of this size does not have.
  std::vector<NamedTensor> extra = file.tensors;
  extra.push_back({"h.5.ln_1.weight", at::ones({64})});
  rewrite(extra);
  m = load_model(d.path());
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("unexpected tensor \"h.5.ln_1.weight\""), std::string::npos);
  // No config.json.
  std::filesystem::remove(d.file("config.json"));
  m = load_model(d.path());
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("config.json"), std::string::npos);
}

TEST_F(Gpt2Test, BadInputsFailTheRunWithAClearMessage) {
  graph::Graph empty;
  auto run = execute(*model_, empty, {{at::full({1, 4}, 5000, at::kLong)}});
  ASSERT_FALSE(run.ok());
  EXPECT_NE(run.status().message().find("token id 5000 is outside the vocabulary [0, 1000)"), std::string::npos)
      << run.status().message();
  run = execute(*model_, empty, {{at::zeros({1, 129}, at::kLong)}});
  ASSERT_FALSE(run.ok());
  EXPECT_NE(run.status().message().find("sequence length 129"), std::string::npos) << run.status().message();
  run = execute(*model_, empty, {{at::zeros({4}, at::kFloat)}});
  ASSERT_FALSE(run.ok());
  EXPECT_NE(run.status().message().find("input_ids"), std::string::npos) << run.status().message();
}

}  // namespace
}  // namespace loom::runtime
