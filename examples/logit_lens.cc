// Logit lens: capture every block's hidden state in one traced forward pass,
// project each through the final layer norm and the (tied) unembedding, and
// see which token each layer would predict. The last layer's lens must equal
// the model's own logits.
#include <ATen/ATen.h>

#include <iostream>

#include "example_model.h"
#include "runtime/gpt2.h"
#include "runtime/safetensors.h"
#include "client/trace.h"

int main() {
  std::string dir = example::checkpoint_dir();
  auto model = example::load_or_exit(dir);
  auto* gpt2 = dynamic_cast<loom::runtime::Gpt2Model*>(model.get());
  example::check(gpt2 != nullptr, "model is a GPT-2 checkpoint");
  const auto& cfg = gpt2->config();

  at::Tensor ids = at::arange(10, at::kLong).view({1, 10}) * 7 % cfg.vocab_size;
  loom::client::Trace tr(*model, {ids});  // the same Trace runs remotely with a RemoteModel
  for (int64_t i = 0; i < cfg.n_layer; ++i) {
    tr.module("transformer.h." + std::to_string(i)).output(0).save("h" + std::to_string(i));
  }
  tr.output().save("logits");
  loom::runtime::TraceResult result;
  try {
    result = tr.run();
  } catch (const loom::client::LoomError& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }

  auto weights = loom::runtime::read_safetensors_file(dir + "/model.safetensors");
  example::check(weights.ok(), "read the checkpoint's weights");
  auto w = [&](const std::string& name) {
    at::Tensor t = weights->find(name);
    return t.defined() ? t : weights->find("transformer." + name);
  };
  at::Tensor wte = w("wte.weight"), ln_w = w("ln_f.weight"), ln_b = w("ln_f.bias");
  at::Tensor lens_last;
  for (int64_t i = 0; i < cfg.n_layer; ++i) {
    at::Tensor h = result.at("h" + std::to_string(i));
    at::Tensor lens = at::matmul(at::layer_norm(h, {cfg.n_embd}, ln_w, ln_b, cfg.layer_norm_epsilon), wte.t());
    std::cout << "layer " << i << ": predicted next token at the last position = "
              << lens[0][-1].argmax().item<int64_t>() << "\n";
    lens_last = lens;
  }
  const at::Tensor& logits = result.at("logits");
  std::cout << "model: predicted next token = " << logits[0][-1].argmax().item<int64_t>() << "\n";
  example::check(at::allclose(lens_last, logits, 1e-4, 1e-4), "the last layer's lens equals the model's logits");
  return 0;
}
