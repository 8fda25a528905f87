// The `loom` CLI as a user runs it: a real process, real files.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdio>

#include "client/spec.h"
#include "runtime/gpt2_config.h"
#include "runtime/safetensors.h"
#include "tests/client/run_loom.h"
#include "tests/runtime/test_util.h"

namespace loom::client {
namespace {

using loom::testing::TempDir;

using loom::testing::Ran;
using loom::testing::run_loom;

class LoomCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Ran made = run_loom("make-checkpoint " + dir_.file("ckpt") + " --seed 3");
    ASSERT_EQ(made.code, 0) << made.output;
    at::Tensor ids = at::arange(12, at::kLong).view({2, 6});
    ASSERT_TRUE(runtime::write_safetensors_file(dir_.file("in.safetensors"), {{"0", ids}}).ok());
  }
  TempDir dir_;
};

TEST(Spec, ParsesEveryForm) {
  auto p = parse_spec("transformer.h.3.output.0@2");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->module, "transformer.h.3");
  EXPECT_EQ(p->io, graph::Io::kOutput);
  EXPECT_EQ(p->index, 0);
  EXPECT_EQ(p->call, 2u);
  p = parse_spec("transformer.ln_f.output");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->module, "transformer.ln_f");
  EXPECT_EQ(p->index, -1);
  EXPECT_EQ(p->call, 0u);
  p = parse_spec("lm_head.input.0");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->io, graph::Io::kInput);
  EXPECT_EQ(p->index, 0);
  p = parse_spec("output.1");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->module, "");
  EXPECT_EQ(p->index, 1);
  for (const char* bad : {"transformer.h.3", "x..output", "x.output@", "x.output@a", ".output", "x.outputs.1", ""}) {
    EXPECT_FALSE(parse_spec(bad).ok()) << bad;
  }
  p = parse_spec("lm_head.output@all");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->call, 0u);
  EXPECT_EQ(p->call_end, graph::kEveryCall);
  EXPECT_EQ(save_name("lm_head.output@all", *p), "lm_head.output");
  p = parse_spec("model.layers.3.output.0@2:5");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->call, 2u);
  EXPECT_EQ(p->call_end, 5u);
  p = parse_spec("model.norm.output@4:");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->call, 4u);
  EXPECT_EQ(p->call_end, graph::kEveryCall);
  EXPECT_EQ(save_name("model.norm.output@4", *parse_spec("model.norm.output@4")), "model.norm.output@4");
  for (const char* bad : {"x.output@5:5", "x.output@5:2", "x.output@:3", "x.output@al", "x.output@1:x"}) {
    EXPECT_FALSE(parse_spec(bad).ok()) << bad;
  }
}

TEST_F(LoomCliTest, TraceWritesOneTensorPerSpecNamedAsGiven) {
  Ran r = run_loom("trace " + dir_.file("ckpt") + " --inputs " + dir_.file("in.safetensors") +
                   " --save transformer.h.0.output.0 --save lm_head.input.0 --save output --save transformer.wte.output@0" +
                   " -o " + dir_.file("out.safetensors"));
  ASSERT_EQ(r.code, 0) << r.output;
  auto out = loom::testing::read_or_die(dir_.file("out.safetensors"));
  ASSERT_EQ(out.tensors.size(), 4u);
  EXPECT_EQ(out.find("transformer.h.0.output.0").sizes(), (std::vector<int64_t>{2, 6, 64}));
  EXPECT_EQ(out.find("output").sizes(), (std::vector<int64_t>{2, 6, 1000}));
  EXPECT_TRUE(out.find("transformer.wte.output@0").defined());
  // lm_head's input is ln_f's output; logits are lm_head(ln_f): check one via the tied weights.
  auto ckpt = loom::testing::read_or_die(dir_.file("ckpt/model.safetensors"));
  at::Tensor logits = at::matmul(out.find("lm_head.input.0"), ckpt.find("wte.weight").t());
  EXPECT_TRUE(at::allclose(logits, out.find("output"), 1e-4, 1e-5));
}

TEST_F(LoomCliTest, BadInputsGiveAMessageAndNonZeroExit) {
  std::string base = "trace " + dir_.file("ckpt") + " --inputs " + dir_.file("in.safetensors") + " -o " +
                     dir_.file("o.safetensors");
  Ran bad_spec = run_loom(base + " --save transformer.h.0.outptu");
  EXPECT_EQ(bad_spec.code, 2);
  EXPECT_NE(bad_spec.output.find("bad SPEC \"transformer.h.0.outptu\""), std::string::npos) << bad_spec.output;

  Ran bad_path = run_loom(base + " --save transformer.h.7.output.0");
  EXPECT_EQ(bad_path.code, 4);
  EXPECT_NE(bad_path.output.find("no module \"transformer.h.7\""), std::string::npos) << bad_path.output;

  Ran bad_model = run_loom("trace " + dir_.file("nothing") + " --inputs " + dir_.file("in.safetensors") +
                           " --save output -o " + dir_.file("o.safetensors"));
  EXPECT_EQ(bad_model.code, 3);
  EXPECT_NE(bad_model.output.find("no such file"), std::string::npos) << bad_model.output;

  {
    std::FILE* f = std::fopen(dir_.file("trunc.safetensors").c_str(), "wb");
    std::fwrite("\x40\x00\x00\x00\x00\x00\x00\x00{", 1, 9, f);
    std::fclose(f);
  }
  Ran bad_file = run_loom("trace " + dir_.file("ckpt") + " --inputs " + dir_.file("trunc.safetensors") +
                          " --save output -o " + dir_.file("o.safetensors"));
  EXPECT_EQ(bad_file.code, 3);
  EXPECT_NE(bad_file.output.find("trunc.safetensors"), std::string::npos) << bad_file.output;

  Ran no_save = run_loom("trace " + dir_.file("ckpt") + " --inputs " + dir_.file("in.safetensors") + " -o x");
  EXPECT_EQ(no_save.code, 2);
  EXPECT_NE(no_save.output.find("--save"), std::string::npos) << no_save.output;
}

}  // namespace
}  // namespace loom::client
