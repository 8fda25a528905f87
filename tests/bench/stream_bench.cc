// Hybrid execution on loopback: the round trip of one STREAM request and its
// reply for a 16 KiB tensor. One job chains many stream nodes (each node's
// input is the previous reply) with an identity callback; the time between
// consecutive callback calls on the client is one full round trip: reply
// encoded and sent, the server decoding and checking it, the next request
// encoded and sent, the client decoding it. The real loom-server runs as a
// subprocess.
#include <ATen/ATen.h>

#include <fstream>

#include "client/client.h"
#include "client/trace.h"
#include "runtime/gpt2_config.h"
#include "tests/bench/bench.h"
#include "tests/bench/bench_server.h"

namespace loom::bench {

void run_stream(Context& ctx) {
  using clock = std::chrono::steady_clock;
  BenchServer server;
  const client::ClientOptions co = server.client_options();
  client::Client c(co);
  client::RemoteModel model = c.model("gpt2-tiny");

  constexpr int kStreams = 500, kWarmup = 50;
  at::Tensor ids = at::arange(64, at::kLong).view({1, 64});  // block output [1, 64, 64] float: 16 KiB
  std::vector<double> rtt_us;
  for (int round = 0; round < 2; ++round) {
    client::Trace tr = model.trace({ids});
    HookPoint h0 = tr.module("transformer.h.0").output(0);
    Value v = h0;
    for (int i = 0; i < kStreams; ++i) v = tr.stream("echo", v);
    h0.set(v);
    tr.output().save("logits");
    clock::time_point last{};
    int calls = 0;
    tr.on_stream("echo", [&](const at::Tensor& t) {
      auto now = clock::now();
      if (calls++ >= kWarmup) rtt_us.push_back(std::chrono::duration<double, std::micro>(now - last).count());
      last = now;
      if (t.nbytes() != 16384) throw std::runtime_error("the streamed tensor is not 16 KiB");
      return t;
    });
    tr.run({.remote = true, .quiet = true, .no_cache = true});
  }
  ctx.add("stream.rtt_p50_us", percentile(rtt_us, 0.5), "us", "<= 300");
  ctx.add("stream.rtt_p99_us", percentile(rtt_us, 0.99), "us");
}

}  // namespace loom::bench
