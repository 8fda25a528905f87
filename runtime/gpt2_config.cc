#include "runtime/gpt2_config.h"

#include <cmath>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "runtime/internal/random_weights.h"

namespace loom::runtime {
using internal::NormalStream;
using internal::write_text_file;
namespace {

using Json = nlohmann::json;

// Each size must be below 2^31: products such as vocab x n_embd x 4 bytes
// then fit in int64, and no real GPT-2 comes near it.
constexpr int64_t kMaxDim = int64_t{1} << 31;
constexpr char kWhere[] = "gpt2 config: ";

Status check_dim(const char* key, int64_t v) {
  if (v <= 0 || v >= kMaxDim) {
    return invalid_argument(std::string(kWhere) + "\"" + key + "\" must be in [1, 2^31), got " + std::to_string(v));
  }
  return Status::ok_status();
}

// The checks shared by parse_gpt2_config and write_random_gpt2_checkpoint.
Status validate_config(const Gpt2Config& c) {
  LOOM_RETURN_IF_ERROR(check_dim("vocab_size", c.vocab_size));
  LOOM_RETURN_IF_ERROR(check_dim("n_positions", c.n_positions));
  LOOM_RETURN_IF_ERROR(check_dim("n_embd", c.n_embd));
  LOOM_RETURN_IF_ERROR(check_dim("n_layer", c.n_layer));
  LOOM_RETURN_IF_ERROR(check_dim("n_head", c.n_head));
  if (c.n_inner != 0) LOOM_RETURN_IF_ERROR(check_dim("n_inner", c.n_inner));
  if (!(c.layer_norm_epsilon > 0) || !std::isfinite(c.layer_norm_epsilon)) {
    return invalid_argument(std::string(kWhere) + "\"layer_norm_epsilon\" must be positive, got " +
                            std::to_string(c.layer_norm_epsilon));
  }
  if (c.n_embd % c.n_head != 0) {
    return invalid_argument(std::string(kWhere) + "\"n_embd\" " + std::to_string(c.n_embd) +
                            " is not divisible by \"n_head\" " + std::to_string(c.n_head));
  }
  if (c.activation_function != "gelu_new") {
    return invalid_argument(std::string(kWhere) + "\"activation_function\" is " + Json(c.activation_function).dump() +
                            "; only \"gelu_new\" (GPT-2's tanh approximation) is supported");
  }
  return Status::ok_status();
}

Status wrong_type(const char* key, const char* expected, const Json& got) {
  return invalid_argument(std::string(kWhere) + "\"" + key + "\" must be " + expected + ", got " + got.type_name() +
                          " " + got.dump());
}

// Reads `key` into `out` when present; a missing key keeps the default.
Status read_int(const Json& root, const char* key, int64_t* out) {
  auto it = root.find(key);
  if (it == root.end()) return Status::ok_status();
  if (!it->is_number_integer()) return wrong_type(key, "an integer", *it);
  if (it->is_number_unsigned() && it->get<uint64_t>() >= static_cast<uint64_t>(kMaxDim)) {
    return invalid_argument(std::string(kWhere) + "\"" + key + "\" must be in [1, 2^31), got " + it->dump());
  }
  *out = it->get<int64_t>();
  return check_dim(key, *out);
}

struct RandomParam {
  std::string name;
  std::vector<int64_t> shape;
  float mean;
  float stddev;
};

// Parameters in the official checkpoint's naming, initialized as Hugging
// Face does (normal(0, 0.02), residual projections scaled by 1/sqrt(2 n_layer))
// except that biases and layer norms get noise too, so that a test comparing
// two implementations exercises every parameter.
std::vector<RandomParam> gpt2_params(const Gpt2Config& c, const std::string& prefix) {
  const int64_t d = c.n_embd;
  const int64_t inner = c.inner_dim();
  const float std_w = 0.02f;
  const float std_proj = static_cast<float>(0.02 / std::sqrt(2.0 * static_cast<double>(c.n_layer)));
  std::vector<RandomParam> out = {
      {prefix + "wte.weight", {c.vocab_size, d}, 0.0f, std_w},
      {prefix + "wpe.weight", {c.n_positions, d}, 0.0f, std_w},
  };
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const std::string h = prefix + "h." + std::to_string(i) + ".";
    out.push_back({h + "ln_1.weight", {d}, 1.0f, std_w});
    out.push_back({h + "ln_1.bias", {d}, 0.0f, std_w});
    out.push_back({h + "attn.c_attn.weight", {d, 3 * d}, 0.0f, std_w});
    out.push_back({h + "attn.c_attn.bias", {3 * d}, 0.0f, std_w});
    out.push_back({h + "attn.c_proj.weight", {d, d}, 0.0f, std_proj});
    out.push_back({h + "attn.c_proj.bias", {d}, 0.0f, std_w});
    out.push_back({h + "ln_2.weight", {d}, 1.0f, std_w});
    out.push_back({h + "ln_2.bias", {d}, 0.0f, std_w});
    out.push_back({h + "mlp.c_fc.weight", {d, inner}, 0.0f, std_w});
    out.push_back({h + "mlp.c_fc.bias", {inner}, 0.0f, std_w});
    out.push_back({h + "mlp.c_proj.weight", {inner, d}, 0.0f, std_proj});
    out.push_back({h + "mlp.c_proj.bias", {d}, 0.0f, std_w});
  }
  out.push_back({prefix + "ln_f.weight", {d}, 1.0f, std_w});
  out.push_back({prefix + "ln_f.bias", {d}, 0.0f, std_w});
  return out;
}

}  // namespace

