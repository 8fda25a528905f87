// Native Llama family against an independent computation:
// tests/fixtures/llama_reference.py implements modeling_llama.py in Python
// on the same generated weights (GQA, each RoPE scaling, tied and untied,
// Qwen2 biases, sharded bf16).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>

#include "runtime/execute.h"
#include "runtime/llama.h"
#include "runtime/trace.h"
#include "tests/runtime/test_util.h"

namespace loom::runtime {
namespace {

using loom::testing::TempDir;

at::Tensor random_ids(int64_t batch, int64_t seq, int64_t vocab, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randint(0, vocab, {batch, seq}, gen, at::kLong);
}

std::unique_ptr<Model> load_or_die(const std::string& dir, const std::string& dtype = "") {
  ModelOptions o;
  o.compute_dtype = dtype;
  auto m = load_model(dir, o);
  if (!m.ok()) throw std::runtime_error(m.status().message());
  return std::move(m).value();
}

// Runs the reference's forward on `input` and loom's, and compares every
// captured hook value within 1e-4.
void expect_matches_reference(const TempDir& dir, const std::string& ckpt, const at::Tensor& input) {
  ASSERT_TRUE(write_safetensors_file(dir.file("in.safetensors"), {{"0", input}}).ok());
  ASSERT_EQ(loom::testing::run_fixture_script("llama_reference.py", "forward " + ckpt + " " + dir.file("in.safetensors") +
                                                                        " " + dir.file("ref.safetensors")),
            0);
  auto ref = loom::testing::read_or_die(dir.file("ref.safetensors"));
  auto model = load_or_die(ckpt);
  LocalTrace tr(*model, {input});
  tr.output().save("logits");
  const auto& lc = static_cast<LlamaModel&>(*model).config();
  for (int64_t i = 0; i < lc.num_hidden_layers; ++i) {
    std::string p = "model.layers." + std::to_string(i);
    tr.module(p).output(0).save(p + ".output.0");
  }
  tr.module("model.embed_tokens").output().save("model.embed_tokens.output");
  tr.module("model.rotary_emb").output(0).save("model.rotary_emb.output.0");
  for (const char* m : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
    std::string p = std::string("model.layers.0.self_attn.") + m;
    tr.module(p).output().save(p + ".output");
  }
  tr.module("model.layers.0.mlp.act_fn").output().save("model.layers.0.mlp.act_fn.output");
  tr.module("model.norm").output().save("model.norm.output");
  auto result = tr.run();
  ASSERT_TRUE(result.ok()) << result.status().message();
  ASSERT_EQ(result->saved.size(), static_cast<size_t>(lc.num_hidden_layers + 9));
  for (const auto& nt : result->saved) {
    at::Tensor expected = ref.find(nt.name);
    ASSERT_TRUE(expected.defined()) << nt.name;
    ASSERT_EQ(nt.tensor.sizes(), expected.sizes()) << nt.name;
    EXPECT_TRUE(at::allclose(nt.tensor, expected, 1e-4, 1e-4))
        << ckpt << " " << nt.name << " max diff " << (nt.tensor - expected).abs().max().item<float>();
  }
}

TEST(LlamaTest, GqaUntiedMatchesReference) {
  TempDir dir;
  LlamaConfig c = LlamaConfig::tiny();  // 4 heads over 2 kv heads
  ASSERT_TRUE(write_random_llama_checkpoint(dir.file("ckpt"), c, 11).ok());
  expect_matches_reference(dir, dir.file("ckpt"), random_ids(2, 12, c.vocab_size, 1));
}

TEST(LlamaTest, Llama3ScalingTiedMatchesReference) {
  TempDir dir;
  LlamaConfig c = LlamaConfig::tiny();
  c.rope_theta = 500000;
  c.rope_scaling = {"llama3", 8.0, 1.0, 4.0, 16};  // short original context: every band is exercised
  c.tie_word_embeddings = true;
  c.num_key_value_heads = 1;
  ASSERT_TRUE(write_random_llama_checkpoint(dir.file("ckpt"), c, 12).ok());
  std::ifstream cfg(dir.file("ckpt/config.json"));
  std::string text((std::istreambuf_iterator<char>(cfg)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\"llama3\""), std::string::npos);
  expect_matches_reference(dir, dir.file("ckpt"), random_ids(1, 40, c.vocab_size, 2));
}

TEST(LlamaTest, LinearDynamicAndQwen2Match) {
  TempDir dir;
  LlamaConfig linear = LlamaConfig::tiny();
  linear.rope_scaling = {"linear", 2.0, 1.0, 4.0, 8192};
  linear.head_dim = 32;  // head_dim from config, not hidden / heads
  ASSERT_TRUE(write_random_llama_checkpoint(dir.file("linear"), linear, 13).ok());
  expect_matches_reference(dir, dir.file("linear"), random_ids(2, 9, linear.vocab_size, 3));

  LlamaConfig dynamic = LlamaConfig::tiny();
  dynamic.max_position_embeddings = 16;  // the prompt of 24 passes it: NTK base rescaled
  dynamic.rope_scaling = {"dynamic", 2.0, 1.0, 4.0, 8192};
  ASSERT_TRUE(write_random_llama_checkpoint(dir.file("dynamic"), dynamic, 14).ok());
  expect_matches_reference(dir, dir.file("dynamic"), random_ids(1, 24, dynamic.vocab_size, 4));

  LlamaConfig qwen = LlamaConfig::tiny();
  qwen.model_type = "qwen2";
  qwen.mlp_bias = false;
  ASSERT_TRUE(write_random_llama_checkpoint(dir.file("qwen2"), qwen, 15).ok());
  auto model = load_or_die(dir.file("qwen2"));
  EXPECT_EQ(model->kind(), "qwen2");
  expect_matches_reference(dir, dir.file("qwen2"), random_ids(2, 7, qwen.vocab_size, 5));
}

TEST(LlamaTest, ShardedBf16MatchesItsFp32Twin) {
  TempDir dir;
  LlamaConfig c = LlamaConfig::tiny();
  ASSERT_TRUE(write_random_llama_checkpoint(dir.file("f32"), c, 21).ok());
  ASSERT_TRUE(write_random_llama_checkpoint(dir.file("bf16"), c, 21, {"bfloat16", 3}).ok());
  ASSERT_TRUE(write_random_llama_checkpoint(dir.file("f16"), c, 21, {"float16", 1}).ok());
  EXPECT_TRUE(std::filesystem::exists(dir.file("bf16/model.safetensors.index.json")));
  EXPECT_TRUE(std::filesystem::exists(dir.file("bf16/model-00003-of-00003.safetensors")));
  at::Tensor input = random_ids(2, 10, c.vocab_size, 6);

  auto f32 = load_or_die(dir.file("f32"));
  auto bf16 = load_or_die(dir.file("bf16"));
  auto f16 = load_or_die(dir.file("f16"));
  auto bf16_as_f32 = load_or_die(dir.file("bf16"), "float32");
  EXPECT_EQ(static_cast<LlamaModel&>(*bf16).dtype(), at::kBFloat16);
  EXPECT_EQ(static_cast<LlamaModel&>(*bf16_as_f32).dtype(), at::kFloat);
  EXPECT_EQ(static_cast<LlamaModel&>(*f16).dtype(), at::kFloat);  // no float16 matmul on this CPU build
  ModelOptions half;
  half.compute_dtype = "float16";
  auto refused = load_model(dir.file("f16"), half);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("float16 compute is not available on the CPU"), std::string::npos);
  auto logits = [&](Model& m) {
    LocalTrace tr(m, {input});
    tr.output().save("logits");
    auto r = tr.run();
    if (!r.ok()) throw std::runtime_error(r.status().message());
    return r->at("logits").to(at::kFloat);
  };
  at::Tensor want = logits(*f32);
  at::Tensor got_bf16 = logits(*bf16), got_f16 = logits(*f16), got_up = logits(*bf16_as_f32);
  const float scale = want.abs().max().item<float>();
  // bf16 keeps 8 bits of mantissa: a few percent of the logits' range.
  EXPECT_LT((got_bf16 - want).abs().max().item<float>(), 0.05f * scale);
  EXPECT_LT((got_up - want).abs().max().item<float>(), 0.05f * scale);
  EXPECT_LT((got_f16 - want).abs().max().item<float>(), 0.01f * scale);
  EXPECT_GT((got_bf16 - want).abs().max().item<float>(), 0.0f);  // it really ran in bf16

