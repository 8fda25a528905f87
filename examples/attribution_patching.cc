// Attribution patching: one forward and one backward pass estimate, for
// every layer at once, how much patching the clean run's residual stream
// into the corrupted run would move a metric (here the corrupted run's
// logit for the clean prediction at the last position):
//   effect(layer) ~= sum((h_clean - h_corrupt) * d metric / d h_corrupt)
// the first-order term of the patch (Nanda, "Attribution Patching"). Clean
// and corrupted prompts are two invokes of one batch; the gradients come
// from loom's backward pass through the hook points.
//
// It checks itself: the gradient must agree with a finite difference
// (patches of +-epsilon x (h_clean - h_corrupt) at one layer, run for real).
#include <ATen/ATen.h>

#include <cmath>
#include <iostream>

#include "client/trace.h"
#include "example_model.h"
#include "runtime/gpt2.h"
#include "runtime/tensor_data.h"

namespace {

using loom::client::Trace;
using loom::client::TraceInvoke;

std::string block(int64_t layer) { return "transformer.h." + std::to_string(layer); }

// The metric: the corrupted run's last-position logit for `token`.
loom::Value metric(TraceInvoke& x, int64_t token) { return x.output().index({0, -1, token}); }

}  // namespace

int main() {
  auto model = example::load_or_exit(example::checkpoint_dir());
  const auto& cfg = dynamic_cast<loom::runtime::Gpt2Model&>(*model).config();
  at::Tensor clean = at::arange(8, at::kLong).view({1, 8}) * 11 % cfg.vocab_size;
  at::Tensor corrupt = clean.clone();
  corrupt[0][2] = 999 % cfg.vocab_size;
  try {
    // The clean prediction, whose logit the metric follows.
    Trace first(*model, {clean});
    first.output().save("logits");
    const int64_t token = first.run().at("logits")[0][-1].argmax().item<int64_t>();

    // One pass: every layer's activations and gradients.
    Trace tr(*model);
    TraceInvoke c = tr.invoke({clean});
    TraceInvoke x = tr.invoke({corrupt});
    for (int64_t l = 0; l < cfg.n_layer; ++l) {
      loom::HookPoint hc = c.module(block(l)).output(0), hx = x.module(block(l)).output(0);
      hc.save("clean" + std::to_string(l));
      hx.save("corrupt" + std::to_string(l));
      hx.grad().save("grad" + std::to_string(l));
    }
    loom::Value m = metric(x, token);
    m.save("metric");
    tr.backward(m);
    loom::runtime::TraceResult r = tr.run();

    std::vector<double> effect(cfg.n_layer);
    for (int64_t l = 0; l < cfg.n_layer; ++l) {
      const std::string k = std::to_string(l);
      effect[l] = ((r.at("clean" + k) - r.at("corrupt" + k)) * r.at("grad" + k)).sum().item<double>();
      std::cout << "layer " << l << ": estimated effect of patching on the metric = " << effect[l] << "\n";
    }

    // The check: at the last layer, small real patches of +-epsilon x
    // (h_clean - h_corrupt) move the metric by epsilon x the estimate (a
    // central difference: its error is second order in epsilon).
    const int64_t l = cfg.n_layer - 1;
    const double eps = 1e-2;
    auto patched_metric = [&](double scale) {
      Trace patched(*model);
      TraceInvoke pc = patched.invoke({clean});
      TraceInvoke px = patched.invoke({corrupt});
      loom::HookPoint target = px.module(block(l)).output(0);
      target.set(target + (pc.module(block(l)).output(0) - target) * scale);
      metric(px, token).save("metric");
      return patched.run().at("metric").item<double>();
    };
    const double slope = (patched_metric(eps) - patched_metric(-eps)) / (2 * eps);
    std::cout << "finite difference at layer " << l << ": " << slope << " (estimate " << effect[l] << ")\n";
    example::check(std::abs(effect[l]) > 1e-6, "the estimate is not zero");
    example::check(std::abs(slope - effect[l]) <= 0.02 * std::abs(effect[l]) + 1e-6,
                   "the gradient agrees with a central finite difference within 2%");
  } catch (const loom::client::LoomError& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return 0;
}