Gpt2Config Gpt2Config::tiny() {
  Gpt2Config c;
  c.vocab_size = 1000;
  c.n_positions = 128;
  c.n_embd = 64;
  c.n_layer = 2;
  c.n_head = 4;
  return c;
}

Gpt2Config Gpt2Config::small() { return Gpt2Config(); }

Result<Gpt2Config> parse_gpt2_config(const std::string& json_text) {
  Json root;
  try {
    root = Json::parse(json_text);
  } catch (const Json::exception& e) {
    return invalid_argument(std::string(kWhere) + "not valid JSON: " + e.what());
  }
  if (!root.is_object()) {
    return invalid_argument(std::string(kWhere) + "must be a JSON object, got " + root.type_name());
  }

  // A config of another architecture would otherwise silently fall back to
  // GPT-2 small's defaults for every key it lacks.
  if (auto it = root.find("model_type"); it != root.end()) {
    if (!it->is_string()) return wrong_type("model_type", "a string", *it);
    if (*it != "gpt2") {
      return invalid_argument(std::string(kWhere) + "\"model_type\" is " + it->dump() + ", not \"gpt2\"");
    }
  }

  Gpt2Config c;
  LOOM_RETURN_IF_ERROR(read_int(root, "vocab_size", &c.vocab_size));
  LOOM_RETURN_IF_ERROR(read_int(root, "n_positions", &c.n_positions));
  LOOM_RETURN_IF_ERROR(read_int(root, "n_embd", &c.n_embd));
  LOOM_RETURN_IF_ERROR(read_int(root, "n_layer", &c.n_layer));
  LOOM_RETURN_IF_ERROR(read_int(root, "n_head", &c.n_head));
  if (auto it = root.find("n_inner"); it != root.end() && !it->is_null()) {
    LOOM_RETURN_IF_ERROR(read_int(root, "n_inner", &c.n_inner));
  }
  if (auto it = root.find("layer_norm_epsilon"); it != root.end()) {
    if (!it->is_number()) return wrong_type("layer_norm_epsilon", "a number", *it);
    c.layer_norm_epsilon = it->get<double>();
  }
  if (auto it = root.find("activation_function"); it != root.end()) {
    if (!it->is_string()) return wrong_type("activation_function", "a string", *it);
    c.activation_function = it->get<std::string>();
  }
  if (auto it = root.find("eos_token_id"); it != root.end() && !it->is_null()) {
    if (!it->is_number_integer()) return wrong_type("eos_token_id", "an integer", *it);
    c.eos_token_id = it->get<int64_t>();
    if (c.eos_token_id < 0 || c.eos_token_id >= c.vocab_size) {
      return invalid_argument(std::string(kWhere) + "\"eos_token_id\" " + it->dump() + " is outside the vocabulary");
    }
  }
  LOOM_RETURN_IF_ERROR(validate_config(c));
  return c;
}

std::string gpt2_config_to_json(const Gpt2Config& config) {
  nlohmann::ordered_json j;
  j["architectures"] = {"GPT2LMHeadModel"};
  j["model_type"] = "gpt2";
  j["vocab_size"] = config.vocab_size;
  j["n_positions"] = config.n_positions;
  j["n_embd"] = config.n_embd;
  j["n_layer"] = config.n_layer;
  j["n_head"] = config.n_head;
  j["n_inner"] = config.n_inner > 0 ? nlohmann::ordered_json(config.n_inner) : nlohmann::ordered_json(nullptr);
  j["layer_norm_epsilon"] = config.layer_norm_epsilon;
  j["activation_function"] = config.activation_function;
  if (config.eos_token_id >= 0) j["eos_token_id"] = config.eos_token_id;
  return j.dump(2) + "\n";
}

Status write_random_gpt2_checkpoint(const std::string& dir, const Gpt2Config& config, uint64_t seed,
                                    bool with_prefix) {
  LOOM_RETURN_IF_ERROR(validate_config(config));
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return invalid_argument(dir + ": cannot create directory: " + ec.message());
  const std::filesystem::path root(dir);
  LOOM_RETURN_IF_ERROR(write_text_file((root / "config.json").string(), gpt2_config_to_json(config)));

  const std::vector<RandomParam> params = gpt2_params(config, with_prefix ? "transformer." : "");
  std::vector<internal::TensorLayout> layouts;
  layouts.reserve(params.size());
  for (const RandomParam& p : params) layouts.push_back({p.name, c10::ScalarType::Float, p.shape});
  LOOM_ASSIGN_OR_RETURN(std::string header, internal::encode_safetensors_header(layouts, {{"format", "pt"}}));

  // Streamed: header, then each tensor generated and written in chunks, so
  // GPT-2 small (~500 MB) never sits in memory.
  internal::FileSink sink((root / "model.safetensors").string());
  LOOM_RETURN_IF_ERROR(sink.open());
  LOOM_RETURN_IF_ERROR(sink.write(header.data(), header.size()));
  NormalStream normal(seed);
  std::vector<float> chunk(1 << 16);
  for (const RandomParam& p : params) {
    int64_t remaining = 1;
    for (int64_t dim : p.shape) remaining *= dim;  // bounded: the header encoder checked the byte size
    while (remaining > 0) {
      size_t n = static_cast<size_t>(std::min<int64_t>(remaining, static_cast<int64_t>(chunk.size())));
      for (size_t i = 0; i < n; ++i) chunk[i] = p.mean + p.stddev * static_cast<float>(normal.next());
      LOOM_RETURN_IF_ERROR(sink.write(chunk.data(), n * sizeof(float)));
      remaining -= static_cast<int64_t>(n);
    }
  }
  return sink.commit();
}

}  // namespace loom::runtime
