// Gradients through interventions against PyTorch autograd on the
// independent reference models (tests/fixtures/grad_reference.py runs
// gpt2_reference.py / llama_reference.py with autograd on the same weights).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "runtime/gpt2.h"
#include "runtime/llama.h"
#include "runtime/trace.h"
#include "tests/runtime/test_util.h"

namespace loom::runtime {
namespace {

using loom::testing::TempDir;

struct Fixture {
  TempDir dir;
  std::unique_ptr<Model> model;
  std::string kind, ckpt, prefix;
  int64_t layers = 0, vocab = 0;

  static Fixture gpt2() {
    Fixture f;
    f.kind = "gpt2";
    f.ckpt = f.dir.file("ckpt");
    f.prefix = "transformer.h.";
    EXPECT_TRUE(write_random_gpt2_checkpoint(f.ckpt, Gpt2Config::tiny(), 21).ok());
    f.layers = Gpt2Config::tiny().n_layer;
    f.vocab = Gpt2Config::tiny().vocab_size;
    f.load();
    return f;
  }
  static Fixture llama() {
    Fixture f;
    f.kind = "llama";
    f.ckpt = f.dir.file("ckpt");
    f.prefix = "model.layers.";
    LlamaConfig c = LlamaConfig::tiny();
    EXPECT_TRUE(write_random_llama_checkpoint(f.ckpt, c, 22).ok());
    f.layers = c.num_hidden_layers;
    f.vocab = c.vocab_size;
    f.load();
    return f;
  }
  void load() {
    auto m = load_model(ckpt);
    if (!m.ok()) throw std::runtime_error(m.status().message());
    model = std::move(m).value();
  }
  at::Tensor ids(int64_t batch, int64_t seq, uint64_t seed) const {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    return at::randint(0, vocab, {batch, seq}, gen, at::kLong);
  }
  std::string block(int64_t i) const { return prefix + std::to_string(i); }
  // The reference's loss and gradients for `input` (extra: --scale-grad ...).
  SafetensorsFile reference(const at::Tensor& input, const std::string& extra = "") const {
    EXPECT_TRUE(write_safetensors_file(dir.file("in.safetensors"), {{"0", input}}).ok());
    EXPECT_EQ(loom::testing::run_fixture_script("grad_reference.py", kind + " " + ckpt + " " + dir.file("in.safetensors") +
                                                                         " " + dir.file("ref.safetensors") + " " + extra),
              0);
    return loom::testing::read_or_die(dir.file("ref.safetensors"));
  }
};

const at::Tensor& find(const SafetensorsFile& f, const std::string& name) {
  for (const auto& nt : f.tensors) {
    if (nt.name == name) return nt.tensor;
  }
  throw std::out_of_range("reference has no " + name);
}

void expect_close(const at::Tensor& got, const at::Tensor& want, const std::string& what) {
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  const double diff = (got - want).abs().max().item<double>();
  EXPECT_LE(diff, 1e-4) << what << ": max |loom - autograd| = " << diff;
  // A gradient of all zeros would pass trivially: these are not.
  EXPECT_GT(want.abs().max().item<double>(), 1e-6) << what;
}

// d(LM loss)/d(every block output), against autograd.
void check_lm_loss_grads(Fixture& f) {
  at::Tensor input = f.ids(2, 12, 5);
  SafetensorsFile ref = f.reference(input);
  LocalTrace tr(*f.model, {input});
  Value loss = next_token_loss(tr.output(), tr.input(0));
  loss.save("loss");
  for (int64_t i = 0; i < f.layers; ++i) tr.module(f.block(i)).output(0).grad().save("grad:" + f.block(i) + ".output.0");
  tr.backward(loss);
  auto result = tr.run();
  ASSERT_TRUE(result.ok()) << result.status().message();
  expect_close(result->at("loss"), find(ref, "loss"), "loss");
  for (int64_t i = 0; i < f.layers; ++i) {
    const std::string name = "grad:" + f.block(i) + ".output.0";
    expect_close(result->at(name), find(ref, name), name);
  }
  // Gradients are taken with respect to hook values only.
  int64_t checked = 0;
  for (const at::Tensor& t : f.model->tensors()) {
    if (!t.defined()) continue;  // absent optional weights (biases, untied head)
    ++checked;
    EXPECT_FALSE(t.requires_grad());
    EXPECT_FALSE(t.grad().defined());
  }
  EXPECT_GT(checked, 2 * f.layers);
}

TEST(GradTest, Gpt2LmLossGradientsMatchAutograd) {
  Fixture f = Fixture::gpt2();
  check_lm_loss_grads(f);
}

TEST(GradTest, LlamaLmLossGradientsMatchAutograd) {
  Fixture f = Fixture::llama();
  check_lm_loss_grads(f);
}

// set_grad at the last block changes the gradient at block 0 as a tensor
// hook returning grad * 0.5 does under autograd.
void check_set_grad(Fixture& f) {
  at::Tensor input = f.ids(1, 10, 6);
  const std::string last = f.block(f.layers - 1);
  SafetensorsFile ref = f.reference(input, "--scale-grad " + last + ".output.0 0.5");
  SafetensorsFile plain = f.reference(input);
  LocalTrace tr(*f.model, {input});
  HookPoint h = tr.module(last).output(0);
  h.set_grad(h.grad() * 0.5);
  tr.module(f.block(0)).output(0).grad().save("g0");
  tr.backward(next_token_loss(tr.output(), tr.input(0)));
  auto result = tr.run();
  ASSERT_TRUE(result.ok()) << result.status().message();
  const std::string name = "grad:" + f.block(0) + ".output.0";
  expect_close(result->at("g0"), find(ref, name), "g0 with the set");
  // The set made a difference (the test would pass without one otherwise).
  EXPECT_GT((find(ref, name) - find(plain, name)).abs().max().item<double>(), 1e-5);
}

TEST(GradTest, Gpt2SetGradChangesEarlierGradientAsAutograd) {
  Fixture f = Fixture::gpt2();
  check_set_grad(f);
}

TEST(GradTest, LlamaSetGradChangesEarlierGradientAsAutograd) {
  Fixture f = Fixture::llama();
  check_set_grad(f);
}

// An invoke's gradient is its rows of the batch's gradient.
TEST(GradTest, InvokeGradientsAreTheirRows) {
  Fixture f = Fixture::gpt2();
  at::Tensor a = f.ids(1, 8, 7), b = f.ids(2, 8, 8);
  LocalTrace whole(*f.model, {at::cat({a, b})});
  whole.module("transformer.h.0").output(0).grad().save("g");
  whole.backward(next_token_loss(whole.output(), whole.input(0)));
  auto w = whole.run();
  ASSERT_TRUE(w.ok()) << w.status().message();

  LocalTrace tr(*f.model);
  Invoke ia = tr.invoke({a});
  Invoke ib = tr.invoke({b});
  ib.module("transformer.h.0").output(0).grad().save("gb");
  ia.module("transformer.h.0").output(0).grad().save("ga");
  tr.backward(next_token_loss(tr.output(), tr.input(0)));
  auto r = tr.run();
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->at("ga").equal(w->at("g").narrow(0, 0, 1)));
  EXPECT_TRUE(r->at("gb").equal(w->at("g").narrow(0, 1, 2)));
}

// What the backward pass keeps alive is limited, with a message saying so.
TEST(GradTest, AutogradMemoryIsLimited) {
  Fixture f = Fixture::gpt2();
  at::Tensor input = f.ids(2, 12, 9);
  auto trace = [&](uint64_t limit) {
    LocalTrace tr(*f.model, {input});
    tr.module("transformer.h.0").output(0).grad().save("g");
    tr.backward(next_token_loss(tr.output(), tr.input(0)));
    tr.options().limits.max_autograd_bytes = limit;
    return tr.run();
  };
  auto small = trace(64 * 1024);
  ASSERT_FALSE(small.ok());
  EXPECT_EQ(small.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(small.status().message().find("backward pass would keep about"), std::string::npos)
      << small.status().message();
  auto enough = trace(64ull << 20);
  EXPECT_TRUE(enough.ok()) << enough.status().message();
}

TEST(GradTest, ErrorsNameTheProblem) {
  Fixture f = Fixture::gpt2();
  at::Tensor input = f.ids(1, 6, 10);
  {  // a gradient but no backward pass
    LocalTrace tr(*f.model, {input});
    tr.module("transformer.h.0").output(0).grad().save("g");
    auto r = tr.run();
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("no backward pass"), std::string::npos) << r.status().message();
  }
  {  // a loss computed before the gradient point: nothing to differentiate
    LocalTrace tr(*f.model, {input});
    Value early = tr.module("transformer.h.0").output(0).sum({0, 1, 2});
    tr.module("transformer.h.1").output(0).grad().save("g");
    tr.backward(early);
    auto r = tr.run();
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("the loss does not depend on any point"), std::string::npos)
        << r.status().message();
  }
  {  // a loss that is not a scalar
    LocalTrace tr(*f.model, {input});
    tr.module("transformer.h.0").output(0).grad().save("g");
    tr.backward(tr.output());
    auto r = tr.run();
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("floating-point scalar"), std::string::npos) << r.status().message();
  }
  {  // a point the loss does not depend on
    LocalTrace tr(*f.model, {input});
    Value loss = tr.module("transformer.h.0").output(0).sum({0, 1, 2});
    tr.module("transformer.h.0").output(0).grad().save("g0");
    tr.module("transformer.h.1").output(0).grad().save("g1");
    tr.backward(loss);
    auto r = tr.run();
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("no gradient flowed"), std::string::npos) << r.status().message();
  }
  {  // a new gradient of the wrong shape
    LocalTrace tr(*f.model, {input});
    HookPoint h = tr.module("transformer.h.1").output(0);
    h.set_grad(h.grad().sum({0}));
    tr.module("transformer.h.0").output(0).grad().save("g0");
    tr.backward(next_token_loss(tr.output(), tr.input(0)));
    auto r = tr.run();
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("must have the gradient's shape"), std::string::npos) << r.status().message();
  }
  // The model still runs plainly afterwards.
  LocalTrace tr(*f.model, {input});
  tr.output().save("logits");
  EXPECT_TRUE(tr.run().ok());
}

}  // namespace
}  // namespace loom::runtime
