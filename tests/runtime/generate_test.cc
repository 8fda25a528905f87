// Generation with a KV cache and per-step interventions, for GPT-2 and
// Llama, against the Python references' full-recompute greedy decoding and
// against loom's own uncached forward.
#include "runtime/generate.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <atomic>

#include "graph/builder.h"
#include "runtime/gpt2.h"
#include "runtime/llama.h"
#include "runtime/tensor_data.h"
#include "runtime/trace.h"
#include "tests/runtime/test_util.h"

namespace loom::runtime {
namespace {

using loom::testing::TempDir;

at::Tensor random_ids(int64_t batch, int64_t seq, int64_t vocab, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randint(0, vocab, {batch, seq}, gen, at::kLong);
}

struct Fixture {
  TempDir dir;
  std::unique_ptr<Model> gpt2, llama;
  Fixture() {
    Gpt2Config g = Gpt2Config::tiny();
    if (!write_random_gpt2_checkpoint(dir.file("gpt2"), g, 31).ok()) throw std::runtime_error("gpt2 checkpoint");
    LlamaConfig l = LlamaConfig::tiny();
    l.eos_token_ids = {};  // random weights: no eos, so every row runs to max_new_tokens
    if (!write_random_llama_checkpoint(dir.file("llama"), l, 32).ok()) throw std::runtime_error("llama checkpoint");
    gpt2 = std::move(load_model(dir.file("gpt2")).value());
    llama = std::move(load_model(dir.file("llama")).value());
  }
  std::string ckpt(const Model& m) const { return dir.file(m.kind() == "gpt2" ? "gpt2" : "llama"); }
};

Fixture& fixture() {
  static Fixture* f = new Fixture();
  return *f;
}

CausalLm& lm(std::unique_ptr<Model>& m) { return static_cast<CausalLm&>(*m); }

Result<RunOutput> run(CausalLm& model, const Builder& b, std::vector<at::Tensor> prompts, GenerateOptions gen,
                      const ExecOptions& exec = {}, const TokenHandler& on_token = {}) {
  std::vector<std::vector<c10::IValue>> inputs;
  for (auto& p : prompts) inputs.push_back({p});
  return generate(model, b.graph(), inputs, exec, gen, on_token);
}

at::Tensor saved(const RunOutput& out, const std::string& name) {
  for (const auto& nt : out.saved) {
    if (nt.name == name) return nt.tensor;
  }
  throw std::out_of_range("no saved tensor " + name);
}

at::Tensor reference_tokens(const std::string& script, const std::string& ckpt, const at::Tensor& prompt, int64_t n,
                            const std::string& extra = "") {
  TempDir d;
  if (!write_safetensors_file(d.file("in.safetensors"), {{"0", prompt}}).ok()) throw std::runtime_error("write");
  std::string args = script == "gpt2_reference.py"
                         ? "--generate " + std::to_string(n) + " " + ckpt + " " + d.file("in.safetensors") + " " +
                               d.file("out.safetensors")
                         : "generate " + ckpt + " " + d.file("in.safetensors") + " " + d.file("out.safetensors") + " " +
                               std::to_string(n) + extra;
  if (loom::testing::run_fixture_script(script, args) != 0) throw std::runtime_error("reference failed: " + args);
  return loom::testing::read_or_die(d.file("out.safetensors")).find("tokens");
}

TEST(GenerateTest, GreedyTokensEqualTheReferences) {
  Fixture& f = fixture();
  for (auto* m : {&f.gpt2, &f.llama}) {
    at::Tensor prompt = random_ids(2, 6, 1000, 7);
    Builder b;
    GenerateOptions g;
    g.max_new_tokens = 12;
    auto out = run(lm(*m), b, {prompt}, g);
    ASSERT_TRUE(out.ok()) << out.status().message();
    at::Tensor got = saved(*out, "tokens");
    ASSERT_EQ(got.sizes(), (std::vector<int64_t>{2, 18}));
    std::string script = (*m)->kind() == "gpt2" ? "gpt2_reference.py" : "llama_reference.py";
    at::Tensor want = reference_tokens(script, f.ckpt(**m), prompt, 12);
    EXPECT_TRUE(at::equal(got, want)) << (*m)->kind() << "\n" << got << "\n" << want;
  }
}

// Every cached step's hook values equal a full recompute's last position.
TEST(GenerateTest, CachedStepsEqualAFullRecompute) {
  Fixture& f = fixture();
  for (auto* m : {&f.gpt2, &f.llama}) {
    const std::string block = (*m)->kind() == "gpt2" ? "transformer.h.1" : "model.layers.1";
    at::Tensor prompt = random_ids(1, 5, 1000, 8);
    Builder b;
    b.module("lm_head").all_steps().output().save("logits");
    b.module(block).all_steps().output(0).save("h1");
    GenerateOptions g;
    g.max_new_tokens = 6;
    auto out = run(lm(*m), b, {prompt}, g);
    ASSERT_TRUE(out.ok()) << out.status().message();
    at::Tensor tokens = saved(*out, "tokens");
    EXPECT_EQ(saved(*out, "logits@0").sizes(), (std::vector<int64_t>{1, 5, 1000}));
    for (int64_t k = 1; k < 6; ++k) {
      at::Tensor step_logits = saved(*out, "logits@" + std::to_string(k));
      ASSERT_EQ(step_logits.size(1), 1) << "step " << k << " sees one new position";
      LocalTrace full(**m, {tokens.slice(1, 0, 5 + k)});
      full.output().save("logits");
      full.module(block).output(0).save("h1");
      auto r = full.run();
      ASSERT_TRUE(r.ok()) << r.status().message();
      at::Tensor want = r->at("logits").select(1, -1);
      EXPECT_TRUE(at::allclose(step_logits.select(1, 0), want, 1e-4, 1e-4))
          << (*m)->kind() << " step " << k << " max diff " << (step_logits.select(1, 0) - want).abs().max().item<float>();
      at::Tensor h = saved(*out, "h1@" + std::to_string(k)).select(1, 0);
      EXPECT_TRUE(at::allclose(h, r->at("h1").select(1, -1), 1e-4, 1e-4)) << (*m)->kind() << " step " << k;
    }
  }
}

TEST(GenerateTest, SteeringAtEveryStepChangesTokensAsTheReferenceDoes) {
  Fixture& f = fixture();
  TempDir d;
  at::Tensor prompt = random_ids(1, 6, 1000, 9);
  at::Tensor vec = at::randn({64}, at::make_generator<at::CPUGeneratorImpl>(3));
  ASSERT_TRUE(write_safetensors_file(d.file("vec.safetensors"), {{"0", vec}}).ok());
  Builder b;
  auto h = b.module("model.layers.0").all_steps().output(0);
  h.set(h + b.constant(to_tensor_data(vec * 4.0).value()));
  GenerateOptions g;
  g.max_new_tokens = 10;
  auto steered = run(lm(f.llama), b, {prompt}, g);
  ASSERT_TRUE(steered.ok()) << steered.status().message();
  Builder plain;
  auto bare = run(lm(f.llama), plain, {prompt}, g);
  ASSERT_TRUE(bare.ok());
  at::Tensor got = saved(*steered, "tokens");
  EXPECT_FALSE(at::equal(got, saved(*bare, "tokens"))) << "the steering vector changed nothing";
  at::Tensor want = reference_tokens("llama_reference.py", f.ckpt(*f.llama), prompt, 10,
                                     " --steer 0=" + d.file("vec.safetensors") + ":4.0");
  EXPECT_TRUE(at::equal(got, want)) << got << "\n" << want;
}

TEST(GenerateTest, SamplingIsReproducibleForASeed) {
  Fixture& f = fixture();
  at::Tensor prompt = random_ids(2, 4, 1000, 10);
  auto sample = [&](uint64_t seed, int64_t top_k, double top_p) {
    Builder b;
    GenerateOptions g;
    g.max_new_tokens = 16;
    g.temperature = 1.5;
    g.top_k = top_k;
    g.top_p = top_p;
    g.seed = seed;
    auto out = run(lm(f.gpt2), b, {prompt}, g);
    if (!out.ok()) throw std::runtime_error(out.status().message());
    return saved(*out, "tokens");
  };
  EXPECT_TRUE(at::equal(sample(1, 0, 1.0), sample(1, 0, 1.0)));
  EXPECT_FALSE(at::equal(sample(1, 0, 1.0), sample(2, 0, 1.0)));
  EXPECT_TRUE(at::equal(sample(5, 50, 0.9), sample(5, 50, 0.9)));
  // top_k = 1 is greedy whatever the seed.
  Builder b;
  GenerateOptions greedy;
  greedy.max_new_tokens = 16;
  auto g = run(lm(f.gpt2), b, {prompt}, greedy);
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE(at::equal(sample(9, 1, 1.0), saved(*g, "tokens")));
}

TEST(GenerateTest, PromptsOfDifferentLengthsGetTheTokensTheyGetAlone) {
  Fixture& f = fixture();
  for (auto* m : {&f.gpt2, &f.llama}) {
    at::Tensor a = random_ids(1, 4, 1000, 11), c = random_ids(2, 9, 1000, 12);
    GenerateOptions g;
    g.max_new_tokens = 8;
    Builder batched(2);
    auto both = run(lm(*m), batched, {a, c}, g);
    ASSERT_TRUE(both.ok()) << both.status().message();
    at::Tensor tokens = saved(*both, "tokens");
    ASSERT_EQ(tokens.sizes(), (std::vector<int64_t>{3, 17}));
    Builder one, two;
    auto alone_a = run(lm(*m), one, {a}, g);
    auto alone_c = run(lm(*m), two, {c}, g);
    ASSERT_TRUE(alone_a.ok() && alone_c.ok());
    EXPECT_TRUE(at::equal(tokens.slice(0, 0, 1).slice(1, 9 - 4), saved(*alone_a, "tokens"))) << (*m)->kind();
    EXPECT_TRUE(at::equal(tokens.slice(0, 1, 3), saved(*alone_c, "tokens"))) << (*m)->kind();
  }
}

TEST(GenerateTest, StepPointsRangesStopAndStopTokens) {
  Fixture& f = fixture();
  at::Tensor prompt = random_ids(1, 5, 1000, 13);
  GenerateOptions g;
  g.max_new_tokens = 6;
  Builder bare;
  auto base = run(lm(f.gpt2), bare, {prompt}, g);
  ASSERT_TRUE(base.ok());
  at::Tensor base_tokens = saved(*base, "tokens");

  // A set at step 3 alone: tokens before it are untouched, the step's differ.
  Builder at3;
  auto h = at3.module("transformer.h.1").step(3).output(0);
  h.set(h * 0.0);
  at3.module("lm_head").steps(2, 4).output().save("l");
  auto out = run(lm(f.gpt2), at3, {prompt}, g);
  ASSERT_TRUE(out.ok()) << out.status().message();
  at::Tensor t = saved(*out, "tokens");
  EXPECT_TRUE(at::equal(t.slice(1, 0, 5 + 3), base_tokens.slice(1, 0, 5 + 3)));
  EXPECT_FALSE(at::equal(t, base_tokens));
  std::vector<std::string> names;
  for (const auto& nt : out->saved) names.push_back(nt.name);
  EXPECT_EQ(names, (std::vector<std::string>{"l@2", "l@3", "tokens"}));

  // stop() ends the generation at the step it runs.
  Builder stopper;
  stopper.stop(stopper.module("lm_head").step(2).output());
  auto stopped = run(lm(f.gpt2), stopper, {prompt}, g);
  ASSERT_TRUE(stopped.ok()) << stopped.status().message();
  EXPECT_TRUE(stopped->stopped_early);
  EXPECT_EQ(saved(*stopped, "tokens").size(1), 5 + 2);

  // A stop token ends its row; the row pads with it from then on.
  GenerateOptions until = g;
  const int64_t stop = base_tokens[0][6].item<int64_t>();
  until.stop_token_ids = std::vector<int64_t>{stop};
  int64_t first = 5;  // the first generated position holding `stop`
  while (base_tokens[0][first].item<int64_t>() != stop) ++first;
  Builder b2;
  auto ended = run(lm(f.gpt2), b2, {prompt}, until);
  ASSERT_TRUE(ended.ok());
  EXPECT_EQ(saved(*ended, "tokens").size(1), first + 1);
  EXPECT_TRUE(at::equal(saved(*ended, "tokens"), base_tokens.slice(1, 0, first + 1)));
}

TEST(GenerateTest, CancelStopsAtTheNextStepAndBadOptionsAreRefused) {
  Fixture& f = fixture();
  at::Tensor prompt = random_ids(1, 5, 1000, 14);
  std::atomic<bool> cancel{false};
  ExecOptions exec;
  exec.cancel = &cancel;
  GenerateOptions g;
  g.max_new_tokens = 20;
  std::vector<int64_t> steps;
  Builder b;
  auto out = run(lm(f.llama), b, {prompt}, g, exec, [&](const TokenStep& s) {
    steps.push_back(s.step);
    if (s.step == 2) cancel = true;
  });
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kCancelled);
  EXPECT_EQ(steps, (std::vector<int64_t>{0, 1, 2}));

