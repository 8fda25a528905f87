// Activation patching: run a clean and a corrupted prompt as two invokes of
// one batched forward pass, copy the clean run's residual stream at the last
// position into the corrupted run, one layer at a time, and measure how much
// of the clean prediction each layer restores.
#include <ATen/ATen.h>

#include <iostream>

#include "example_model.h"
#include "runtime/gpt2.h"
#include "runtime/tensor_data.h"
#include "client/trace.h"

int main() {
  auto model = example::load_or_exit(example::checkpoint_dir());
  const auto& cfg = dynamic_cast<loom::runtime::Gpt2Model&>(*model).config();
  at::Tensor clean = at::arange(8, at::kLong).view({1, 8}) * 11 % cfg.vocab_size;
  at::Tensor corrupt = clean.clone();
  corrupt[0][2] = 999 % cfg.vocab_size;  // one token changed

  auto logit_distance = [](const at::Tensor& a, const at::Tensor& b) {
    return (a[0][-1] - b[0][-1]).norm().item<double>();
  };
  double baseline = 0;
  for (int64_t layer = -1; layer < cfg.n_layer; ++layer) {
    loom::client::Trace tr(*model);
    loom::client::TraceInvoke c = tr.invoke({clean});
    loom::client::TraceInvoke x = tr.invoke({corrupt});
    if (layer >= 0) {
      // mask is 1 at the last position: patched = clean there, corrupted elsewhere.
      at::Tensor m = at::zeros({1, clean.size(1), 1});
      m[0][-1][0] = 1;
      loom::Value mask = tr.constant(loom::runtime::to_tensor_data(m).value());
      std::string block = "transformer.h." + std::to_string(layer);
      loom::HookPoint target = x.module(block).output(0);
      target.set(c.module(block).output(0) * mask + target * (1.0 - mask));
    }
    c.output().save("clean");
    x.output().save("patched");
    loom::runtime::TraceResult r;
    try {
      r = tr.run();
    } catch (const loom::client::LoomError& e) {
      std::cerr << e.what() << "\n";
      return 1;
    }
    double d = logit_distance(r.at("clean"), r.at("patched"));
    if (layer < 0) {
      baseline = d;
      std::cout << "no patch: distance of the corrupted logits from the clean ones = " << d << "\n";
      example::check(d > 0, "the corruption changes the prediction");
    } else {
      std::cout << "patch layer " << layer << ": distance = " << d << " (" << 100.0 * (1 - d / baseline)
                << "% restored)\n";
    }
    if (layer == cfg.n_layer - 1) {
      example::check(at::allclose(r.at("clean")[0][-1], r.at("patched")[0][-1], 1e-5, 1e-5),
                     "patching the last block at the last position restores the clean prediction exactly");
    }
  }
  return 0;
}
