// Steering: add a vector to the residual stream after block 0 and check that
// the model continues from the steered state: block 1's input is exactly the
// block-0 output plus the vector, and the predictions move.
#include <ATen/ATen.h>

#include <iostream>

#include "example_model.h"
#include "runtime/gpt2.h"
#include "runtime/tensor_data.h"
#include "client/trace.h"

int main() {
  auto model = example::load_or_exit(example::checkpoint_dir());
  const auto& cfg = dynamic_cast<loom::runtime::Gpt2Model&>(*model).config();
  at::Tensor ids = at::arange(6, at::kLong).view({1, 6}) * 5 % cfg.vocab_size;
  at::Tensor direction = at::randn({cfg.n_embd}, at::make_generator<at::CPUGeneratorImpl>(1)) * 4.0;

  loom::client::Trace plain(*model, {ids});
  plain.module("transformer.h.0").output(0).save("h0");
  plain.output().save("logits");

  loom::client::Trace tr(*model, {ids});
  loom::Value steer = tr.constant(loom::runtime::to_tensor_data(direction).value());
  loom::HookPoint h0 = tr.module("transformer.h.0").output(0);
  h0.set(h0 + steer);
  tr.module("transformer.h.1").input(0).save("h1_in");
  tr.output().save("logits");
  loom::runtime::TraceResult base, steered;
  try {
    base = plain.run();
    steered = tr.run();
  } catch (const loom::client::LoomError& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  example::check(at::allclose(steered.at("h1_in"), base.at("h0") + direction),
                 "block 1 sees block 0's output plus the steering vector");
  double moved = (steered.at("logits") - base.at("logits")).abs().max().item<double>();
  std::cout << "largest logit change: " << moved << "\n";
  example::check(moved > 1e-3, "the steering vector changes the logits");
  std::cout << "next token: " << base.at("logits")[0][-1].argmax().item<int64_t>() << " -> "
            << steered.at("logits")[0][-1].argmax().item<int64_t>() << "\n";
  return 0;
}
