// A normal client's blocking remote runs while the server is under hostile
// load (tests/server/hostile_load.h): 2,000 idle connections, 50 slowloris
// clients and a zstd bomb posted back to back. Latency p50/p99 of the whole
// run (submit, wait, result), against the same runs on an idle server.
#include <ATen/ATen.h>

#include <iostream>
#include <thread>

#include "client/client.h"
#include "client/trace.h"
#include "tests/bench/bench.h"
#include "tests/bench/bench_server.h"
#include "tests/server/hostile_load.h"

namespace loom::bench {

void run_load(Context& ctx) {
  loom::testing::raise_fd_limit();
  BenchServer server(/*blas_threads=*/1);
  const client::ClientOptions co = server.client_options();
  at::Tensor ids = at::arange(16, at::kLong).view({1, 16});
  client::Client c(co);
  client::RemoteModel model = c.model("gpt2-tiny");
  auto runs = [&](int n) {
    std::vector<double> ms;
    for (int i = 0; i < n; ++i) {
      client::Trace tr = model.trace({ids});
      tr.module("transformer.h.1").output(0).save("h1");
      tr.output().save("logits");
      auto t0 = std::chrono::steady_clock::now();
      tr.run({.remote = true, .quiet = true, .no_cache = true});
      ms.push_back(seconds_since(t0) * 1e3);
    }
    return ms;
  };
  (void)runs(20);  // warm up
  std::vector<double> idle = runs(200);
  ctx.add("load.idle_run_p50_ms", percentile(idle, 0.5), "ms");
  ctx.add("load.idle_run_p99_ms", percentile(idle, 0.99), "ms");
  loom::testing::HostileLoad load(server.http_port(), {2000, 50, true, server.api_key()});
  load.start();
  // Measured once the first bomb has been answered, so bombs are in flight
  // all along.
  while (load.bombs() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::vector<double> loaded = runs(500);
  ctx.add("load.hostile_run_p50_ms", percentile(loaded, 0.5), "ms");
  ctx.add("load.hostile_run_p99_ms", percentile(loaded, 0.99), "ms", "< 50");
  ctx.add("load.idle_connections_held", static_cast<double>(load.idle_open()), "conns", ">= 2000");
  ctx.add("load.slowloris_lines_sent", static_cast<double>(load.slowloris_lines()), "lines");
  ctx.add("load.bombs_refused_413", static_cast<double>(load.bombs_refused()), "bombs");
  ctx.add("load.bombs_posted", static_cast<double>(load.bombs()), "bombs");
  ctx.add("load.bomb_wire_kib", static_cast<double>(load.bomb_bytes()) / 1024, "KiB");
  load.stop();
}

}  // namespace loom::bench
