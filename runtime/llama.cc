#include "runtime/llama.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <sys/stat.h>

#include "runtime/internal/decoder.h"
#include "runtime/internal/hooks.h"
#include "runtime/safetensors.h"

namespace loom::runtime {
using internal::hooked;
using internal::hooked_tuple;

struct LlamaModel::Layer {
  at::Tensor in_norm, post_norm, q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b;
  at::Tensor gate_w, gate_b, up_w, up_b, down_w, down_b;
};

struct LlamaModel::Ids {
  int root, model, embed, rotary, norm, lm_head;
  struct PerLayer {
    int block, in_norm, attn, q, k, v, o, post_norm, mlp, gate, up, act, down;
  };
  std::vector<PerLayer> layers;
};

struct LlamaModel::Step {
  KvCache& cache;
  at::Tensor allowed;   // internal::step_mask
  at::Tensor cos, sin;  // [B, 1, t, head_dim], in the compute dtype
};

namespace {

using Json = nlohmann::json;

Result<std::string> read_text(const std::string& path) {
  std::ifstream in(path);
  if (!in) return not_found(path + ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The shard files an index names: plain names in the directory, nothing else.
Result<std::vector<std::string>> shard_files(const std::string& dir) {
  const std::string path = dir + "/model.safetensors.index.json";
  LOOM_ASSIGN_OR_RETURN(std::string text, read_text(path));
  Json j = Json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return invalid_argument(path + ": not a JSON object");
  auto map = j.find("weight_map");
  if (map == j.end() || !map->is_object()) return invalid_argument(path + ": \"weight_map\" must be an object");
  std::set<std::string> files;
  for (const auto& [name, file] : map->items()) {
    if (!file.is_string()) return invalid_argument(path + ": weight_map values must be file names");
    const std::string f = file.get<std::string>();
    if (f.empty() || f.find('/') != std::string::npos || f == "." || f == ".." ||
        f.size() < 12 || f.compare(f.size() - 12, 12, ".safetensors") != 0) {
      return invalid_argument(path + ": shard " + Json(f).dump(-1, ' ', false, Json::error_handler_t::replace) +
                              " is not a .safetensors file name in the checkpoint directory");
    }
    files.insert(f);
  }
  if (files.empty()) return invalid_argument(path + ": \"weight_map\" is empty");
  return std::vector<std::string>(files.begin(), files.end());
}

Result<at::ScalarType> dtype_named(const std::string& name) {
  if (name == "float32") return at::kFloat;
  if (name == "float16") return at::kHalf;
  if (name == "bfloat16") return at::kBFloat16;
  return invalid_argument("compute dtype \"" + name + "\" is not float32, float16 or bfloat16");
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
  at::Tensor h = x.to(at::kFloat);
  at::Tensor var = h.pow(2).mean({-1}, true);
  h = h * at::rsqrt(var + eps);
  return w * h.to(x.scalar_type());
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  return b.defined() ? at::linear(x, w, b) : at::linear(x, w);
}

at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.slice(-1, half), x.slice(-1, 0, half)}, -1);
}

// [B, kv_heads, S, D] -> [B, kv_heads * n_rep, S, D], each head repeated in place.
at::Tensor repeat_kv(const at::Tensor& x, int64_t n_rep) {
  if (n_rep == 1) return x;
  const int64_t B = x.size(0), H = x.size(1), S = x.size(2), D = x.size(3);
  return x.unsqueeze(2).expand({B, H, n_rep, S, D}).reshape({B, H * n_rep, S, D});
}

// inv_freq of rotate-half RoPE before scaling: 1 / theta^(2i / dim), float32.
at::Tensor base_inv_freq(double theta, int64_t dim, const at::TensorOptions& opts) {
  at::Tensor exps = at::arange(0, dim, 2, opts.dtype(at::kLong)).to(at::kFloat) / static_cast<double>(dim);
  return at::reciprocal(at::pow(theta, exps));
}

}  // namespace

bool is_llama_dir(const std::string& dir) {
  auto text = read_text(dir + "/config.json");
  if (!text.ok()) return false;
  Json j = Json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return false;
  auto it = j.find("model_type");
  return it != j.end() && it->is_string() && (*it == "llama" || *it == "qwen2");
}

int64_t LlamaModel::max_positions() const {
  const RopeScaling& r = config_.rope_scaling;
  if (r.type == "linear" || r.type == "dynamic") {
    const double n = static_cast<double>(config_.max_position_embeddings) * r.factor;
    return n >= 9.0e15 ? int64_t{1} << 53 : static_cast<int64_t>(n);  // a huge factor: no overflow
  }
  return config_.max_position_embeddings;
}

