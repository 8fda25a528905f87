#include "runtime/gpt2.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "runtime/internal/decoder.h"
#include "runtime/internal/hooks.h"
#include "runtime/safetensors.h"

namespace loom::runtime {
using internal::hooked;
using internal::hooked_tuple;

struct Gpt2Model::Layer {
  at::Tensor ln_1_w, ln_1_b, c_attn_w, c_attn_b, attn_proj_w, attn_proj_b;
  at::Tensor ln_2_w, ln_2_b, c_fc_w, c_fc_b, mlp_proj_w, mlp_proj_b;
};

// Module ids (indexes into module_paths()) of the hook points.
struct Gpt2Model::Ids {
  int root, transformer, wte, wpe, drop, ln_f, lm_head;
  struct PerLayer {
    int block, ln_1, attn, c_attn, c_proj, attn_dropout, resid_dropout, ln_2, mlp, c_fc, act, mlp_proj, dropout;
  };
  std::vector<PerLayer> layers;
};

namespace {

// Conv1D as in Hugging Face: y = x @ W + b with W laid out [in, out].
at::Tensor conv1d(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  auto out_shape = x.sizes().vec();
  out_shape.back() = w.size(1);
  return at::addmm(b, x.reshape({-1, x.size(-1)}), w).view(out_shape);
}

at::Tensor gelu_new(const at::Tensor& x) {
  const double k = std::sqrt(2.0 / M_PI);
  return 0.5 * x * (1.0 + at::tanh(k * (x + 0.044715 * at::pow(x, 3.0))));
}

}  // namespace

void Gpt2Model::for_each_tensor(const std::function<void(at::Tensor&)>& f) {
  for (at::Tensor* t : {&wte_, &wpe_, &ln_f_w_, &ln_f_b_, &lm_head_}) f(*t);
  for (auto& L : layers_) {
    for (at::Tensor* t : {&L->ln_1_w, &L->ln_1_b, &L->c_attn_w, &L->c_attn_b, &L->attn_proj_w, &L->attn_proj_b,
                          &L->ln_2_w, &L->ln_2_b, &L->c_fc_w, &L->c_fc_b, &L->mlp_proj_w, &L->mlp_proj_b}) {
      f(*t);
    }
  }
}

Result<std::unique_ptr<Gpt2Model>> Gpt2Model::load(const std::string& dir, const std::string& device,
                                                   const std::function<void(double)>& progress) {
  std::ifstream cfg_in(dir + "/config.json");
  if (!cfg_in) return invalid_argument(dir + ": no config.json (a GPT-2 checkpoint directory needs one)");
  std::stringstream cfg_text;
  cfg_text << cfg_in.rdbuf();
  auto config = parse_gpt2_config(cfg_text.str());
  if (!config.ok()) return config.status().with_context(dir + "/config.json");

  if (progress) progress(0.0);
  // On the meta device (scans) only the header is read.
  auto file = device == "meta" ? read_safetensors_shapes(dir + "/model.safetensors")
                               : read_safetensors_file(dir + "/model.safetensors");
  if (!file.ok()) return file.status();
  // Reading is the first half of loading, placing the tensors the second.
  if (progress) progress(0.5);

  std::map<std::string, at::Tensor> params;
  for (auto& nt : file->tensors) {
    std::string name = nt.name;
    if (name.rfind("transformer.", 0) == 0) name = name.substr(12);
    auto ends_with = [&](const std::string& suffix) {
      return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (ends_with(".attn.bias") || ends_with(".attn.masked_bias")) continue;  // causal-mask buffers
    params[name] = std::move(nt.tensor);
  }

  std::unique_ptr<Gpt2Model> m(new Gpt2Model());
  m->config_ = *config;
  m->device_ = device;
  const Gpt2Config& c = m->config_;
  at::Device dev(device);
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
    return it->second.to(dev, at::kFloat);
  };
  const int64_t C = c.n_embd, I = c.inner_dim();
  m->wte_ = take("wte.weight", {c.vocab_size, C});
  m->wpe_ = take("wpe.weight", {c.n_positions, C});
  m->ln_f_w_ = take("ln_f.weight", {C});
  m->ln_f_b_ = take("ln_f.bias", {C});
  for (int64_t i = 0; i < c.n_layer; ++i) {
    std::string p = "h." + std::to_string(i) + ".";
    auto L = std::make_shared<Layer>();
    L->ln_1_w = take(p + "ln_1.weight", {C});
    L->ln_1_b = take(p + "ln_1.bias", {C});
    L->c_attn_w = take(p + "attn.c_attn.weight", {C, 3 * C});
    L->c_attn_b = take(p + "attn.c_attn.bias", {3 * C});
    L->attn_proj_w = take(p + "attn.c_proj.weight", {C, C});
    L->attn_proj_b = take(p + "attn.c_proj.bias", {C});
    L->ln_2_w = take(p + "ln_2.weight", {C});
    L->ln_2_b = take(p + "ln_2.bias", {C});
    L->c_fc_w = take(p + "mlp.c_fc.weight", {C, I});
    L->c_fc_b = take(p + "mlp.c_fc.bias", {I});
    L->mlp_proj_w = take(p + "mlp.c_proj.weight", {I, C});
    L->mlp_proj_b = take(p + "mlp.c_proj.bias", {C});
    m->layers_.push_back(std::move(L));
  }
  // Official checkpoints tie lm_head to wte and omit it; some carry a copy.
  if (params.count("lm_head.weight")) {
    m->lm_head_ = take("lm_head.weight", {c.vocab_size, C});
  } else {
    m->lm_head_ = m->wte_;
  }
  if (error.empty()) {
    for (const auto& [name, t] : params) {
      if (!used.count(name)) {
        error = "unexpected tensor \"" + name + "\" (not part of a GPT-2 with " + std::to_string(c.n_layer) + " layers)";
        break;
      }
    }
  }
  if (!error.empty()) return invalid_argument(dir + "/model.safetensors: " + error);

  std::vector<std::string> paths = {"", "transformer", "transformer.wte", "transformer.wpe", "transformer.drop",
                                    "transformer.h"};
  auto ids = std::make_shared<Ids>();
  auto add = [&](const std::string& path) {
    paths.push_back(path);
    return static_cast<int>(paths.size() - 1);
  };
  ids->root = 0;
  ids->transformer = 1;
  ids->wte = 2;
  ids->wpe = 3;
  ids->drop = 4;
  for (int64_t i = 0; i < c.n_layer; ++i) {
    std::string p = "transformer.h." + std::to_string(i);
    Ids::PerLayer l;
    l.block = add(p);
    l.ln_1 = add(p + ".ln_1");
    l.attn = add(p + ".attn");
    l.c_attn = add(p + ".attn.c_attn");
    l.c_proj = add(p + ".attn.c_proj");
    l.attn_dropout = add(p + ".attn.attn_dropout");
    l.resid_dropout = add(p + ".attn.resid_dropout");
    l.ln_2 = add(p + ".ln_2");
    l.mlp = add(p + ".mlp");
    l.c_fc = add(p + ".mlp.c_fc");
    l.mlp_proj = add(p + ".mlp.c_proj");
    l.act = add(p + ".mlp.act");
    l.dropout = add(p + ".mlp.dropout");
    ids->layers.push_back(l);
  }
  ids->ln_f = add("transformer.ln_f");
  ids->lm_head = add("lm_head");
  m->ids_ = std::move(ids);
  m->set_module_paths(std::move(paths));
  return m;
}

// What every block of one step shares.
struct Gpt2Model::Step {
  KvCache& cache;
  at::Tensor allowed;  // internal::step_mask
};

std::vector<int64_t> Gpt2Model::eos_token_ids() const {
  if (config_.eos_token_id >= 0) return {config_.eos_token_id};
  if (config_.vocab_size == 50257) return {50256};  // <|endoftext|>
  return {};
}

at::Tensor Gpt2Model::block(int layer, const at::Tensor& input, Step& step, HookSink* sink) {
  const Layer& L = *layers_[layer];
  const Ids::PerLayer& id = ids_->layers[layer];
  const Gpt2Config& c = config_;
  const int64_t H = c.n_head, D = c.n_embd / c.n_head;
  return hooked_tuple(*this, sink, id.block, input, false, [&](const at::Tensor& x) {
    at::Tensor h = hooked(*this, sink, id.ln_1, x, [&](const at::Tensor& t) {
      return at::layer_norm(t, {c.n_embd}, L.ln_1_w, L.ln_1_b, c.layer_norm_epsilon);
    });
    at::Tensor attn = hooked_tuple(*this, sink, id.attn, h, true, [&](const at::Tensor& t) {
      const int64_t B = t.size(0), T = t.size(1);
      at::Tensor qkv = hooked(*this, sink, id.c_attn, t, [&](const at::Tensor& u) {
        return conv1d(u, L.c_attn_w, L.c_attn_b);
      });
      auto parts = qkv.split(c.n_embd, 2);
      auto heads = [&](const at::Tensor& u) { return u.view({B, T, H, D}).permute({0, 2, 1, 3}); };
      at::Tensor q = heads(parts[0]);
      at::Tensor k = internal::append_cache(step.cache.keys[layer], heads(parts[1]));
      at::Tensor v = internal::append_cache(step.cache.values[layer], heads(parts[2]));
      at::Tensor w = at::matmul(q, k.transpose(-1, -2));
      w = w / at::full({}, std::pow(static_cast<double>(D), 0.5), w.options());
      w = at::softmax(internal::mask_scores(w, step.allowed), -1);
      w = hooked(*this, sink, id.attn_dropout, w, [](const at::Tensor& u) { return u; });
      at::Tensor o = at::matmul(w, v).permute({0, 2, 1, 3}).contiguous().view({B, T, c.n_embd});
      o = hooked(*this, sink, id.c_proj, o, [&](const at::Tensor& u) {
        return conv1d(u, L.attn_proj_w, L.attn_proj_b);
      });
      return hooked(*this, sink, id.resid_dropout, o, [](const at::Tensor& u) { return u; });
    });
    at::Tensor r = attn + x;
    at::Tensor h2 = hooked(*this, sink, id.ln_2, r, [&](const at::Tensor& t) {
      return at::layer_norm(t, {c.n_embd}, L.ln_2_w, L.ln_2_b, c.layer_norm_epsilon);
    });
    at::Tensor mlp = hooked(*this, sink, id.mlp, h2, [&](const at::Tensor& t) {
      at::Tensor u = hooked(*this, sink, id.c_fc, t, [&](const at::Tensor& z) {
        return conv1d(z, L.c_fc_w, L.c_fc_b);
      });
      u = hooked(*this, sink, id.act, u, [](const at::Tensor& z) { return gelu_new(z); });
      u = hooked(*this, sink, id.mlp_proj, u, [&](const at::Tensor& z) {
        return conv1d(z, L.mlp_proj_w, L.mlp_proj_b);
      });
      return hooked(*this, sink, id.dropout, u, [](const at::Tensor& z) { return z; });
    });
    return r + mlp;
  });
}

c10::IValue Gpt2Model::forward(std::vector<c10::IValue> inputs, HookSink* sink) {
  c10::InferenceMode guard(sink == nullptr || !sink->wants_grad());
  if (inputs.size() != 1 || !inputs[0].isTensor()) {
    throw std::invalid_argument("GPT-2 takes one input: input_ids, an integer tensor [batch, seq]");
  }
  KvCache cache;
  StepInputs in;
  in.input_ids = inputs[0].toTensor();
  return forward_step(in, cache, sink);
}

at::Tensor Gpt2Model::forward_step(const StepInputs& step_in, KvCache& cache, HookSink* sink) {
  c10::InferenceMode guard(sink == nullptr || !sink->wants_grad());
  at::Tensor ids = step_in.input_ids;
  if (ids.dim() != 2 || !at::isIntegralType(ids.scalar_type(), false)) {
    throw std::invalid_argument("GPT-2 input_ids must be an integer tensor [batch, seq], got " +
                                std::string(c10::toString(ids.scalar_type())) + " " + c10::str(ids.sizes()));
  }
  const int64_t past = cache.length(), T = ids.size(1);
  if (T == 0 || past + T > config_.n_positions) {
    throw std::invalid_argument("GPT-2 sequence length " + std::to_string(past + T) + " is outside [1, " +
                                std::to_string(config_.n_positions) + "]");
  }
  // Checked where the ids are (a scan moves them to the meta device, which has no values).
  if (ids.numel() > 0 && !ids.is_meta()) {
    int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
    if (lo < 0 || hi >= config_.vocab_size) {
      throw std::invalid_argument("GPT-2 token id " + std::to_string(lo < 0 ? lo : hi) + " is outside the vocabulary [0, " +
                                  std::to_string(config_.vocab_size) + ")");
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
    at::Tensor hidden = hooked_tuple(*this, sink, id.transformer, input_ids, false, [&](const at::Tensor& x) {
      // From the ids as the hooks left them (an intervention may change their length).
      at::Tensor pos = step_in.position_ids.defined() ? step_in.position_ids.to(opts)
                                                      : internal::default_positions(past, x.size(1), opts);
      Step step{cache, internal::step_mask(step_in, past, x.size(1), opts)};
      at::Tensor te = hooked(*this, sink, id.wte, x, [&](const at::Tensor& t) { return internal::embedding(wte_, t); });
      at::Tensor pe = hooked(*this, sink, id.wpe, pos, [&](const at::Tensor& t) { return internal::embedding(wpe_, t); });
      at::Tensor h = hooked(*this, sink, id.drop, te + pe, [](const at::Tensor& t) { return t; });
      for (size_t i = 0; i < layers_.size(); ++i) h = block(static_cast<int>(i), h, step, sink);
      return hooked(*this, sink, id.ln_f, h, [&](const at::Tensor& t) {
        return at::layer_norm(t, {config_.n_embd}, ln_f_w_, ln_f_b_, config_.layer_norm_epsilon);
      });
    });
    return hooked(*this, sink, id.lm_head, hidden, [&](const at::Tensor& t) { return at::linear(t, lm_head_); });
  };
  return hooked(*this, sink, id.root, ids, body);
}

}  // namespace loom::runtime
