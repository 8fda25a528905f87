// The same trace, run three ways: remotely and blocking (live status line),
// remotely without waiting (submit, then wait_for and result by job ID), and
// locally on the same checkpoint. The saved tensors must be bitwise equal.
//
//   LOOM_HOST, LOOM_API_KEY   the server and key
//   LOOM_MODEL                the server's model key (default gpt2-tiny)
//   LOOM_MODEL_PATH           the same checkpoint, for the local run
#include <ATen/ATen.h>

#include <cstdlib>
#include <iostream>

#include "client/client.h"
#include "client/trace.h"
#include "example_model.h"

int main() {
  const char* key_env = std::getenv("LOOM_MODEL");
  std::string key = key_env != nullptr ? key_env : "gpt2-tiny";
  if (std::getenv("LOOM_HOST") == nullptr || std::getenv("LOOM_MODEL_PATH") == nullptr) {
    std::cerr << "example-remote-trace needs LOOM_HOST, LOOM_API_KEY and LOOM_MODEL_PATH (scripts/demo sets them)\n";
    return 2;
  }
  try {
    loom::client::Client client;
    loom::client::RemoteModel model = client.model(key);
    auto local_model = example::load_or_exit(example::checkpoint_dir());

    at::Tensor ids = at::arange(12, at::kLong).view({2, 6}) * 17 % 1000;
    loom::client::Trace tr = model.trace({ids});
    loom::HookPoint h0 = tr.module("transformer.h.0").output(0);
    tr.module("transformer.h.1").output(0).set(h0 * 0.5);
    h0.save("h0");
    tr.module("transformer.h.1.attn.attn_dropout").output().save("attention");
    tr.output().softmax(-1).save("probs");

    std::cout << "-- remote, blocking\n";
    loom::runtime::TraceResult blocking = tr.run({.remote = true, .no_cache = true});

    std::cout << "-- remote, non-blocking\n";
    std::string job = tr.submit({.remote = true, .no_cache = true});
    std::cout << "submitted job " << job << "\n";
    loom::client::JobStatus st = client.wait_for(job, std::chrono::milliseconds(50),
                                                 [](const loom::client::JobStatus& s) {
                                                   std::cout << "  poll: " << s.state_name << "\n";
                                                 });
    example::check(st.state == loom::client::JobState::kCompleted, "the non-blocking job completed");
    loom::runtime::TraceResult polled = client.result(job);

    std::cout << "-- local\n";
    tr.set_local_model(*local_model);
    loom::runtime::TraceResult local = tr.run();

    for (const char* name : {"h0", "attention", "probs"}) {
      example::check(at::equal(blocking.at(name), local.at(name)), std::string(name) + ": remote blocking == local (bitwise)");
      example::check(at::equal(polled.at(name), local.at(name)), std::string(name) + ": remote non-blocking == local (bitwise)");
    }
  } catch (const std::exception& e) {
    std::cerr << "example-remote-trace: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