void LlamaModel::for_each_tensor(const std::function<void(at::Tensor&)>& f) {
  for (at::Tensor* t : {&embed_, &norm_w_, &lm_head_, &inv_freq_}) f(*t);
  for (auto& L : layers_) {
    for (at::Tensor* t : {&L->in_norm, &L->post_norm, &L->q_w, &L->q_b, &L->k_w, &L->k_b, &L->v_w, &L->v_b, &L->o_w,
                          &L->o_b, &L->gate_w, &L->gate_b, &L->up_w, &L->up_b, &L->down_w, &L->down_b}) {
      f(*t);
    }
  }
}

Result<std::unique_ptr<LlamaModel>> LlamaModel::load(const std::string& dir, const std::string& device,
                                                     const std::string& compute_dtype,
                                                     const std::function<void(double)>& progress) {
  auto cfg_text = read_text(dir + "/config.json");
  if (!cfg_text.ok()) return invalid_argument(dir + ": no config.json (a Llama checkpoint directory needs one)");
  auto config = parse_llama_config(*cfg_text);
  if (!config.ok()) return config.status().with_context(dir + "/config.json");
  // generate() takes its stop ids from generation_config.json when there is
  // one (instruct models list their end-of-turn token there).
  if (auto gen_text = read_text(dir + "/generation_config.json"); gen_text.ok()) {
    Json g = Json::parse(*gen_text, nullptr, false);
    if (g.is_discarded() || !g.is_object()) return invalid_argument(dir + "/generation_config.json: not a JSON object");
    if (auto it = g.find("eos_token_id"); it != g.end() && !it->is_null()) {
      std::vector<int64_t> ids;
      for (const Json& e : it->is_array() ? *it : Json::array({*it})) {
        if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() >= config->vocab_size) {
          return invalid_argument(dir + "/generation_config.json: \"eos_token_id\" must be token ids inside the vocabulary");
        }
        ids.push_back(e.get<int64_t>());
      }
      config->eos_token_ids = std::move(ids);
    }
  }

  std::vector<std::string> files = {"model.safetensors"};
  struct stat st;
  if (::stat((dir + "/model.safetensors.index.json").c_str(), &st) == 0) {
    LOOM_ASSIGN_OR_RETURN(files, shard_files(dir));
  }
  std::map<std::string, at::Tensor> params;
  if (progress) progress(0.0);
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string& f = files[i];
    // On the meta device (scans) only the headers are read.
    auto file = device == "meta" ? read_safetensors_shapes(dir + "/" + f) : map_safetensors_file(dir + "/" + f);
    if (!file.ok()) return file.status();
    // Mapping the shards is the first half of loading, placing the tensors the second.
    if (progress) progress(0.5 * static_cast<double>(i + 1) / static_cast<double>(files.size()));
    for (auto& nt : file->tensors) {
      if (!params.emplace(nt.name, std::move(nt.tensor)).second) {
        return invalid_argument(dir + "/" + f + ": tensor \"" + nt.name + "\" appears in more than one shard");
      }
    }
  }

  std::unique_ptr<LlamaModel> m(new LlamaModel());
  m->config_ = *config;
  m->device_ = device;
  LOOM_ASSIGN_OR_RETURN(m->dtype_, dtype_named(compute_dtype.empty() ? config->torch_dtype : compute_dtype));
  // LibTorch 1.13 has no float16 matmul on the CPU: a float16 checkpoint
  // computes in float32 there unless float16 was asked for by name.
  if (m->dtype_ == at::kHalf && at::Device(device).is_cpu()) {
    if (!compute_dtype.empty()) {
      return invalid_argument("float16 compute is not available on the CPU (this LibTorch has no float16 matmul "
                              "there); use float32 or bfloat16");
    }
    m->dtype_ = at::kFloat;
  }
  const LlamaConfig& c = m->config_;
  const at::TensorOptions opts = at::TensorOptions().device(at::Device(device)).dtype(m->dtype_);
  std::set<std::string> used;
  std::string error;
  auto take = [&](const std::string& name, std::vector<int64_t> shape) -> at::Tensor {
    auto it = params.find(name);
    if (it == params.end()) {
      if (error.empty()) error = "missing tensor \"" + name + "\"";
      return at::Tensor();
    }
    used.insert(name);
    if (progress) progress(0.5 + 0.5 * static_cast<double>(used.size()) / static_cast<double>(params.size()));
    if (it->second.sizes().vec() != shape) {
      if (error.empty()) {
        error = "tensor \"" + name + "\" has shape " + c10::str(it->second.sizes()) + " but config.json implies " +
                c10::str(at::IntArrayRef(shape));
      }
      return at::Tensor();
    }
    if (!at::isFloatingType(it->second.scalar_type())) {
      if (error.empty()) error = "tensor \"" + name + "\" is not floating point";
      return at::Tensor();
    }
    return it->second.to(opts);  // no copy when the mapped tensor already fits
  };
  const int64_t C = c.hidden_size, D = c.head_size(), Q = c.num_attention_heads * D, KV = c.kv_heads() * D;
  const int64_t I = c.intermediate_size;
  m->embed_ = take("model.embed_tokens.weight", {c.vocab_size, C});
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    auto L = std::make_shared<Layer>();
    L->in_norm = take(p + "input_layernorm.weight", {C});
    L->post_norm = take(p + "post_attention_layernorm.weight", {C});
    L->q_w = take(p + "self_attn.q_proj.weight", {Q, C});
    L->k_w = take(p + "self_attn.k_proj.weight", {KV, C});
    L->v_w = take(p + "self_attn.v_proj.weight", {KV, C});
    L->o_w = take(p + "self_attn.o_proj.weight", {C, Q});
    if (c.qkv_bias()) {
      L->q_b = take(p + "self_attn.q_proj.bias", {Q});
      L->k_b = take(p + "self_attn.k_proj.bias", {KV});
      L->v_b = take(p + "self_attn.v_proj.bias", {KV});
    }
    if (c.o_bias()) L->o_b = take(p + "self_attn.o_proj.bias", {C});
    L->gate_w = take(p + "mlp.gate_proj.weight", {I, C});
    L->up_w = take(p + "mlp.up_proj.weight", {I, C});
    L->down_w = take(p + "mlp.down_proj.weight", {C, I});
    if (c.mlp_bias) {
      L->gate_b = take(p + "mlp.gate_proj.bias", {I});
      L->up_b = take(p + "mlp.up_proj.bias", {I});
      L->down_b = take(p + "mlp.down_proj.bias", {C});
    }
    m->layers_.push_back(std::move(L));
  }
  m->norm_w_ = take("model.norm.weight", {C});
  if (c.tie_word_embeddings) {
    m->lm_head_ = m->embed_;
    if (params.count("lm_head.weight")) used.insert("lm_head.weight");  // tied: the embedding wins, as in transformers
  } else {
    m->lm_head_ = take("lm_head.weight", {c.vocab_size, C});
  }
  if (error.empty()) {
    for (const auto& [name, t] : params) {
      if (!used.count(name) && name.find("rotary_emb.inv_freq") == std::string::npos) {
        error = "unexpected tensor \"" + name + "\" (not part of this " + c.model_type + " with " +
                std::to_string(c.num_hidden_layers) + " layers)";
        break;
      }
    }
  }
  if (!error.empty()) return invalid_argument(dir + ": " + error);

  // RoPE frequencies that do not depend on the sequence length.
  const at::TensorOptions f32 = at::TensorOptions().device(at::Device(device)).dtype(at::kFloat);
  const RopeScaling& r = c.rope_scaling;
  at::Tensor inv = base_inv_freq(c.rope_theta, D, f32);
  if (r.type == "linear") {
    inv = inv / r.factor;
  } else if (r.type == "llama3") {
    const double old_len = static_cast<double>(r.original_max_position_embeddings);
    const double low_wavelen = old_len / r.low_freq_factor, high_wavelen = old_len / r.high_freq_factor;
    at::Tensor wavelen = 2 * M_PI / inv;
    at::Tensor scaled = at::where(wavelen > low_wavelen, inv / r.factor, inv);
    at::Tensor smooth = (old_len / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
    at::Tensor smoothed = (1 - smooth) * scaled / r.factor + smooth * scaled;
    at::Tensor medium = (wavelen < high_wavelen).logical_not().logical_and((wavelen > low_wavelen).logical_not());
    inv = at::where(medium, smoothed, scaled);
  }
  m->inv_freq_ = inv;

  std::vector<std::string> paths = {"", "model", "model.embed_tokens", "model.layers"};
  auto ids = std::make_shared<Ids>();
  auto add = [&](const std::string& path) {
    paths.push_back(path);
    return static_cast<int>(paths.size() - 1);
  };
  ids->root = 0;
  ids->model = 1;
  ids->embed = 2;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i);
    Ids::PerLayer l;
    l.block = add(p);
    l.attn = add(p + ".self_attn");
    l.q = add(p + ".self_attn.q_proj");
    l.k = add(p + ".self_attn.k_proj");
    l.v = add(p + ".self_attn.v_proj");
    l.o = add(p + ".self_attn.o_proj");
    l.mlp = add(p + ".mlp");
    l.gate = add(p + ".mlp.gate_proj");
    l.up = add(p + ".mlp.up_proj");
    l.down = add(p + ".mlp.down_proj");
    l.act = add(p + ".mlp.act_fn");
    l.in_norm = add(p + ".input_layernorm");
    l.post_norm = add(p + ".post_attention_layernorm");
    ids->layers.push_back(l);
  }
  ids->norm = add("model.norm");
  ids->rotary = add("model.rotary_emb");
  ids->lm_head = add("lm_head");
  m->ids_ = std::move(ids);
  m->set_module_paths(std::move(paths));
  return m;
}

