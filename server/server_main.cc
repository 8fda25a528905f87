// loom-server. Embedded (the default): one process runs the HTTP and
// WebSocket APIs on one I/O thread, one executor thread per device, keeps
// job records in SQLite and blobs under --data-dir, and survives restarts.
// Scale-out (--redis URL --blob-dir DIR): a stateless API over Redis and a
// shared blob directory; loom-workers run the jobs (server/worker.h).
#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <sys/resource.h>
#include <boost/asio/steady_timer.hpp>
#include <dlfcn.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "server/blob_store.h"
#include "server/http_api.h"
#include "server/job_service.h"
#include "server/keys_command.h"
#include "server/redis_dispatch.h"
#include "server/redis_job_store.h"
#include "server/sqlite_job_store.h"
#include "server/ws_events.h"

namespace {

// Reads DIR/NAME, creating it with 32 random bytes (hex) if absent.
loom::Result<std::string> secret_file(const std::string& dir, const std::string& name) {
  std::string path = dir + "/" + name;
  std::ifstream in(path);
  std::string s;
  if (in && std::getline(in, s) && s.size() >= 32) return s;
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1) return loom::internal_error("no randomness for " + path);
  static const char* kHex = "0123456789abcdef";
  for (unsigned char c : raw) {
    s.push_back(kHex[c >> 4]);
    s.push_back(kHex[c & 15]);
  }
  std::ofstream out(path, std::ios::trunc);
  out << s << "\n";
  if (!out) return loom::internal_error("cannot write " + path);
  ::chmod(path.c_str(), 0600);
  return s;
}

// OpenBLAS's worker threads spin between calls; with as many of them as
// cores they take the CPU from the I/O thread that answers clients. The
// symbol is looked up at run time: another BLAS simply has no such knob.
void set_blas_threads(int n) {
  using SetThreads = void (*)(int);
  if (auto set = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) set(n);
}

