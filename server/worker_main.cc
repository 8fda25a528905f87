// loom-worker: runs the jobs of its models for a scale-out cluster of
// loom-servers (server/worker.h says how). SIGTERM or SIGINT drains it:
// running jobs finish, the rest stay queued for the other workers.
#include <CLI/CLI.hpp>
#include <dlfcn.h>
#include <signal.h>

#include <iostream>

#include "server/worker.h"

namespace {

int fail(const std::string& message) {
  std::cerr << "loom-worker: " << message << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  loom::server::WorkerOptions opt;
  std::string redis_url, models_file, blob_dir;
  double lease_s = 30;
  int blas_threads = 0;
  uint64_t drain_timeout_ms = opt.server.drain_timeout.count();
  CLI::App app{"loom-worker: runs intervention graphs for loom-servers that share a Redis"};
  app.add_option("--redis", redis_url, "the cluster's Redis, redis://HOST:PORT[/DB]")->required();
  app.add_option("--models", models_file, "YAML or JSON: {models: [{key, path, device}]}, as loom-server's")->required();
  app.add_option("--blob-dir", blob_dir, "the results directory the servers share")->required();
  app.add_option("--name", opt.name, "this worker's name in the cluster (default HOSTNAME-PID)");
  app.add_option("--lease", lease_s, "seconds after which a silent worker's jobs are run by another")
      ->check(CLI::Range(0.2, 3600.0));
  app.add_option("--drain-timeout-ms", drain_timeout_ms, "on SIGTERM, how long running jobs may finish");
  app.add_option("--inline-max", opt.server.inline_max, "as loom-server's");
  opt.server.small_blob_bytes = loom::server::ServerOptions::kClusterSmallBlobBytes;
  app.add_option("--small-blob-bytes", opt.server.small_blob_bytes,
                 "results up to this size live in Redis, larger ones are files in --blob-dir");
  app.add_option("--max-log-events-per-job", opt.server.max_log_events_per_job, "as loom-server's");
  app.add_option("--max-stream-bytes", opt.server.max_stream_bytes, "as loom-server's");
  app.add_option("--max-token-ids-per-job", opt.server.max_token_ids_per_job, "as loom-server's");
  app.add_option("--device-memory", opt.server.tier_budgets.device_bytes, "as loom-server's (HOT models per device)")
      ->transform(CLI::AsSizeValue(false));
  app.add_option("--host-memory", opt.server.tier_budgets.host_bytes, "as loom-server's (WARM models)")
      ->transform(CLI::AsSizeValue(false));
  app.add_flag("--fsync", opt.server.fsync,
               "fsync each result file (and its directory) before the job is COMPLETED, as loom-server's: with "
               "Redis's appendfsync always, a power loss then loses nothing; costs ms per job");
  app.add_option("--blas-threads", blas_threads, "OpenBLAS threads for the models (default: one per core)");
  std::vector<std::string> webhook_allow;
  app.add_option("--webhook-allow", webhook_allow, "as loom-server's");
  CLI11_PARSE(app, argc, argv);
  opt.lease = std::chrono::milliseconds(static_cast<int64_t>(lease_s * 1000));
  opt.server.drain_timeout = std::chrono::milliseconds(drain_timeout_ms);
  opt.server.max_ws_frame_bytes = opt.server.max_stream_bytes / 3 * 4 + (1 << 20);
  for (const std::string& range : webhook_allow) {
    auto cidr = loom::server::parse_cidr(range);
    if (!cidr.ok()) return fail("--webhook-allow: " + cidr.status().message());
    opt.server.webhook_allow.push_back(*cidr);
  }
  if (blas_threads > 0) {
    using SetThreads = void (*)(int);
    if (auto set = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) set(blas_threads);
  }
  auto models = loom::server::load_models_config(models_file);
  if (!models.ok()) return fail(models.status().message());
  opt.models = std::move(models).value();
  auto redis = loom::server::Redis::open(redis_url);
  if (!redis.ok()) return fail(redis.status().message());
  auto blobs = loom::server::BlobStore::open(blob_dir, opt.server.fsync);
  if (!blobs.ok()) return fail(blobs.status().message());

  // Signals are taken by sigwait below, not by a handler.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  loom::server::Worker worker(std::move(opt), *redis, std::move(blobs).value());
  loom::Status s = worker.start();
  if (!s.ok()) return fail(s.message());
  std::cout << "worker " << worker.name() << " ready" << std::endl;
  int sig = 0;
  sigwait(&signals, &sig);
  std::cerr << "loom-worker: signal " << sig << ", draining\n";
  worker.stop();
  std::cerr << "loom-worker: stopped\n";
  return 0;
}
