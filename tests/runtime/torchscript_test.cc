// TorchScript models made by real torch.jit.trace / torch.jit.script
// (tests/fixtures/make_torchscript.py), checked against the values eager
// PyTorch's forward hooks recorded on the same weights.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/script.h>

#include "client/spec.h"
#include "runtime/execute.h"
#include "runtime/torchscript_model.h"
#include "runtime/trace.h"
#include "tests/runtime/test_util.h"

namespace loom::runtime {
namespace {

using loom::testing::TempDir;

class TorchScriptTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    ASSERT_EQ(loom::testing::run_fixture_script("make_torchscript.py", dir_->path()), 0);
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string file(const std::string& name) { return dir_->file(name); }
  static std::vector<at::Tensor> inputs(const std::string& model) {
    auto f = loom::testing::read_or_die(file(model + "_inputs.safetensors"));
    return {f.find("0"), f.find("1")};
  }
  static std::unique_ptr<Model> load(const std::string& model) {
    auto m = load_model(file(model + ".pt"));
    EXPECT_TRUE(m.ok()) << m.status().message();
    return m.ok() ? std::move(m).value() : nullptr;
  }

  // Saves every hook point the eager run recorded and compares them all.
  static void expect_all_hook_points_match(const std::string& name) {
    auto model = load(name);
    ASSERT_NE(model, nullptr);
    auto expected = loom::testing::read_or_die(file(name + "_expected.safetensors"));
    ASSERT_GT(expected.tensors.size(), 10u);
    LocalTrace tr(*model, inputs(name));
    for (const auto& nt : expected.tensors) {
      auto p = client::parse_spec(nt.name);
      ASSERT_TRUE(p.ok()) << p.status().message();
      ModuleRef m = tr.module(p->module).call(p->call);
      (p->io == graph::Io::kOutput ? m.output(p->index) : m.input(p->index)).save(nt.name);
    }
    auto result = tr.run();
    ASSERT_TRUE(result.ok()) << result.status().message();
    ASSERT_EQ(result->saved.size(), expected.tensors.size());
    for (const auto& nt : expected.tensors) {
      const at::Tensor& got = result->at(nt.name);
      EXPECT_TRUE(at::allclose(got, nt.tensor, 1e-5, 1e-6)) << name << ": " << nt.name;
    }
  }
  static TempDir* dir_;
};
TempDir* TorchScriptTest::dir_ = nullptr;

TEST_F(TorchScriptTest, TracedModelWithRepeatedCallsTupleOutputsAndTwoInputs) {
  expect_all_hook_points_match("traced");
}

TEST_F(TorchScriptTest, ScriptedModelWithSharedClassesAndTupleRootOutput) {
  expect_all_hook_points_match("scripted");
}

TEST_F(TorchScriptTest, ModuleTreeIsNamedModules) {
  auto model = load("scripted");
  ASSERT_NE(model, nullptr);
  for (const char* p : {"", "layers", "layers.0", "layers.2", "layers.1.mlp", "layers.1.mlp.0", "layers.1.mlp.1"}) {
    EXPECT_GE(model->module_id(p), 0) << p;
  }
  auto traced = load("traced");
  for (const char* p : {"fc1", "act", "shared", "pair", "head"}) EXPECT_GE(traced->module_id(p), 0) << p;
}

TEST_F(TorchScriptTest, HookedForwardIsBitwiseIdenticalToPlainTorchScript) {
  for (std::string name : {"traced", "scripted"}) {
    torch::jit::Module plain = torch::jit::load(file(name + ".pt"));
    plain.eval();
    auto in = inputs(name);
    c10::IValue expected;
    {
      c10::InferenceMode guard;
      expected = plain.forward({in[0], in[1]});
    }
    auto model = load(name);
    graph::Graph empty;
    auto run = execute(*model, empty, {{in[0], in[1]}});
    ASSERT_TRUE(run.ok()) << run.status().message();
    at::Tensor got = run->output.isTuple() ? run->output.toTupleRef().elements()[0].toTensor() : run->output.toTensor();
    at::Tensor want = expected.isTuple() ? expected.toTupleRef().elements()[0].toTensor() : expected.toTensor();
    EXPECT_TRUE(at::equal(got, want)) << name;
    // The same model run bare (no sink) gives the same too.
    at::Tensor bare_out = model->forward({in[0], in[1]}, nullptr).isTuple()
                              ? model->forward({in[0], in[1]}, nullptr).toTupleRef().elements()[0].toTensor()
                              : model->forward({in[0], in[1]}, nullptr).toTensor();
    EXPECT_TRUE(at::equal(bare_out, want)) << name;
  }
}

TEST_F(TorchScriptTest, SetOnTracedSubmoduleMatchesEagerForwardHook) {
  auto model = load("traced");
  LocalTrace tr(*model, inputs("traced"));
  HookPoint fc1 = tr.module("fc1").output();
  fc1.set(Value(fc1) * 2.0);
  tr.output().save("output");
  auto result = tr.run();
  ASSERT_TRUE(result.ok()) << result.status().message();
  auto expected = loom::testing::read_or_die(file("traced_set_fc1_x2.safetensors"));
  EXPECT_TRUE(at::allclose(result->at("output"), expected.find("output"), 1e-5, 1e-6));
}

TEST_F(TorchScriptTest, SetOnSharedClassInstanceAffectsOnlyThatInstance) {
  auto model = load("scripted");
  LocalTrace tr(*model, inputs("scripted"));
  HookPoint h1 = tr.module("layers.1").output(0);
  h1.set(h1.zeros_like());
  tr.output(0).save("output.0");
  tr.module("layers.0").output(0).save("layers.0.output.0");
  auto result = tr.run();
  ASSERT_TRUE(result.ok()) << result.status().message();
  auto expected = loom::testing::read_or_die(file("scripted_set_layers1_zero.safetensors"));
  EXPECT_TRUE(at::allclose(result->at("output.0"), expected.find("output.0"), 1e-5, 1e-6));
  auto unmodified = loom::testing::read_or_die(file("scripted_expected.safetensors"));
  EXPECT_TRUE(at::allclose(result->at("layers.0.output.0"), unmodified.find("layers.0.output.0"), 1e-5, 1e-6));
}

TEST_F(TorchScriptTest, CallIndexSelectsTheRepeatedCall) {
  auto model = load("traced");
  LocalTrace tr(*model, inputs("traced"));
  HookPoint second = tr.module("shared").call(1).output();
  second.set(second.zeros_like());
  tr.module("shared").call(0).output().save("first");
  tr.module("pair").input(0).save("pair_in");
  auto result = tr.run();
  ASSERT_TRUE(result.ok()) << result.status().message();
  auto expected = loom::testing::read_or_die(file("traced_expected.safetensors"));
  EXPECT_TRUE(at::allclose(result->at("first"), expected.find("shared.output"), 1e-5, 1e-6));
  EXPECT_TRUE(at::equal(result->at("pair_in"), at::zeros_like(expected.find("pair.input.0"))));
}

TEST_F(TorchScriptTest, RejectsFilesThatAreNotTorchScript) {
  TempDir d;
  {
    std::ofstream(d.file("junk.pt")) << "this is not a zip archive";
  }
  auto m = load_model(d.file("junk.pt"));
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("not a loadable TorchScript archive"), std::string::npos) << m.status().message();
  auto missing = load_model(d.file("nope.pt"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace loom::runtime