at::Tensor LlamaModel::inv_freq(const at::Tensor& position_ids) const {
  const RopeScaling& r = config_.rope_scaling;
  // A scan (meta tensors) has no positions to read; the shape is the same.
  if (r.type != "dynamic" || position_ids.is_meta()) return inv_freq_;
  const int64_t seq_len = position_ids.max().item<int64_t>() + 1;
  const double max_pos = static_cast<double>(config_.max_position_embeddings);
  if (static_cast<double>(seq_len) <= max_pos) return inv_freq_;
  const double D = static_cast<double>(config_.head_size());
  const double base =
      config_.rope_theta * std::pow(r.factor * static_cast<double>(seq_len) / max_pos - (r.factor - 1), D / (D - 2));
  return base_inv_freq(base, config_.head_size(), inv_freq_.options());
}

at::Tensor LlamaModel::layer(int index, const at::Tensor& input, Step& step, HookSink* sink) {
  const Layer& L = *layers_[index];
  const Ids::PerLayer& id = ids_->layers[index];
  const LlamaConfig& c = config_;
  const int64_t H = c.num_attention_heads, KVH = c.kv_heads(), D = c.head_size();
  const double eps = c.rms_norm_eps;
  return hooked_tuple(*this, sink, id.block, input, false, [&](const at::Tensor& x) {
    at::Tensor h = hooked(*this, sink, id.in_norm, x, [&](const at::Tensor& t) { return rms_norm(t, L.in_norm, eps); });
    at::Tensor attn = hooked_tuple(*this, sink, id.attn, h, true, [&](const at::Tensor& t) {
      const int64_t B = t.size(0), T = t.size(1);
      at::Tensor q = hooked(*this, sink, id.q, t, [&](const at::Tensor& u) { return linear(u, L.q_w, L.q_b); });
      at::Tensor k = hooked(*this, sink, id.k, t, [&](const at::Tensor& u) { return linear(u, L.k_w, L.k_b); });
      at::Tensor v = hooked(*this, sink, id.v, t, [&](const at::Tensor& u) { return linear(u, L.v_w, L.v_b); });
      q = q.view({B, T, H, D}).transpose(1, 2);
      k = k.view({B, T, KVH, D}).transpose(1, 2);
      v = v.view({B, T, KVH, D}).transpose(1, 2);
      q = q * step.cos + rotate_half(q) * step.sin;
      k = k * step.cos + rotate_half(k) * step.sin;
      k = repeat_kv(internal::append_cache(step.cache.keys[index], k), H / KVH);
      v = repeat_kv(internal::append_cache(step.cache.values[index], v), H / KVH);
      at::Tensor w = at::matmul(q, k.transpose(2, 3)) * std::pow(static_cast<double>(D), -0.5);
      w = at::softmax(internal::mask_scores(w, step.allowed), -1, at::kFloat).to(q.scalar_type());
      at::Tensor o = at::matmul(w, v).transpose(1, 2).contiguous().reshape({B, T, H * D});
      return hooked(*this, sink, id.o, o, [&](const at::Tensor& u) { return linear(u, L.o_w, L.o_b); });
    });
    at::Tensor r = x + attn;
    at::Tensor h2 =
        hooked(*this, sink, id.post_norm, r, [&](const at::Tensor& t) { return rms_norm(t, L.post_norm, eps); });
    // transformers' order: gate_proj, act_fn, up_proj, down_proj.
    at::Tensor mlp = hooked(*this, sink, id.mlp, h2, [&](const at::Tensor& t) {
      at::Tensor g = hooked(*this, sink, id.gate, t, [&](const at::Tensor& u) { return linear(u, L.gate_w, L.gate_b); });
      g = hooked(*this, sink, id.act, g, [](const at::Tensor& u) { return at::silu(u); });
      at::Tensor up = hooked(*this, sink, id.up, t, [&](const at::Tensor& u) { return linear(u, L.up_w, L.up_b); });
      return hooked(*this, sink, id.down, g * up, [&](const at::Tensor& u) { return linear(u, L.down_w, L.down_b); });
    });
    return r + mlp;
  });
}