  for (auto [field, expected] : std::vector<std::pair<int, std::string>>{
           {0, "max_new_tokens"}, {1, "temperature"}, {2, "top_p"}, {3, "stop token id"}, {4, "positions"}}) {
    GenerateOptions bad;
    if (field == 0) bad.max_new_tokens = 0;
    if (field == 1) bad.temperature = -1;
    if (field == 2) bad.top_p = 0;
    if (field == 3) bad.stop_token_ids = std::vector<int64_t>{5000};
    if (field == 4) bad.max_new_tokens = 1000;
    Builder e;
    auto r = run(lm(f.gpt2), e, {prompt}, bad);
    ASSERT_FALSE(r.ok()) << expected;
    EXPECT_NE(r.status().message().find(expected), std::string::npos) << r.status().message();
  }
  Builder taken;
  taken.output().save("tokens");
  auto r = run(lm(f.gpt2), taken, {prompt}, g);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("taken"), std::string::npos);
}

TEST(GenerateTest, StepsThatNeverCameAreLeftOutAndNamesCannotCollide) {
  Fixture& f = fixture();
  at::Tensor prompt = random_ids(1, 5, 1000, 15);
  GenerateOptions g;
  g.max_new_tokens = 6;
  Builder bare;
  auto base = run(lm(f.gpt2), bare, {prompt}, g);
  ASSERT_TRUE(base.ok());
  const int64_t first = saved(*base, "tokens")[0][5].item<int64_t>();

  // Every row stops at step 0: a save at step 4 is left out, the run succeeds.
  GenerateOptions until = g;
  until.stop_token_ids = std::vector<int64_t>{first};
  Builder late;
  late.module("lm_head").step(4).output().save("late");
  late.module("lm_head").all_steps().output().save("each");
  auto out = run(lm(f.gpt2), late, {prompt}, until);
  ASSERT_TRUE(out.ok()) << out.status().message();
  std::vector<std::string> names;
  for (const auto& nt : out->saved) names.push_back(nt.name);
  EXPECT_EQ(names, (std::vector<std::string>{"each@0", "tokens"}));

  // A step at or past max_new_tokens never runs: refused before the run.
  Builder past;
  past.module("lm_head").step(6).output().save("x");
  auto refused = run(lm(f.gpt2), past, {prompt}, g);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("step 6 never runs"), std::string::npos) << refused.status().message();

  // "h@2" would collide with the per-step tensors of "h".
  Builder clash;
  clash.module("transformer.h.0").all_steps().output(0).save("h");
  clash.module("transformer.h.1").step(2).output(0).save("h@2");
  auto collided = run(lm(f.gpt2), clash, {prompt}, g);
  ASSERT_FALSE(collided.ok());
  EXPECT_NE(collided.status().message().find("is taken by"), std::string::npos) << collided.status().message();

  // An intervention that breaks the logits is an error naming them, not a crash.
  Builder broken;
  auto logits = broken.module("lm_head").all_steps().output();
  logits.set(broken.op("aten::gt.Scalar", {logits, 0.0}));
  auto bad = run(lm(f.gpt2), broken, {prompt}, g);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("the logits must be floating"), std::string::npos) << bad.status().message();
  // And one of the wrong shape names both shapes.
  Builder reshaped;
  auto l2 = reshaped.module("lm_head").all_steps().output();
  l2.set(l2.sum({-1}));
  auto bad2 = run(lm(f.gpt2), reshaped, {prompt}, g);
  ASSERT_FALSE(bad2.ok());
  EXPECT_NE(bad2.status().message().find("the output it replaces has shape [1, 5, 1000]"), std::string::npos)
      << bad2.status().message();
}

TEST(GenerateTest, AFloat32SteeringVectorKeepsABfloat16ModelInBfloat16) {
  TempDir d;
  LlamaConfig c = LlamaConfig::tiny();
  c.eos_token_ids = {};
  ASSERT_TRUE(write_random_llama_checkpoint(d.file("bf16"), c, 33, {"bfloat16", 1}).ok());
  auto model = load_model(d.file("bf16"));
  ASSERT_TRUE(model.ok()) << model.status().message();
  Builder b;
  auto h = b.module("model.layers.0").all_steps().output(0);
  h.set(h + b.constant(to_tensor_data(at::ones({64}) * 0.5).value()));
  b.module("model.layers.1").all_steps().input(0).save("in1");
  GenerateOptions g;
  g.max_new_tokens = 4;
  auto out = run(lm(*model), b, {random_ids(1, 5, 1000, 16)}, g);
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ(saved(*out, "in1@0").scalar_type(), at::kBFloat16);
  EXPECT_EQ(saved(*out, "tokens").size(1), 9);
}

}  // namespace
}  // namespace loom::runtime
