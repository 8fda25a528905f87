// A session: two traces in one job, one forward pass each. The first runs a
// long prompt and keeps block 2's residual stream at its last position; the
// second runs a shorter prompt and patches that vector into its own last
// position, a patch across prompts of different lengths that one batched
// pass cannot express. Remotely it is one job: one queue wait, one result.
//
// It checks itself against two separate runs: the second trace's logits must
// equal those of a plain trace with the vector set as a constant, bitwise.
#include <ATen/ATen.h>

#include <iostream>

#include "client/trace.h"
#include "example_model.h"
#include "runtime/gpt2.h"
#include "runtime/tensor_data.h"

int main() {
  auto model = example::load_or_exit(example::checkpoint_dir());
  const auto& cfg = dynamic_cast<loom::runtime::Gpt2Model&>(*model).config();
  at::Tensor long_prompt = at::arange(12, at::kLong).view({1, 12}) * 17 % cfg.vocab_size;
  at::Tensor short_prompt = at::arange(5, at::kLong).view({1, 5}) * 29 % cfg.vocab_size;
  const std::string block = "transformer.h." + std::to_string(std::min<int64_t>(2, cfg.n_layer - 1));
  try {
    loom::client::Trace session(*model);
    loom::client::TraceInvoke first = session.invoke({long_prompt});
    loom::Value kept = first.module(block).output(0).index({loom::Slice{}, -1});  // [1, C]
    kept.save("kept");
    session.next_trace();  // what follows is the second forward pass
    loom::client::TraceInvoke second = session.invoke({short_prompt});
    loom::HookPoint h = second.module(block).output(0);
    // Replace the last position: h[:, :-1] stays, h[:, -1] becomes the kept vector.
    h.set(loom::cat({h.slice(1, 0, -1), kept.unsqueeze(1)}, 1));
    second.output().save("logits");
    loom::runtime::TraceResult r = session.run();
    std::cout << "kept " << r.at("kept").sizes() << " from a " << long_prompt.size(1) << "-token prompt; patched into a "
              << short_prompt.size(1) << "-token prompt: logits " << r.at("logits").sizes() << "\n";

    // The same by hand: two jobs, the vector carried as a constant.
    loom::client::Trace by_hand(*model, {short_prompt});
    loom::HookPoint h2 = by_hand.module(block).output(0);
    loom::Value constant = by_hand.constant(loom::runtime::to_tensor_data(r.at("kept")).value());
    h2.set(loom::cat({h2.slice(1, 0, -1), constant.unsqueeze(1)}, 1));
    by_hand.output().save("logits");
    at::Tensor want = by_hand.run().at("logits");
    example::check(r.at("logits").equal(want), "the session equals two separate runs bitwise");
    loom::client::Trace plain(*model, {short_prompt});
    plain.output().save("logits");
    example::check(!plain.run().at("logits").equal(want), "the patch changed the second prompt's logits");
  } catch (const loom::client::LoomError& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return 0;
}
