// Hybrid execution: mid-run, the server streams block 0's attention output
// to this program; the callback here zeroes one head's slice, the server
// sets the reply back into the model and the run continues. A log node
// reports a value on the way. The example then runs the same trace locally
// (the callback in-process) and checks that the results are bitwise equal.
// It also submits the job without waiting and attaches later with the
// handler, as a client that went away and came back would.
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

namespace {

constexpr int64_t kHead = 1;

// Zeroes head kHead in an attention output [batch, seq, n_embd].
at::Tensor zero_head(const at::Tensor& attn, int64_t n_head) {
  const int64_t d = attn.size(-1) / n_head;
  at::Tensor out = attn.clone();
  out.slice(-1, kHead * d, (kHead + 1) * d).zero_();
  return out;
}

}  // namespace

int main() {
  const char* key_env = std::getenv("LOOM_MODEL");
  std::string key = key_env != nullptr ? key_env : "gpt2-tiny";
  if (std::getenv("LOOM_HOST") == nullptr || std::getenv("LOOM_MODEL_PATH") == nullptr) {
    std::cerr << "example-hybrid-stream needs LOOM_HOST, LOOM_API_KEY and LOOM_MODEL_PATH (scripts/demo sets them)\n";
    return 2;
  }
  try {
    loom::client::Client client;
    loom::client::RemoteModel model = client.model(key);
    auto local_model = example::load_or_exit(example::checkpoint_dir());
    const int64_t n_head = example::n_head(example::checkpoint_dir());

    at::Tensor ids = at::arange(12, at::kLong).view({2, 6}) * 31 % 1000;
    loom::client::Trace tr = model.trace({ids});
    loom::HookPoint attn = tr.module("transformer.h.0.attn").output(0);
    attn.set(tr.stream("zero_head", attn));  // the server waits here for our reply
    tr.log("block 0 output mean", tr.module("transformer.h.0").output(0).mean({0, 1, 2}));
    tr.output().save("logits");
    int calls = 0;
    tr.on_stream("zero_head", [&](const at::Tensor& t) {
      ++calls;
      std::cout << "  callback zero_head: got " << t.sizes() << ", zeroing head " << kHead << "\n";
      return zero_head(t, n_head);
    });
    auto print_log = [](const std::string& text, const std::string& value) {
      std::cout << "  LOG " << text << ": " << value << "\n";
    };

    std::cout << "-- remote, the callback answered from here\n";
    loom::runtime::TraceResult remote = tr.run({.remote = true, .no_cache = true, .on_log = print_log});

    std::cout << "-- remote, submitted without waiting, attached later with the handler\n";
    std::string job = tr.submit({.no_cache = true});
    std::cout << "submitted job " << job << "\n";
    client.on_stream("zero_head", [&](const at::Tensor& t) {
      ++calls;
      return zero_head(t, n_head);
    });
    loom::runtime::TraceResult attached = client.attach(job);

    std::cout << "-- local, the callback in-process\n";
    tr.set_local_model(*local_model);
    loom::runtime::TraceResult local = tr.run({.on_log = print_log});

    loom::client::Trace plain = model.trace({ids});
    plain.output().save("logits");
    plain.set_local_model(*local_model);
    at::Tensor unedited = plain.run().at("logits");

    example::check(calls == 3, "the callback ran once per run (3)");
    example::check(at::equal(remote.at("logits"), local.at("logits")), "remote == local (bitwise)");
    example::check(at::equal(attached.at("logits"), local.at("logits")), "attached later == local (bitwise)");
    example::check(!at::equal(local.at("logits"), unedited), "zeroing the head changed the logits");
  } catch (const std::exception& e) {
    std::cerr << "example-hybrid-stream: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
