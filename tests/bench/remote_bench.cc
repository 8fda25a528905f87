// Remote cost on loopback: a blocking remote trace on a tiny model minus the
// same trace run locally (overhead p50/p99), and completed jobs per second
// with 32 concurrent clients; then a 1 GiB result fetched to a file
// (fetch_bench.cc). The real loom-server runs as a subprocess.
#include <ATen/ATen.h>

#include <atomic>
#include <fstream>
#include <iostream>
#include <thread>

#include "client/client.h"
#include "client/trace.h"
#include "runtime/gpt2_config.h"
#include "runtime/model.h"
#include "tests/bench/bench.h"
#include "tests/bench/bench_server.h"

namespace loom::bench {

void run_remote(Context& ctx) {
  using clock = std::chrono::steady_clock;
  // One BLAS thread on both sides: on 2 cores, OpenBLAS's spinning workers
  // would otherwise take the CPU from the server's I/O thread and the clients.
  BenchServer server(/*blas_threads=*/1);
  const client::ClientOptions co = server.client_options();
  auto local = runtime::load_model(server.checkpoint()).value();
  at::Tensor ids = at::arange(16, at::kLong).view({1, 16});
  auto build = [&](client::Trace& tr) {
    tr.module("transformer.h.1").output(0).save("h1");
    tr.output().save("logits");
  };
  {
    client::Client c(co);
    client::RemoteModel model = c.model("gpt2-tiny");
    std::vector<double> overhead;
    for (int i = 0; i < 220; ++i) {
      client::Trace tr = model.trace({ids});
      build(tr);
      auto t0 = clock::now();
      tr.run({.remote = true, .quiet = true, .no_cache = true});
      double remote = seconds_since(t0);
      tr.set_local_model(*local);
      t0 = clock::now();
      tr.run();
      double loc = seconds_since(t0);
      if (i >= 20) overhead.push_back(remote - loc);
    }
    ctx.add("remote.overhead_p50_ms", percentile(overhead, 0.5) * 1e3, "ms", "<= 1");
    ctx.add("remote.overhead_p99_ms", percentile(overhead, 0.99) * 1e3, "ms", "<= 5");
  }
  {
    std::atomic<uint64_t> done{0};
    std::atomic<bool> stop{false};
    std::vector<std::thread> clients;
    for (int t = 0; t < 32; ++t) {
      clients.emplace_back([&] {
        client::Client c(co);
        client::RemoteModel model = c.model("gpt2-tiny");
        while (!stop) {
          client::Trace tr = model.trace({ids});
          build(tr);
          tr.run({.remote = true, .quiet = true, .no_cache = true});
          done++;
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::seconds(2));
    uint64_t start = done;
    auto t0 = clock::now();
    std::this_thread::sleep_for(std::chrono::seconds(10));
    double jobs = static_cast<double>(done - start) / seconds_since(t0);
    stop = true;
    for (auto& th : clients) th.join();
    ctx.add("remote.jobs_per_s_32c", jobs, "jobs/s", ">= 5000");
  }
  run_fetch(ctx, co, server.work_dir());
}

}  // namespace loom::bench
