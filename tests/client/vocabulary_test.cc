// The rest of the intervention vocabulary (gradients, skip, cache) on a
// real loom-server: each gives the same tensors remotely as locally,
// bitwise, and each does what it says on the local model.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "client/client.h"
#include "client/trace.h"
#include "runtime/gpt2_config.h"
#include "runtime/llama_config.h"
#include "runtime/model.h"
#include "runtime/tensor_data.h"
#include "tests/client/deployment.h"

namespace loom::client {
namespace {

using loom::testing::bitwise_equal;
using loom::testing::TempDir;
using namespace std::chrono_literals;

class VocabularyTest : public ::testing::Test {
 protected:
  void SetUp() override { server_->next(); }
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    ASSERT_TRUE(runtime::write_random_gpt2_checkpoint(dir_->file("gpt2"), runtime::Gpt2Config::tiny(), 31).ok());
    runtime::LlamaConfig c = runtime::LlamaConfig::tiny();
    c.eos_token_ids = {};
    ASSERT_TRUE(runtime::write_random_llama_checkpoint(dir_->file("llama"), c, 32).ok());
    server_ = new loom::testing::Deployment({{"gpt2-tiny", dir_->file("gpt2")}, {"llama-tiny", dir_->file("llama")}},
                                            dir_->path());
    key_ = new std::string(server_->create_key("tester"));
    gpt2_ = runtime::load_model(dir_->file("gpt2")).value().release();
    llama_ = runtime::load_model(dir_->file("llama")).value().release();
  }
  static void TearDownTestSuite() {
    delete gpt2_;
    delete llama_;
    delete key_;
    delete server_;
    delete dir_;
  }
  ClientOptions options() const {
    ClientOptions o;
    o.host = server_->url();
    o.api_key = *key_;
    o.quiet = true;
    o.timeout = 30s;
    return o;
  }
  static int64_t c_vocab() { return runtime::LlamaConfig::tiny().vocab_size; }
  static at::Tensor ids(int64_t batch, int64_t seq, int64_t offset = 0) {
    return (at::arange(batch * seq, at::kLong) * 13 + offset).remainder(1000).view({batch, seq});
  }
  // Runs `tr` here and on the server; the results must be bitwise equal.
  static runtime::TraceResult local_equals_remote(Trace& tr, runtime::Model& local, RunOptions remote = {}) {
    RunOptions here = remote;
    here.remote = false;
    remote.remote = true;
    tr.set_local_model(local);
    runtime::TraceResult want = tr.run(here);
    runtime::TraceResult got = tr.run(remote);
    EXPECT_EQ(got.saved.size(), want.saved.size());
    for (size_t i = 0; i < got.saved.size() && i < want.saved.size(); ++i) {
      EXPECT_EQ(got.saved[i].name, want.saved[i].name);
      EXPECT_TRUE(bitwise_equal(got.saved[i].tensor, want.saved[i].tensor)) << got.saved[i].name;
    }
    return want;
  }