int fail(const std::string& message) {
  std::cerr << "loom-server: " << message << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "keys") return loom::server::run_keys_command(argc, argv);
  loom::server::ServerOptions opt;
  std::string models_file, listen = "127.0.0.1:0";
  uint64_t url_lifetime_s = opt.url_lifetime.count(), retention_s = opt.retention.count();
  bool no_auth = false;
  int blas_threads = 0;
  CLI::App app{"loom-server: runs intervention graphs for remote clients\n"
               "  (API keys: loom-server keys create NAME | list | revoke KEY_ID --data-dir DIR)"};
  std::string redis_url, blob_dir;
  app.add_option("--models", models_file, "YAML or JSON: {models: [{key, path, device}]} (embedded)");
  app.add_option("--data-dir", opt.data_dir, "job records, results and secrets live here (embedded)");
  app.add_option("--redis", redis_url,
                 "scale-out: job records, queues and events in this Redis (redis://HOST:PORT); models come from "
                 "the loom-workers' registrations");
  app.add_option("--blob-dir", blob_dir, "scale-out: the results directory the workers share");
  app.add_option("--listen", listen, "HOST:PORT for HTTP (port 0 picks a free port)");
  app.add_option("--inline-max", opt.inline_max, "results up to this many compressed bytes ride in the COMPLETED event");
  app.add_option("--url-lifetime", url_lifetime_s, "seconds a presigned result URL stays valid");
  app.add_option("--retention", retention_s, "seconds finished jobs and results are kept");
  app.add_option("--queue-capacity", opt.queue_capacity, "jobs waiting per device before 429");
  app.add_option("--max-active-per-key", opt.max_active_per_key, "jobs one API key may have queued or running (429 beyond)");
  app.add_option("--max-http-connections", opt.max_http_connections, "open HTTP connections (503 beyond)");
  app.add_option("--max-ws-connections", opt.max_ws_connections, "open WebSocket connections (503 beyond)");
  app.add_option("--max-log-events-per-job", opt.max_log_events_per_job,
                 "LOG events one job run stores; later ones are dropped, with one notice");
  app.add_option("--max-token-ids-per-job", opt.max_token_ids_per_job,
                 "token ids the TOKEN events of one generation carry; later events keep only step and time");
  app.add_option("--max-body-bytes", opt.request_limits.max_body_bytes, "largest POST /v1/jobs body");
  app.add_option("--max-stream-bytes", opt.max_stream_bytes, "largest tensor set of one STREAM request or reply");
  uint64_t max_stream_timeout_ms = opt.max_stream_timeout.count();
  app.add_option("--max-stream-timeout-ms", max_stream_timeout_ms,
                 "longest a job may wait for one stream reply (jobs ask for their own, 60 s by default)");
  app.add_option("--small-blob-bytes", opt.small_blob_bytes,
                 "requests and results up to this size live in SQLite (with --redis: in Redis, default 16K); larger "
                 "ones are files");
  app.add_option("--device-memory", opt.tier_budgets.device_bytes,
                 "bytes of models kept HOT on each device (512M, 8G; 0: no limit); the least recently used move "
                 "to host memory")
      ->transform(CLI::AsSizeValue(false));
  app.add_option("--host-memory", opt.tier_budgets.host_bytes,
                 "bytes of models kept WARM in host memory (0: no limit); the least recently used are dropped")
      ->transform(CLI::AsSizeValue(false));
  app.add_flag("--fsync", opt.fsync, "fsync every job record and blob write: survives power loss, costs ms per job");
  app.add_option("--blas-threads", blas_threads,
                 "OpenBLAS threads for the models (default: OpenBLAS's own, one per core); fewer leave CPU to the "
                 "I/O thread, but results then differ in the last bits from runs with another count");
  app.add_flag("--no-auth", no_auth, "accept requests without API keys (local experiments only)");
  std::string tls_cert, tls_key;
  app.add_option("--tls-cert", tls_cert, "PEM certificate chain: serve https:// and wss:// (with --tls-key)");
  app.add_option("--tls-key", tls_key, "PEM private key of --tls-cert");
  bool allow_plaintext = false;
  app.add_flag("--allow-plaintext", allow_plaintext,
               "listen on a non-loopback address without TLS: API keys then cross the network in clear");
  std::vector<std::string> webhook_allow;
  app.add_option("--webhook-allow", webhook_allow,
                 "CIDR range webhooks may reach besides public addresses (repeatable), e.g. 127.0.0.1/32");
  uint64_t drain_timeout_ms = opt.drain_timeout.count(), webhook_timeout_ms = opt.webhook_timeout.count();
  app.add_option("--drain-timeout-ms", drain_timeout_ms,
                 "on SIGTERM, how long running jobs may finish before they are stopped (ERROR UNAVAILABLE)");
  app.add_option("--webhook-timeout-ms", webhook_timeout_ms, "each of connect, write and read of a webhook attempt");
  app.add_option("--webhook-concurrency", opt.webhook_max_in_flight, "webhook deliveries in flight at once")
      ->check(CLI::PositiveNumber);
  app.add_option("--webhook-ca-file", opt.webhook_ca_file,
                 "PEM CAs https:// webhook receivers must chain to (default: the system's trust store)");
  app.add_option("--io-workers", opt.io_workers, "threads for the blocking work of API requests (store, blobs, decoding)")
      ->check(CLI::PositiveNumber);
  app.add_option("--max-queued-work", opt.max_queued_work, "API requests waiting for a worker before 503")
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  opt.drain_timeout = std::chrono::milliseconds(drain_timeout_ms);
  opt.webhook_timeout = std::chrono::milliseconds(webhook_timeout_ms);
  opt.url_lifetime = std::chrono::seconds(url_lifetime_s);
  opt.retention = std::chrono::seconds(retention_s);
  opt.require_auth = !no_auth;
  for (const std::string& range : webhook_allow) {
    auto cidr = loom::server::parse_cidr(range);
    if (!cidr.ok()) return fail("--webhook-allow: " + cidr.status().message());
    opt.webhook_allow.push_back(*cidr);
  }
  if (blas_threads > 0) set_blas_threads(blas_threads);
  opt.max_stream_timeout = std::chrono::milliseconds(max_stream_timeout_ms);
  // A reply frame is base64 (4/3) of at most max_stream_bytes, plus its JSON.
  opt.max_ws_frame_bytes = opt.max_stream_bytes / 3 * 4 + (1 << 20);
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return fail("--listen must be HOST:PORT");
  opt.listen_host = listen.substr(0, colon);
  try {
    opt.port = static_cast<uint16_t>(std::stoul(listen.substr(colon + 1)));
  } catch (const std::exception&) {
    return fail("--listen port is not a number");
  }
  {
    // API keys travel in headers: in plaintext, only on this machine unless
    // the operator consents; otherwise TLS (ours, or a proxy's in front).
    boost::system::error_code bad;
    std::string host = opt.listen_host;
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    auto addr = boost::asio::ip::make_address(host, bad);
    if (bad) return fail("--listen: \"" + opt.listen_host + "\" is not an IP address");
    if (tls_cert.empty() != tls_key.empty()) return fail("--tls-cert and --tls-key go together");
    if (!addr.is_loopback() && tls_cert.empty() && !allow_plaintext) {
      return fail("--listen " + listen + ": refusing to serve plaintext HTTP on a non-loopback address (API keys "
                  "would cross the network in clear); give --tls-cert and --tls-key, listen on 127.0.0.1 behind "
                  "a TLS proxy, or pass --allow-plaintext");
    }
    opt.listen_host = host;
  }

  // Each connection is a descriptor: take the hard limit, not the usual
  // soft 1024, so the connection caps (4096 each by default) are what binds.
  // Past the limit the accept loop backs off (HttpApi).
  rlimit fds{};
  if (::getrlimit(RLIMIT_NOFILE, &fds) == 0 && fds.rlim_cur < fds.rlim_max) {
    fds.rlim_cur = fds.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &fds);
  }

  std::unique_ptr<loom::server::JobStore> store;
  loom::server::JobService::RunnerFactory runner;
  std::vector<loom::server::ModelSpec> models;
  std::error_code ec;
  if (redis_url.empty()) {
    if (models_file.empty() || opt.data_dir.empty()) return fail("give --models and --data-dir (or --redis and --blob-dir)");
    if (!blob_dir.empty()) return fail("--blob-dir goes with --redis (embedded results live under --data-dir)");
    std::filesystem::create_directories(opt.data_dir, ec);
    if (ec) return fail("cannot create " + opt.data_dir + ": " + ec.message());
    auto m = loom::server::load_models_config(models_file);
    if (!m.ok()) return fail(m.status().message());
    models = std::move(m).value();
    auto presign = secret_file(opt.data_dir, "server.secret");
    auto webhook = secret_file(opt.data_dir, "webhook.secret");
    if (!presign.ok() || !webhook.ok()) return fail((presign.ok() ? webhook.status() : presign.status()).message());
    opt.presign_secret = *presign;
    opt.webhook_secret = *webhook;
    auto sqlite = loom::server::SqliteJobStore::open(opt.data_dir + "/loom.db", opt.fsync);
    if (!sqlite.ok()) return fail(sqlite.status().message());
    store = std::move(sqlite).value();
  } else {
    if (!models_file.empty()) return fail("--models: a server with --redis loads no models; loom-workers register them");
    if (blob_dir.empty()) return fail("--redis needs --blob-dir, the results directory the workers share");
    opt.data_dir = blob_dir;
    if (app.count("--small-blob-bytes") == 0) opt.small_blob_bytes = loom::server::ServerOptions::kClusterSmallBlobBytes;
    auto redis = loom::server::Redis::open(redis_url);
    if (!redis.ok()) return fail(redis.status().message());
    loom::server::RedisNames names;
    auto presign = loom::server::shared_secret(**redis, names, "presign");
    auto webhook = loom::server::shared_secret(**redis, names, "webhook");
    if (!presign.ok() || !webhook.ok()) return fail((presign.ok() ? webhook.status() : presign.status()).message());
    opt.presign_secret = *presign;
    opt.webhook_secret = *webhook;
    auto* redis_store = new loom::server::RedisJobStore(*redis, names.prefix);
    store.reset(redis_store);
    runner = [redis_store](const loom::server::ServerOptions& o, loom::server::JobStore&, loom::server::JobBlobs& b,
                           loom::server::Delivery& d) -> std::unique_ptr<loom::server::JobRunner> {
      return std::make_unique<loom::server::RedisDispatch>(o, *redis_store, b, d);
    };
  }
  auto blobs = loom::server::BlobStore::open(opt.data_dir, opt.fsync);
  if (!blobs.ok()) return fail(blobs.status().message());

  loom::server::Metrics metrics;
  loom::server::JobService service(opt, *store, *blobs, metrics, runner);
  loom::Status started = service.start(models);
  if (!started.ok()) return fail(started.message());

  boost::asio::io_context io;
  // Declared before the APIs, so it outlives them: its last tasks post to io.
  loom::server::WorkPool pool(opt.io_workers, opt.max_queued_work);
  std::shared_ptr<boost::asio::ssl::context> tls;
  if (!tls_cert.empty()) {
    tls = std::make_shared<boost::asio::ssl::context>(boost::asio::ssl::context::tls_server);
    boost::system::error_code e;
    tls->set_options(boost::asio::ssl::context::default_workarounds | boost::asio::ssl::context::no_sslv2 |
                         boost::asio::ssl::context::no_sslv3 | boost::asio::ssl::context::no_tlsv1 |
                         boost::asio::ssl::context::no_tlsv1_1,
                     e);
    tls->use_certificate_chain_file(tls_cert, e);
    if (e) return fail("--tls-cert " + tls_cert + ": " + e.message());
    tls->use_private_key_file(tls_key, boost::asio::ssl::context::pem, e);
    if (e) return fail("--tls-key " + tls_key + ": " + e.message());
  }
  loom::server::HttpApi http(io, service, metrics, pool, tls.get());
  loom::server::WsEvents ws(io, service, metrics, pool, tls);
  loom::Status s = http.listen(opt.listen_host, opt.port);
  if (s.ok()) s = ws.listen(opt.listen_host, 0);
  if (!s.ok()) return fail(s.message());
  http.set_websocket_port(ws.port());

  // Retention sweep once a minute.
  boost::asio::steady_timer sweep(io);
  std::function<void()> schedule = [&] {
    sweep.expires_after(std::chrono::seconds(60));
    sweep.async_wait([&](const boost::system::error_code& e) {
      if (e) return;
      service.sweep_expired();
      schedule();
    });
  };
  service.sweep_expired();
  schedule();

  // SIGTERM/SIGINT: refuse new jobs, let the running one finish (its events
  // still reach clients: the I/O thread keeps running), then stop.
  std::thread drainer;
  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code& e, int sig) {
    if (e) return;
    std::cerr << "loom-server: signal " << sig << ", draining\n";
    http.stop();
    drainer = std::thread([&] {
      service.drain();
      boost::asio::post(io, [&] {
        ws.stop();
        sweep.cancel();
        io.stop();
      });
    });
  });

  std::cout << "listening on " << (tls ? "https" : "http") << "://" << opt.listen_host << ":" << http.port() << std::endl;
  std::cout << "websocket on " << (tls ? "wss" : "ws") << "://" << opt.listen_host << ":" << ws.port() << std::endl;
  // Every handler converts its own failures; this loop is the backstop that
  // keeps one bad request from ending the process: whatever escapes a
  // handler is logged and the loop goes on serving everyone else.
  for (;;) {
    try {
      io.run();
      break;
    } catch (const std::exception& e) {
      std::cerr << "loom-server: a handler threw (the request is dropped, serving goes on): " << e.what() << "\n";
    } catch (...) {
      std::cerr << "loom-server: a handler threw an unknown exception (the request is dropped, serving goes on)\n";
    }
  }
  if (drainer.joinable()) drainer.join();
  std::cerr << "loom-server: stopped\n";
  return 0;
}
