#include "runtime/llama_config.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "runtime/internal/random_weights.h"

namespace loom::runtime {
using internal::NormalStream;
using internal::write_text_file;
namespace {

using Json = nlohmann::json;
constexpr int64_t kMaxDim = int64_t{1} << 31;
constexpr char kWhere[] = "llama config: ";

Status bad(const std::string& msg) { return invalid_argument(std::string(kWhere) + msg); }

Status wrong_type(const std::string& key, const char* expected, const Json& got) {
  return bad("\"" + key + "\" must be " + expected + ", got " + got.type_name() + " " +
             got.dump(-1, ' ', false, Json::error_handler_t::replace));
}

Status check_dim(const std::string& key, int64_t v) {
  if (v <= 0 || v >= kMaxDim) return bad("\"" + key + "\" must be in [1, 2^31), got " + std::to_string(v));
  return Status::ok_status();
}

Status read_int(const Json& obj, const std::string& key, int64_t* out, const std::string& where = "") {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return Status::ok_status();
  if (!it->is_number_integer()) return wrong_type(where + key, "an integer", *it);
  if (it->is_number_unsigned() && it->get<uint64_t>() >= static_cast<uint64_t>(kMaxDim)) {
    return bad("\"" + where + key + "\" must be in [1, 2^31), got " + it->dump());
  }
  *out = it->get<int64_t>();
  return check_dim(where + key, *out);
}

Status read_double(const Json& obj, const std::string& key, double* out, const std::string& where = "") {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return Status::ok_status();
  if (!it->is_number()) return wrong_type(where + key, "a number", *it);
  *out = it->get<double>();
  if (!std::isfinite(*out) || *out <= 0) return bad("\"" + where + key + "\" must be positive, got " + it->dump());
  return Status::ok_status();
}

Status read_bool(const Json& obj, const std::string& key, bool* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return Status::ok_status();
  if (!it->is_boolean()) return wrong_type(key, "a boolean", *it);
  *out = it->get<bool>();
  return Status::ok_status();
}

Status read_string(const Json& obj, const std::string& key, std::string* out, const std::string& where = "") {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return Status::ok_status();
  if (!it->is_string()) return wrong_type(where + key, "a string", *it);
  *out = it->get<std::string>();
  return Status::ok_status();
}

Status parse_rope_scaling(const Json& j, RopeScaling* r) {
  if (j.is_null()) return Status::ok_status();
  if (!j.is_object()) return wrong_type("rope_scaling", "an object or null", j);
  const std::string w = "rope_scaling.";
  std::string type;
  LOOM_RETURN_IF_ERROR(read_string(j, "type", &type, w));       // legacy key
  LOOM_RETURN_IF_ERROR(read_string(j, "rope_type", &type, w));  // wins when both are present
  if (type.empty()) return bad("\"rope_scaling\" needs \"rope_type\" (or the legacy \"type\")");
  if (type != "default" && type != "linear" && type != "dynamic" && type != "llama3") {
    return bad("\"rope_scaling.rope_type\" is " + Json(type).dump(-1, ' ', false, Json::error_handler_t::replace) +
               "; supported: default, linear, dynamic, llama3");
  }
  r->type = type;
  if (type != "default") {
    if (!j.contains("factor")) return bad("\"rope_scaling\" of type " + type + " needs \"factor\"");
    LOOM_RETURN_IF_ERROR(read_double(j, "factor", &r->factor, w));
  }
  if (type == "llama3") {
    for (const char* key : {"low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}) {
      if (!j.contains(key)) return bad("\"rope_scaling\" of type llama3 needs \"" + std::string(key) + "\"");
    }
    LOOM_RETURN_IF_ERROR(read_double(j, "low_freq_factor", &r->low_freq_factor, w));
    LOOM_RETURN_IF_ERROR(read_double(j, "high_freq_factor", &r->high_freq_factor, w));
    LOOM_RETURN_IF_ERROR(read_int(j, "original_max_position_embeddings", &r->original_max_position_embeddings, w));
    if (!(r->high_freq_factor > r->low_freq_factor)) {
      return bad("\"rope_scaling.high_freq_factor\" must be greater than \"low_freq_factor\"");
    }
  }
  return Status::ok_status();
}

Status validate(const LlamaConfig& c) {
  LOOM_RETURN_IF_ERROR(check_dim("vocab_size", c.vocab_size));
  LOOM_RETURN_IF_ERROR(check_dim("hidden_size", c.hidden_size));
  LOOM_RETURN_IF_ERROR(check_dim("intermediate_size", c.intermediate_size));
  LOOM_RETURN_IF_ERROR(check_dim("num_hidden_layers", c.num_hidden_layers));
  LOOM_RETURN_IF_ERROR(check_dim("num_attention_heads", c.num_attention_heads));
  LOOM_RETURN_IF_ERROR(check_dim("max_position_embeddings", c.max_position_embeddings));
  if (c.model_type != "llama" && c.model_type != "qwen2") {
    return bad("\"model_type\" is \"" + c.model_type + "\"; supported: llama, qwen2");
  }
  if (c.head_dim == 0 && c.hidden_size % c.num_attention_heads != 0) {
    return bad("\"hidden_size\" " + std::to_string(c.hidden_size) + " is not divisible by \"num_attention_heads\" " +
               std::to_string(c.num_attention_heads) + " (and there is no \"head_dim\")");
  }
  if (c.head_size() % 2 != 0) return bad("the head size " + std::to_string(c.head_size()) + " must be even (RoPE)");
  if (c.num_attention_heads % c.kv_heads() != 0) {
    return bad("\"num_attention_heads\" " + std::to_string(c.num_attention_heads) +
               " is not a multiple of \"num_key_value_heads\" " + std::to_string(c.kv_heads()));
  }
  if (c.torch_dtype != "float32" && c.torch_dtype != "float16" && c.torch_dtype != "bfloat16") {
    return bad("\"torch_dtype\" is \"" + c.torch_dtype + "\"; supported: float32, float16, bfloat16");
  }
  for (int64_t id : c.eos_token_ids) {
    if (id < 0 || id >= c.vocab_size) return bad("\"eos_token_id\" " + std::to_string(id) + " is outside the vocabulary");
  }
  return Status::ok_status();
}

}  // namespace

LlamaConfig LlamaConfig::tiny() {
  LlamaConfig c;
  c.vocab_size = 1000;
  c.hidden_size = 64;
  c.intermediate_size = 128;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 256;
  c.rms_norm_eps = 1e-5;
  c.eos_token_ids = {2};
  c.bos_token_id = 1;
  return c;
}

LlamaConfig LlamaConfig::small() {
  LlamaConfig c;
  c.vocab_size = 32000;
  c.hidden_size = 768;
  c.intermediate_size = 2048;
  c.num_hidden_layers = 12;
  c.num_attention_heads = 12;
  c.num_key_value_heads = 4;
  c.max_position_embeddings = 2048;
  c.rms_norm_eps = 1e-5;
  c.eos_token_ids = {2};
  c.bos_token_id = 1;
  return c;
}

Result<LlamaConfig> parse_llama_config(const std::string& json_text) {
  Json root;
  try {
    root = Json::parse(json_text);
  } catch (const Json::exception& e) {
    return bad(std::string("not valid JSON: ") + e.what());
  }
  if (!root.is_object()) return bad(std::string("must be a JSON object, got ") + root.type_name());
  LlamaConfig c;
  c.num_key_value_heads = 0;
  LOOM_RETURN_IF_ERROR(read_string(root, "model_type", &c.model_type));
  LOOM_RETURN_IF_ERROR(read_int(root, "vocab_size", &c.vocab_size));
  LOOM_RETURN_IF_ERROR(read_int(root, "hidden_size", &c.hidden_size));
  LOOM_RETURN_IF_ERROR(read_int(root, "intermediate_size", &c.intermediate_size));
  LOOM_RETURN_IF_ERROR(read_int(root, "num_hidden_layers", &c.num_hidden_layers));
  LOOM_RETURN_IF_ERROR(read_int(root, "num_attention_heads", &c.num_attention_heads));
  LOOM_RETURN_IF_ERROR(read_int(root, "num_key_value_heads", &c.num_key_value_heads));
  LOOM_RETURN_IF_ERROR(read_int(root, "head_dim", &c.head_dim));
  LOOM_RETURN_IF_ERROR(read_int(root, "max_position_embeddings", &c.max_position_embeddings));
  LOOM_RETURN_IF_ERROR(read_double(root, "rms_norm_eps", &c.rms_norm_eps));
  LOOM_RETURN_IF_ERROR(read_double(root, "rope_theta", &c.rope_theta));
  if (auto it = root.find("rope_scaling"); it != root.end()) LOOM_RETURN_IF_ERROR(parse_rope_scaling(*it, &c.rope_scaling));
  LOOM_RETURN_IF_ERROR(read_bool(root, "attention_bias", &c.attention_bias));
  LOOM_RETURN_IF_ERROR(read_bool(root, "mlp_bias", &c.mlp_bias));
  LOOM_RETURN_IF_ERROR(read_bool(root, "tie_word_embeddings", &c.tie_word_embeddings));
  LOOM_RETURN_IF_ERROR(read_string(root, "dtype", &c.torch_dtype));        // newer transformers
  LOOM_RETURN_IF_ERROR(read_string(root, "torch_dtype", &c.torch_dtype));  // wins when both are present
  std::string act = "silu";
  LOOM_RETURN_IF_ERROR(read_string(root, "hidden_act", &act));
  if (act != "silu") return bad("\"hidden_act\" is \"" + act + "\"; only \"silu\" (SwiGLU) is supported");
  if (auto it = root.find("eos_token_id"); it != root.end() && !it->is_null()) {
    if (it->is_number_integer()) {
      c.eos_token_ids = {it->get<int64_t>()};
    } else if (it->is_array()) {
      for (const Json& e : *it) {
        if (!e.is_number_integer()) return wrong_type("eos_token_id", "an integer or a list of integers", *it);
        c.eos_token_ids.push_back(e.get<int64_t>());
      }
    } else {
      return wrong_type("eos_token_id", "an integer or a list of integers", *it);
    }
  }
  if (auto it = root.find("bos_token_id"); it != root.end() && !it->is_null()) {
    if (!it->is_number_integer()) return wrong_type("bos_token_id", "an integer", *it);
    c.bos_token_id = it->get<int64_t>();
  }
  LOOM_RETURN_IF_ERROR(validate(c));
  return c;
}

std::string llama_config_to_json(const LlamaConfig& c) {
  nlohmann::ordered_json j;
  j["architectures"] = {c.model_type == "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM"};
  j["model_type"] = c.model_type;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.kv_heads();
  if (c.head_dim > 0) j["head_dim"] = c.head_dim;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  if (c.rope_scaling.type == "default") {
    j["rope_scaling"] = nullptr;
  } else {
    nlohmann::ordered_json r;
    r["rope_type"] = c.rope_scaling.type;
    r["factor"] = c.rope_scaling.factor;
    if (c.rope_scaling.type == "llama3") {
      r["low_freq_factor"] = c.rope_scaling.low_freq_factor;
      r["high_freq_factor"] = c.rope_scaling.high_freq_factor;
      r["original_max_position_embeddings"] = c.rope_scaling.original_max_position_embeddings;
    }
    j["rope_scaling"] = r;
  }
  if (c.model_type == "llama") {
    j["attention_bias"] = c.attention_bias;
    j["mlp_bias"] = c.mlp_bias;
  }
  j["hidden_act"] = "silu";
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["torch_dtype"] = c.torch_dtype;
  if (c.bos_token_id >= 0) j["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_ids.size() == 1) j["eos_token_id"] = c.eos_token_ids[0];
  if (c.eos_token_ids.size() > 1) j["eos_token_id"] = c.eos_token_ids;
  return j.dump(2) + "\n";
}

namespace {

struct Param {
  std::string name;
  std::vector<int64_t> shape;
  float mean, stddev;
};

// transformers' init (normal(0, 0.02)), with noise on norms and biases too,
// so a comparison of two implementations exercises every parameter.
std::vector<Param> llama_params(const LlamaConfig& c) {
  const int64_t d = c.hidden_size, hd = c.head_size(), q = c.num_attention_heads * hd, kv = c.kv_heads() * hd;
  const int64_t inter = c.intermediate_size;
  std::vector<Param> out = {{"model.embed_tokens.weight", {c.vocab_size, d}, 0.0f, 0.02f}};
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    out.push_back({p + "input_layernorm.weight", {d}, 1.0f, 0.02f});
    out.push_back({p + "self_attn.q_proj.weight", {q, d}, 0.0f, 0.02f});
    out.push_back({p + "self_attn.k_proj.weight", {kv, d}, 0.0f, 0.02f});
    out.push_back({p + "self_attn.v_proj.weight", {kv, d}, 0.0f, 0.02f});
    out.push_back({p + "self_attn.o_proj.weight", {d, q}, 0.0f, 0.02f});
    if (c.qkv_bias()) {
      out.push_back({p + "self_attn.q_proj.bias", {q}, 0.0f, 0.02f});
      out.push_back({p + "self_attn.k_proj.bias", {kv}, 0.0f, 0.02f});
      out.push_back({p + "self_attn.v_proj.bias", {kv}, 0.0f, 0.02f});
    }
    if (c.o_bias()) out.push_back({p + "self_attn.o_proj.bias", {d}, 0.0f, 0.02f});
    out.push_back({p + "post_attention_layernorm.weight", {d}, 1.0f, 0.02f});
    out.push_back({p + "mlp.gate_proj.weight", {inter, d}, 0.0f, 0.02f});
    out.push_back({p + "mlp.up_proj.weight", {inter, d}, 0.0f, 0.02f});
    out.push_back({p + "mlp.down_proj.weight", {d, inter}, 0.0f, 0.02f});
    if (c.mlp_bias) {
      out.push_back({p + "mlp.gate_proj.bias", {inter}, 0.0f, 0.02f});
      out.push_back({p + "mlp.up_proj.bias", {inter}, 0.0f, 0.02f});
      out.push_back({p + "mlp.down_proj.bias", {d}, 0.0f, 0.02f});
    }
  }
  out.push_back({"model.norm.weight", {d}, 1.0f, 0.02f});
  if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", {c.vocab_size, d}, 0.0f, 0.02f});
  return out;
}

at::ScalarType dtype_named(const std::string& name) {
  if (name == "float16") return at::kHalf;
  if (name == "bfloat16") return at::kBFloat16;
  return at::kFloat;
}

std::string shard_name(int i, int n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05d-of-%05d.safetensors", i + 1, n);
  return buf;
}

}  // namespace

Status write_random_llama_checkpoint(const std::string& dir, const LlamaConfig& config, uint64_t seed,
                                     const LlamaCheckpointOptions& options) {
  LlamaConfig c = config;
  c.torch_dtype = options.dtype;
  LOOM_RETURN_IF_ERROR(validate(c));
  if (options.shards < 1 || options.shards > 9999) return bad("shards must be in [1, 9999]");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return invalid_argument(dir + ": cannot create directory: " + ec.message());
  const std::filesystem::path root(dir);
  LOOM_RETURN_IF_ERROR(write_text_file((root / "config.json").string(), llama_config_to_json(c)));

  const at::ScalarType dtype = dtype_named(options.dtype);
  const std::vector<Param> params = llama_params(c);
  // Parameters go to shards in order, one contiguous run per shard; every
  // value is drawn in the same order whatever the sharding or dtype.
  const size_t per_shard = (params.size() + options.shards - 1) / options.shards;
  NormalStream normal(seed);
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  uint64_t total_bytes = 0;
  for (int s = 0; s < options.shards; ++s) {
    const size_t begin = std::min(params.size(), s * per_shard), end = std::min(params.size(), begin + per_shard);
    const std::string file = options.shards == 1 ? "model.safetensors" : shard_name(s, options.shards);
    std::vector<internal::TensorLayout> layouts;
    for (size_t i = begin; i < end; ++i) {
      layouts.push_back({params[i].name, dtype, params[i].shape});
      weight_map[params[i].name] = file;
    }
    LOOM_ASSIGN_OR_RETURN(std::string header, internal::encode_safetensors_header(layouts, {{"format", "pt"}}));
    internal::FileSink sink((root / file).string());
    LOOM_RETURN_IF_ERROR(sink.open());
    LOOM_RETURN_IF_ERROR(sink.write(header.data(), header.size()));
    for (size_t i = begin; i < end; ++i) {
      const Param& p = params[i];
      int64_t n = 1;
      for (int64_t dim : p.shape) n *= dim;
      std::vector<float> values(static_cast<size_t>(n));
      for (float& v : values) v = p.mean + p.stddev * static_cast<float>(normal.next());
      at::Tensor t = at::from_blob(values.data(), {n}, at::kFloat).to(dtype).contiguous();
      LOOM_RETURN_IF_ERROR(sink.write(t.data_ptr(), t.nbytes()));
      total_bytes += t.nbytes();
    }
    LOOM_RETURN_IF_ERROR(sink.commit());
  }
  if (options.shards > 1) {
    nlohmann::ordered_json index;
    index["metadata"] = {{"total_size", total_bytes}};
    index["weight_map"] = weight_map;
    LOOM_RETURN_IF_ERROR(write_text_file((root / "model.safetensors.index.json").string(), index.dump(2) + "\n"));
  }
  return Status::ok_status();
}

}  // namespace loom::runtime