  static TempDir* dir_;
  static loom::testing::Deployment* server_;
  static std::string* key_;
  static runtime::Model* gpt2_;
  static runtime::Model* llama_;
};
TempDir* VocabularyTest::dir_ = nullptr;
loom::testing::Deployment* VocabularyTest::server_ = nullptr;
std::string* VocabularyTest::key_ = nullptr;
runtime::Model* VocabularyTest::gpt2_ = nullptr;
runtime::Model* VocabularyTest::llama_ = nullptr;

TEST_F(VocabularyTest, GradientsWithInvokesAndASetGradRemoteEqualLocal) {
  Client client(options());
  Trace tr = client.model("gpt2-tiny").trace();
  TraceInvoke a = tr.invoke({ids(1, 7)});
  TraceInvoke b = tr.invoke({ids(2, 7, 5)});
  HookPoint h1 = b.module("transformer.h.1").output(0);
  h1.set_grad(h1.grad() * 0.25);
  a.module("transformer.h.0").output(0).grad().save("grad_a0");
  b.module("transformer.h.0").output(0).grad().save("grad_b0");
  h1.grad().save("grad_b1");
  Value loss = next_token_loss(tr.output(), tr.input(0));
  loss.save("loss");
  tr.backward(loss);
  runtime::TraceResult r = local_equals_remote(tr, *gpt2_);
  EXPECT_EQ(r.at("grad_a0").sizes(), (std::vector<int64_t>{1, 7, 64}));
  EXPECT_EQ(r.at("grad_b0").sizes(), (std::vector<int64_t>{2, 7, 64}));
  EXPECT_GT(r.at("grad_b0").abs().max().item<double>(), 0.0);
}

TEST_F(VocabularyTest, SkippedBlockPassesItsValueOnAndRemoteEqualsLocal) {
  Client client(options());
  Trace tr = client.model("gpt2-tiny").trace({ids(2, 6)});
  HookPoint h0 = tr.module("transformer.h.0").output(0);
  h0.save("h0");
  // Block 1 does not run: its output is block 0's, so ln_f sees block 0's output.
  tr.module("transformer.h.1").skip(h0);
  tr.module("transformer.ln_f").input(0).save("ln_f_in");
  tr.output().save("logits");
  runtime::TraceResult r = local_equals_remote(tr, *gpt2_);
  EXPECT_TRUE(r.at("ln_f_in").equal(r.at("h0")));

  // Not the same as running block 1.
  Trace plain = client.model("gpt2-tiny").trace({ids(2, 6)});
  plain.output().save("logits");
  plain.set_local_model(*gpt2_);
  EXPECT_FALSE(plain.run().at("logits").equal(r.at("logits")));
}

TEST_F(VocabularyTest, CacheSavesEveryModuleAndRemoteEqualsLocal) {
  Client client(options());
  RemoteModel model = client.model("gpt2-tiny");
  Trace tr = model.trace({ids(1, 5)});
  tr.cache(model.module_paths(), /*inputs=*/true);
  runtime::TraceResult r = local_equals_remote(tr, *gpt2_);
  // Every module that runs, its output and input; containers (transformer.h) never run.
  EXPECT_EQ(r.saved.size(), 2 * (model.module_paths().size() - 1));
  EXPECT_THROW(r.at("transformer.h.output"), std::out_of_range);
  // The same values as explicit saves.
  Trace explicit_saves = model.trace({ids(1, 5)});
  explicit_saves.module("transformer.h.1.mlp.c_fc").output().save("fc");
  explicit_saves.output().save("logits");
  explicit_saves.set_local_model(*gpt2_);
  runtime::TraceResult e = explicit_saves.run();
  EXPECT_TRUE(r.at("transformer.h.1.mlp.c_fc.output").equal(e.at("fc")));
  EXPECT_TRUE(r.at("output").equal(e.at("logits")));
  EXPECT_TRUE(r.at("input").equal(ids(1, 5)));
}

TEST_F(VocabularyTest, CacheInAGenerationSavesOneValuePerStep) {
  Client client(options());
  Trace tr = client.model("llama-tiny").trace({ids(1, 4)});
  tr.cache({"model.norm", "model.layers.1"}, false, /*every_step=*/true);
  RunOptions ro;
  ro.generation = graph::GenerateOptions{};
  ro.generation->max_new_tokens = 3;
  runtime::TraceResult r = local_equals_remote(tr, *llama_, ro);
  for (int k = 0; k < 3; ++k) {
    const at::Tensor& norm = r.at("model.norm.output@" + std::to_string(k));
    EXPECT_EQ(norm.size(1), k == 0 ? 4 : 1);  // the prompt pass, then one token per step
    EXPECT_NO_THROW(r.at("model.layers.1.output.0@" + std::to_string(k)));
  }
  EXPECT_THROW(r.at("model.norm.output@3"), std::out_of_range);
}

TEST_F(VocabularyTest, GradientInAGenerationStepRemoteEqualsLocal) {
  Client client(options());
  Trace tr = client.model("llama-tiny").trace({ids(1, 6)});
  // The prompt pass (step 0): d(sum of its last logits)/d(layer 0's output).
  Value logits = tr.module("lm_head").step(0).output();
  tr.module("model.layers.0").step(0).output(0).grad().save("g");
  tr.backward(logits.index({Slice{}, -1}).sum({0, 1}));
  RunOptions ro;
  ro.generation = graph::GenerateOptions{};
  ro.generation->max_new_tokens = 2;
  runtime::TraceResult r = local_equals_remote(tr, *llama_, ro);
  EXPECT_EQ(r.at("g").sizes(), (std::vector<int64_t>{1, 6, 64}));
  EXPECT_GT(r.at("g").abs().max().item<double>(), 0.0);
}

// Scan answers at once with every node's shape: the same here and on the
// server, and the same shapes a real run gives.
TEST_F(VocabularyTest, ScanRemoteEqualsLocalAndARealRunsShapes) {
  Client client(options());
  Trace tr = client.model("gpt2-tiny").trace();
  TraceInvoke a = tr.invoke({ids(2, 7)});
  tr.invoke({ids(1, 7, 3)});
  HookPoint h0 = a.module("transformer.h.0").output(0);
  h0.save("h0");
  tr.module("transformer.h.0.attn.attn_dropout").output().save("probs");
  tr.module("transformer.h.1").output(0).grad().save("g1");
  tr.backward(next_token_loss(tr.output(), tr.input(0)));
  tr.set_local_model(*gpt2_);
  const size_t jobs_before = client.jobs().size();
  runtime::TraceResult ran = tr.run();
  graph::ScanReport here = tr.scan();
  graph::ScanReport there = tr.scan({.remote = true});
  EXPECT_EQ(client.jobs().size(), jobs_before);  // a scan queues nothing
  ASSERT_EQ(here.saves.size(), ran.saved.size());
  for (size_t i = 0; i < ran.saved.size(); ++i) {
    EXPECT_EQ(here.saves[i].name, ran.saved[i].name);
    EXPECT_EQ(here.saves[i].shape, ran.saved[i].tensor.sizes().vec()) << ran.saved[i].name;
    EXPECT_EQ(here.saves[i].dtype, "F32");
  }
  ASSERT_EQ(there.values.size(), here.values.size());
  for (size_t i = 0; i < here.values.size(); ++i) {
    EXPECT_EQ(there.values[i].node, here.values[i].node);
    EXPECT_EQ(there.values[i].kind, here.values[i].kind);
    EXPECT_EQ(there.values[i].shape, here.values[i].shape);
    EXPECT_EQ(there.values[i].dtype, here.values[i].dtype);
  }
  ASSERT_NE(here.value(h0.node()), nullptr);
  EXPECT_EQ(here.value(h0.node())->shape, (std::vector<int64_t>{2, 7, 64}));
  EXPECT_EQ(there.peak_bytes, here.peak_bytes);
  EXPECT_EQ(there.peak_bytes, there.saved_bytes + there.intermediate_bytes + there.autograd_bytes);
  EXPECT_GT(there.autograd_bytes, 0u);
  EXPECT_EQ(there.tokens, 21);
  EXPECT_EQ(there.flops, here.flops);
  EXPECT_GT(there.device_ms, 0.0);
}

TEST_F(VocabularyTest, ScanFindsAWrongShapeSetBeforeAnythingIsQueued) {
  Client client(options());
  Trace tr = client.model("llama-tiny").trace({ids(1, 6)});
  HookPoint h = tr.module("model.layers.0").output(0);
  tr.module("model.layers.1").output(0).set(h.sum({1}));
  const size_t jobs_before = client.jobs().size();
  try {
    tr.scan({.remote = true});
    FAIL() << "the scan accepted a set of the wrong shape";
  } catch (const ValidationError& e) {
    EXPECT_NE(std::string(e.what()).find("the new value has shape [1, 64], but the output it replaces has shape [1, 6, 64]"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(client.jobs().size(), jobs_before);
  // A generation is not scanned, and says why.
  RunOptions gen;
  gen.remote = true;
  gen.generation = graph::GenerateOptions{};
  EXPECT_THROW(tr.scan(gen), ValidationError);
}

// A session: the second trace patches an activation of the first, from a
// prompt of another length, in one job (one queue wait, one result).
TEST_F(VocabularyTest, SessionPatchesAcrossPromptLengthsInOneJobRemoteEqualsLocal) {
  Client client(options());
  at::Tensor long_ids = ids(2, 9), short_ids = ids(1, 4, 11);
  Trace tr = client.model("llama-tiny").trace();
  TraceInvoke a = tr.invoke({long_ids});
  Value kept = a.module("model.layers.0").output(0).index({Slice{0, 1}, -1});  // [1, 64]
  kept.save("kept");
  EXPECT_EQ(tr.next_trace(), 1u);
  TraceInvoke b = tr.invoke({short_ids});
  HookPoint h = b.module("model.layers.0").output(0);
  h.set(cat({h.slice(1, 0, -1), kept.unsqueeze(1)}, 1));
  b.output().save("logits");
  const size_t jobs_before = client.jobs().size();
  runtime::TraceResult r = local_equals_remote(tr, *llama_);
  EXPECT_EQ(client.jobs().size(), jobs_before + 1);
  EXPECT_EQ(r.at("logits").sizes(), (std::vector<int64_t>{1, 4, c_vocab()}));

  // Equal to the second pass run alone with the kept vector as a constant.
  Trace alone = client.model("llama-tiny").trace({short_ids});
  HookPoint h2 = alone.module("model.layers.0").output(0);
  Value constant = alone.constant(runtime::to_tensor_data(r.at("kept")).value());
  h2.set(cat({h2.slice(1, 0, -1), constant.unsqueeze(1)}, 1));
  alone.output().save("logits");
  alone.set_local_model(*llama_);
  EXPECT_TRUE(alone.run().at("logits").equal(r.at("logits")));
  // A session does not generate.
  RunOptions gen;
  gen.generation = graph::GenerateOptions{};
  EXPECT_THROW(tr.run(gen), LoomError);
}

// An edit: block 0's output doubled before every later trace.
graph::Graph doubling_edit() {
  Builder edit;
  HookPoint h = edit.module("transformer.h.0").output(0);
  h.set(h * 2.0);
  return edit.graph();
}

TEST_F(VocabularyTest, LocalEditsRunBeforeEveryTraceUntilCleared) {
  auto logits_of = [&](bool explicit_set) {
    Trace tr(*gpt2_, {ids(1, 6)});
    if (explicit_set) {
      HookPoint h = tr.module("transformer.h.0").output(0);
      h.set(h * 2.0);
    }
    tr.output().save("logits");
    return tr.run().at("logits");
  };
  const at::Tensor plain = logits_of(false), edited_by_hand = logits_of(true);
  ASSERT_TRUE(gpt2_->edit(doubling_edit()).ok());
  EXPECT_TRUE(logits_of(false).equal(edited_by_hand));
  EXPECT_TRUE(logits_of(false).equal(edited_by_hand)) << "the edit persists across traces";
  // Edits accumulate: a second doubling makes it x4.
  ASSERT_TRUE(gpt2_->edit(doubling_edit()).ok());
  Trace x4(*gpt2_, {ids(1, 6)});
  x4.module("transformer.h.1").input(0).save("h1_in");
  at::Tensor got = x4.run().at("h1_in");
  gpt2_->clear_edits();
  Trace ref(*gpt2_, {ids(1, 6)});
  ref.module("transformer.h.0").output(0).save("h0");
  EXPECT_TRUE(at::allclose(got, ref.run().at("h0") * 4.0));
  EXPECT_TRUE(logits_of(false).equal(plain)) << "cleared";
  // An edit only reads, computes, sets and skips.
  Builder bad;
  bad.module("transformer.h.0").output(0).save("x");
  Status refused = gpt2_->edit(bad.graph());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find("an edit only reads, computes, sets and skips"), std::string::npos)
      << refused.message();
  EXPECT_EQ(gpt2_->edits(), nullptr);
}

TEST_F(VocabularyTest, RemoteVariantsAreVisibleToTheirKeyUnlessSharedAndEqualLocalEdits) {
  Client client(options());
  RemoteModel variant = client.create_variant("gpt2-tiny", "doubled", doubling_edit());
  EXPECT_EQ(variant.key(), "gpt2-tiny@doubled");
  Trace tr = variant.trace({ids(2, 5)});
  tr.module("transformer.h.1").output(0).save("h1");
  tr.output().save("logits");
  runtime::TraceResult remote = tr.run({.remote = true});
  ASSERT_TRUE(gpt2_->edit(doubling_edit()).ok());
  tr.set_local_model(*gpt2_);
  runtime::TraceResult local = tr.run();
  gpt2_->clear_edits();
  for (const char* name : {"h1", "logits"}) EXPECT_TRUE(bitwise_equal(remote.at(name), local.at(name))) << name;
  // Scans see the variant too.
  EXPECT_EQ(tr.scan({.remote = true}).save("logits")->shape, (std::vector<int64_t>{2, 5, 1000}));

  // Another key: the variant does not exist for it, and it cannot take the name.
  ClientOptions other_options = options();
  other_options.api_key = server_->create_key("other");
  Client other(other_options);
  Trace theirs = other.model("gpt2-tiny@doubled").trace({ids(2, 5)});
  theirs.output().save("logits");
  EXPECT_THROW(theirs.run({.remote = true}), NotFoundError);
  EXPECT_THROW(other.create_variant("gpt2-tiny", "doubled", doubling_edit()), LoomError);
  // Shared, it runs for them as for its owner.
  client.create_variant("gpt2-tiny", "doubled", doubling_edit(), /*shared=*/true);
  EXPECT_TRUE(bitwise_equal(theirs.run({.remote = true}).at("logits"), remote.at("logits")));
  // An edit that saves is refused before it is sent.
  Builder bad;
  bad.output().save("x");
  EXPECT_THROW(client.create_variant("gpt2-tiny", "bad", bad.graph()), ValidationError);
}

}  // namespace
}  // namespace loom::client