c10::IValue LlamaModel::forward(std::vector<c10::IValue> inputs, HookSink* sink) {
  if (inputs.size() != 1 || !inputs[0].isTensor()) {
    throw std::invalid_argument(config_.model_type + " takes one input: input_ids, an integer tensor [batch, seq]");
  }
  KvCache cache;
  StepInputs in;
  in.input_ids = inputs[0].toTensor();
  return forward_step(in, cache, sink);
}

at::Tensor LlamaModel::forward_step(const StepInputs& step_in, KvCache& cache, HookSink* sink) {
  c10::InferenceMode guard(sink == nullptr || !sink->wants_grad());
  const std::string& name = config_.model_type;
  at::Tensor ids = step_in.input_ids;
  if (ids.dim() != 2 || !at::isIntegralType(ids.scalar_type(), false)) {
    throw std::invalid_argument(name + " input_ids must be an integer tensor [batch, seq], got " +
                                std::string(c10::toString(ids.scalar_type())) + " " + c10::str(ids.sizes()));
  }
  const int64_t past = cache.length(), T = ids.size(1);
  if (T == 0 || ids.size(0) == 0 || past + T > max_positions()) {
    throw std::invalid_argument(name + " sequence length " + std::to_string(past + T) + " is outside [1, " +
                                std::to_string(max_positions()) + "]");
  }
  // Checked where the ids are (a scan moves them to the meta device, which has no values).
  if (!ids.is_meta()) {
    const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
    if (lo < 0 || hi >= config_.vocab_size) {
      throw std::invalid_argument(name + " token id " + std::to_string(lo < 0 ? lo : hi) +
                                  " is outside the vocabulary [0, " + std::to_string(config_.vocab_size) + ")");
    }
  }
  ids = ids.to(at::Device(device_), at::kLong);
  if (cache.keys.empty()) {
    cache.keys.resize(layers_.size());
    cache.values.resize(layers_.size());
  }
  const auto opts = ids.options();
  const Ids& id = *ids_;
  auto body = [&](const at::Tensor& input_ids) {
    at::Tensor hidden = hooked_tuple(*this, sink, id.model, input_ids, false, [&](const at::Tensor& x) {
      // From the ids as the hooks left them (an intervention may change their length).
      at::Tensor pos = step_in.position_ids.defined() ? step_in.position_ids.to(opts)
                                                      : internal::default_positions(past, x.size(1), opts);
      Step step{cache, internal::step_mask(step_in, past, x.size(1), opts), {}, {}};
      at::Tensor h = hooked(*this, sink, id.embed, x, [&](const at::Tensor& t) { return internal::embedding(embed_, t); });
      // model.rotary_emb(hidden, position_ids) -> (cos, sin), as transformers computes them.
      at::Tensor inv = inv_freq(pos);
      at::Tensor freqs = at::matmul(inv.unsqueeze(0).unsqueeze(2).expand({pos.size(0), -1, 1}),
                                    pos.unsqueeze(1).to(at::kFloat))
                             .transpose(1, 2);
      at::Tensor emb = at::cat({freqs, freqs}, -1);
      c10::IValue rot = c10::ivalue::Tuple::create({emb.cos().to(h.scalar_type()), emb.sin().to(h.scalar_type())});
      if (sink != nullptr) {
        c10::IValue in(h);
        sink->on_input(id.rotary, 0, in);
        sink->on_output(id.rotary, rot);
        if (!rot.isTuple() || rot.toTupleRef().elements().size() != 2 || !rot.toTupleRef().elements()[0].isTensor() ||
            !rot.toTupleRef().elements()[1].isTensor()) {
          throw std::runtime_error("module \"model.rotary_emb\": its output must stay a (cos, sin) tuple of tensors");
        }
      }
      step.cos = rot.toTupleRef().elements()[0].toTensor().unsqueeze(1);
      step.sin = rot.toTupleRef().elements()[1].toTensor().unsqueeze(1);
      for (size_t i = 0; i < layers_.size(); ++i) h = layer(static_cast<int>(i), h, step, sink);
      return hooked(*this, sink, id.norm, h, [&](const at::Tensor& t) { return rms_norm(t, norm_w_, config_.rms_norm_eps); });
    });
    return hooked(*this, sink, id.lm_head, hidden, [&](const at::Tensor& t) { return at::linear(t, lm_head_); });
  };
  return hooked(*this, sink, id.root, ids, body);
}

}  // namespace loom::runtime