  // The reference in bf16 on the same shards agrees with loom in bf16.
  ASSERT_TRUE(write_safetensors_file(dir.file("in.safetensors"), {{"0", input}}).ok());
  ASSERT_EQ(loom::testing::run_fixture_script("llama_reference.py", "forward " + dir.file("bf16") + " " +
                                                                        dir.file("in.safetensors") + " " +
                                                                        dir.file("ref.safetensors") + " --dtype checkpoint"),
            0);
  at::Tensor ref = loom::testing::read_or_die(dir.file("ref.safetensors")).find("logits").to(at::kFloat);
  EXPECT_LT((got_bf16 - ref).abs().max().item<float>(), 0.02f * scale);
}

TEST(LlamaTest, ModulePathsFollowTransformers) {
  TempDir dir;
  ASSERT_TRUE(write_random_llama_checkpoint(dir.file("ckpt"), LlamaConfig::tiny(), 1).ok());
  auto model = load_or_die(dir.file("ckpt"));
  for (const char* p : {"", "model", "model.embed_tokens", "model.layers", "model.layers.1", "model.layers.1.self_attn",
                        "model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.k_proj",
                        "model.layers.1.self_attn.v_proj", "model.layers.1.self_attn.o_proj", "model.layers.1.mlp",
                        "model.layers.1.mlp.gate_proj", "model.layers.1.mlp.up_proj", "model.layers.1.mlp.down_proj",
                        "model.layers.1.mlp.act_fn", "model.layers.1.input_layernorm",
                        "model.layers.1.post_attention_layernorm", "model.norm", "model.rotary_emb", "lm_head"}) {
    EXPECT_GE(model->module_id(p), 0) << p;
  }
  EXPECT_EQ(model->module_id("model.layers.2"), -1);
}

// A checkpoint directory is input from outside: every defect is a clear error.
TEST(LlamaTest, MalformedCheckpointsAreRefusedByName) {
  TempDir dir;
  const std::string ckpt = dir.file("ckpt");
  LlamaConfig c = LlamaConfig::tiny();
  ASSERT_TRUE(write_random_llama_checkpoint(ckpt, c, 3, {"float32", 2}).ok());
  auto write = [](const std::string& path, const std::string& text) { std::ofstream(path) << text; };
  auto error_of = [&]() {
    auto m = load_model(ckpt);
    return m.ok() ? std::string("loaded") : m.status().message();
  };
  const std::string index = ckpt + "/model.safetensors.index.json";
  write(index, R"({"weight_map": {"model.norm.weight": "../../etc/passwd.safetensors"}})");
  EXPECT_NE(error_of().find("is not a .safetensors file name in the checkpoint directory"), std::string::npos) << error_of();
  write(index, R"({"weight_map": {"model.norm.weight": "model-00001-of-00002.safetensors"}})");
  EXPECT_NE(error_of().find("missing tensor \"model.layers.1"), std::string::npos) << error_of();
  write(index, R"({"weight_map": []})");
  EXPECT_NE(error_of().find("\"weight_map\" must be an object"), std::string::npos) << error_of();
  std::filesystem::remove(index);
  std::filesystem::rename(ckpt + "/model-00001-of-00002.safetensors", ckpt + "/model.safetensors");
  EXPECT_NE(error_of().find("missing tensor"), std::string::npos) << error_of();

  for (const auto& [config, expected] : std::vector<std::pair<std::string, std::string>>{
           {R"({"model_type": "llama", "hidden_size": "64"})", "\"hidden_size\" must be an integer"},
           {R"({"model_type": "llama", "num_attention_heads": 3, "hidden_size": 64})", "not divisible"},
           {R"({"model_type": "llama", "num_attention_heads": 4, "num_key_value_heads": 3})", "not a multiple"},
           {R"({"model_type": "llama", "rope_scaling": {"rope_type": "yarn", "factor": 2}})", "supported: default"},
           {R"({"model_type": "llama", "rope_scaling": {"type": "llama3", "factor": 8}})", "needs \"low_freq_factor\""},
           {R"({"model_type": "llama", "hidden_act": "gelu"})", "only \"silu\""},
           {R"({"model_type": "llama", "eos_token_id": [1, "x"]})", "eos_token_id"},
           {"{\"model_type\": \"llama\", \"torch_dtype\": \"\xff\"}", "not valid JSON"},
           {R"({"model_type": "llama", "vocab_size": 99999999999})", "vocab_size"},
       }) {
    auto parsed = parse_llama_config(config);
    ASSERT_FALSE(parsed.ok()) << config;
    EXPECT_NE(parsed.status().message().find(expected), std::string::npos) << parsed.status().message();
  }
}

TEST(LlamaTest, WeightsInTheComputeDtypeAreMappedNotCopied) {
  TempDir dir;
  LlamaConfig c = LlamaConfig::tiny();
  ASSERT_TRUE(write_random_llama_checkpoint(dir.file("ckpt"), c, 5).ok());
  auto mapped = map_safetensors_file(dir.file("ckpt/model.safetensors"));
  ASSERT_TRUE(mapped.ok()) << mapped.status().message();
  auto copied = read_safetensors_file(dir.file("ckpt/model.safetensors"));
  ASSERT_TRUE(copied.ok());
  ASSERT_EQ(mapped->tensors.size(), copied->tensors.size());
  for (size_t i = 0; i < mapped->tensors.size(); ++i) {
    EXPECT_TRUE(at::equal(mapped->tensors[i].tensor, copied->tensors[i].tensor)) << mapped->tensors[i].name;
  }
  // A float32 model over a float32 file uses the mapped bytes as they are.
  at::Tensor w = mapped->find("model.norm.weight");
  EXPECT_TRUE(w.to(at::kFloat).is_same(w));
  // Truncated: refused, not mapped past the end.
  std::filesystem::resize_file(dir.file("ckpt/model.safetensors"), 100);
  EXPECT_FALSE(map_safetensors_file(dir.file("ckpt/model.safetensors")).ok());
}

}  // namespace
}  // namespace loom::runtime
