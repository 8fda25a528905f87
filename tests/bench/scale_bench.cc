// Scale-out on one machine: a redis-server, one loom-server --redis and N
// loom-workers (tests/client/cluster_util.h), every worker serving a tiny
// GPT-2 whose forward takes 20 ms more than it computes (the test-only
// test_forward_delay_ms: a stand-in for a GPU's time, so N workers on two
// cores measure the cluster, not the cores). 64 clients run blocking traces.
//   scale.throughput_ratio_N   throughput(N) / (N x throughput(1)), N = 2, 4, 8
//   scale.reclaim_s            kill -9 of the worker running a job to that job
//                              completing on another (5 s lease)
//   scale.redis_overhead_p50_ms  a blocking run through Redis minus the same
//                              run on an embedded server (p50 of each)
#include <ATen/ATen.h>

#include <atomic>
#include <iostream>
#include <sstream>
#include <thread>

#include "client/client.h"
#include "client/trace.h"
#include "runtime/gpt2_config.h"
#include "tests/bench/bench.h"
#include "tests/client/cluster_util.h"

namespace loom::bench {

namespace {

using clock = std::chrono::steady_clock;

client::ClientOptions options(const std::string& url, const std::string& key) {
  client::ClientOptions co;
  co.host = url;
  co.api_key = key;
  co.quiet = true;
  co.timeout = std::chrono::seconds(60);
  return co;
}

void traced(client::Trace& tr) {
  tr.module("transformer.h.1").output(0).save("h1");
  tr.output().save("logits");
}

// Completed blocking runs per second with `clients` concurrent clients.
double throughput(const client::ClientOptions& co, int clients, double seconds) {
  std::atomic<uint64_t> done{0}, failed{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  at::Tensor ids = at::arange(16, at::kLong).view({1, 16});
  for (int t = 0; t < clients; ++t) {
    threads.emplace_back([&] {
      client::Client c(co);
      client::RemoteModel model = c.model("gpt2-tiny");
      while (!stop) {
        client::Trace tr = model.trace({ids});
        traced(tr);
        try {
          tr.run({.remote = true, .quiet = true, .no_cache = true});
          done++;
        } catch (const std::exception& e) {
          if (failed++ == 0) std::cerr << "scale: a run failed: " << e.what() << "\n";
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const uint64_t start = done;
  const auto t0 = clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  const double rate = static_cast<double>(done - start) / seconds_since(t0);
  stop = true;
  for (auto& th : threads) th.join();
  return rate;
}

// p50 seconds of `n` blocking runs, one client.
double blocking_p50(const client::ClientOptions& co, int n) {
  client::Client c(co);
  client::RemoteModel model = c.model("gpt2-tiny");
  at::Tensor ids = at::arange(16, at::kLong).view({1, 16});
  std::vector<double> t;
  for (int i = 0; i < n + 20; ++i) {
    client::Trace tr = model.trace({ids});
    traced(tr);
    const auto t0 = clock::now();
    tr.run({.remote = true, .quiet = true, .no_cache = true});
    if (i >= 20) t.push_back(seconds_since(t0));
  }
  return percentile(t, 0.5);
}

// LOOM_BENCH_SCALE_PARTS picks parts (any of "throughput reclaim overhead";
// all when unset), for profiling one of them.
bool part(const char* name) {
  const char* parts = std::getenv("LOOM_BENCH_SCALE_PARTS");
  return parts == nullptr || std::string(parts).find(name) != std::string::npos;
}

// The Redis's appendfsync: everysec, as the README's deployment runs it
// (Redis's default: a crash of Redis loses nothing acknowledged, a power
// loss up to a second), unless LOOM_BENCH_APPENDFSYNC says always (what the
// cluster tests use: not even a power loss loses anything).
std::string fsync_policy() {
  const char* p = std::getenv("LOOM_BENCH_APPENDFSYNC");
  return p != nullptr && std::string(p) == "always" ? "always" : "everysec";
}

// LOOM_BENCH_SCALE_WORKERS picks the worker counts (default "1 2 4 8"); a
// ratio is reported for each count when 1 is among them.
std::vector<int> worker_counts() {
  const char* env = std::getenv("LOOM_BENCH_SCALE_WORKERS");
  if (env == nullptr) return {1, 2, 4, 8};
  std::vector<int> counts;
  std::istringstream in(env);
  for (int n; in >> n;) {
    if (n < 1 || n > 64) throw std::runtime_error("LOOM_BENCH_SCALE_WORKERS: counts are 1 to 64");
    counts.push_back(n);
  }
  return counts;
}

}  // namespace

void run_scale(Context& ctx) {
  loom::testing::TempDir dir;
  const std::string ckpt = dir.file("gpt2-tiny");
  if (!runtime::write_random_gpt2_checkpoint(ckpt, runtime::Gpt2Config::tiny(), 99).ok()) {
    throw std::runtime_error("cannot write checkpoint");
  }
  const std::vector<std::string> worker_flags = {"--blas-threads", "1"};
  double one = 0;
  for (int n : worker_counts()) {
    if (!part("throughput")) break;
    loom::testing::Cluster cluster({{"gpt2-tiny", ckpt, 20}}, dir.file("n" + std::to_string(n)), 1, n, worker_flags, {},
                                   fsync_policy());
    std::cerr << "scale: " << n << " worker(s) up" << std::endl;
    const double rate = throughput(options(cluster.url(), cluster.key()), 64, 8);
    std::cout << "scale: " << n << " worker(s): " << rate << " jobs/s" << std::endl;
    ctx.add("scale.throughput_" + std::to_string(n), rate, "jobs/s");
    if (n == 1) one = rate;
    else if (one > 0) ctx.add("scale.throughput_ratio_" + std::to_string(n), rate / (n * one), "ratio", ">= 0.9");
  }
  if (part("reclaim")) {
    // Two workers idle; whichever takes the job dies 200 ms into its 1 s run.
    loom::testing::Cluster cluster({{"gpt2-tiny", ckpt, 1000}}, dir.file("reclaim"), 1, 2,
                                   {"--lease", "5", "--blas-threads", "1"});
    client::Client c(options(cluster.url(), cluster.key()));
    client::Trace tr = c.model("gpt2-tiny").trace({at::arange(16, at::kLong).view({1, 16})});
    traced(tr);
    const std::string id = tr.submit({.no_cache = true});
    int victim = -1;
    while (victim < 0) {
      for (int w = 0; w < 2 && victim < 0; ++w) {
        if (cluster.running_on("w" + std::to_string(w), "gpt2-tiny") == id) victim = w;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const auto t0 = clock::now();
    cluster.worker(victim).stop(SIGKILL);
    client::JobStatus st = c.status(id);
    while (!st.terminal() && seconds_since(t0) < 60) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      st = c.status(id);
    }
    const double reclaim = seconds_since(t0);
    if (st.state != client::JobState::kCompleted) std::cerr << "scale: the reclaimed job ended " << st.state_name << "\n";
    // It must have run again on the other worker (a job that ended before
    // the kill would measure nothing).
    const std::string other = "\"worker\":\"w" + std::to_string(1 - victim) + "\"";
    bool reran = false;
    for (const auto& ev : loom::testing::job_events(cluster.ws_port(), cluster.key(), id)) {
      reran = reran || (ev.value("state", "") == "RUNNING" && ev.dump().find(other) != std::string::npos);
    }
    if (!reran) throw std::runtime_error("scale: the job did not run again on the other worker");
    ctx.add("scale.reclaim_s", reclaim, "s", "<= 10");
  }
  if (part("overhead")) {
    double through_redis = 0, embedded = 0;
    {
      loom::testing::Cluster cluster({{"gpt2-tiny", ckpt}}, dir.file("overhead"), 1, 1, worker_flags, {},
                                     fsync_policy());
      through_redis = blocking_p50(options(cluster.url(), cluster.key()), 200);
    }
    {
      std::filesystem::create_directories(dir.file("embedded"));
      loom::testing::ServerProcess server({{"gpt2-tiny", ckpt}}, dir.file("embedded"), {"--blas-threads", "1"});
      loom::testing::Ran r =
          loom::testing::run_loom("keys create bench --data-dir " + server.data_dir(), "", "loom-server");
      std::string out = r.stdout_only;
      while (!out.empty() && out.back() == '\n') out.pop_back();
      embedded = blocking_p50(options(server.url(), out.substr(out.rfind('\n') + 1)), 200);
    }
    std::cout << "scale: blocking p50 through redis " << through_redis * 1e3 << " ms, embedded " << embedded * 1e3
              << " ms" << std::endl;
    ctx.add("scale.redis_blocking_p50_ms", through_redis * 1e3, "ms");
    ctx.add("scale.embedded_blocking_p50_ms", embedded * 1e3, "ms");
    ctx.add("scale.redis_overhead_p50_ms", (through_redis - embedded) * 1e3, "ms", "<= 1");
  }
}

}  // namespace loom::bench
