// Every knob of loom-server in one place, built in main() and passed down.
// Thread safety: plain value, read-only after start.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/limits.h"
#include "server/callback_policy.h"
#include "server/model_tiers.h"
#include "transport/request.h"

namespace loom::server {

struct ServerOptions {
  std::string data_dir;                  // SQLite db, request and result blobs, secrets
  std::string listen_host = "127.0.0.1";
  uint16_t port = 0;                     // 0 = pick a free port (printed at start)
  // Results up to this many compressed bytes ride inline in the COMPLETED event.
  uint64_t inline_max = 64 * 1024;
  std::chrono::seconds url_lifetime{24 * 3600};     // presigned result URLs
  std::chrono::seconds retention{7 * 24 * 3600};    // finished jobs and results are deleted after this
  // Jobs waiting per device; beyond it POST /v1/jobs answers 429 + Retry-After.
  size_t queue_capacity = 1024;
  // Threads for the blocking work of API requests (decode, hash, SQLite,
  // blob files, STREAM reply decoding), off the I/O thread (--io-workers),
  // and the requests that may wait for one before the server answers 503:
  // each holds its body, at most max_body_bytes.
  size_t io_workers = 4;
  size_t max_queued_work = 1024;
  // Jobs one API key may have queued or running at once: one user's burst
  // cannot take the whole queue from the others. Beyond it 429 + Retry-After.
  size_t max_active_per_key = 256;
  // Open HTTP connections (idle keep-alive ones included) and WebSocket
  // connections: each holds buffers and a socket. Beyond them a new HTTP
  // connection is answered 503 and closed, a WebSocket handshake refused 503.
  size_t max_http_connections = 4096;
  size_t max_ws_connections = 4096;
  // LOG events one job run may store (and their text + summary bytes): each
  // is a row in the job's history, replayed to every client that attaches.
  uint64_t max_log_events_per_job = 1000;
  uint64_t max_log_bytes_per_job = 1 << 20;
  // Token ids the TOKEN events of one generation may carry (steps x rows):
  // a 4096-row batch over 65536 steps would otherwise store 268 M ids in the
  // history. Past it TOKEN events keep their step and time, without ids
  // ("tokens_dropped": true); the result holds every token regardless.
  uint64_t max_token_ids_per_job = 1 << 20;
  transport::RequestLimits request_limits;  // body size, decompressed size, Cap'n Proto traversal
  runtime::Limits run_limits;               // per job: nodes, saved bytes, wall time
  // What requests are decoded under: request_limits with run_limits' graph
  // bounds, so a graph over them is refused before it is built.
  transport::RequestLimits decode_limits() const {
    transport::RequestLimits l = request_limits;
    l.graph = run_limits.graph;
    return l;
  }
  // Memory the models may hold: HOT on each device, WARM in host memory
  // (--device-memory, --host-memory; server/model_tiers.h). 0: unlimited.
  TierBudgets tier_budgets;
  bool require_auth = true;
  // fsync job records and blobs on every write (survives power loss);
  // otherwise they survive a crash of the process, not of the machine.
  bool fsync = false;
  // Requests and results up to this size are kept in SQLite beside the job
  // record; larger ones are files under DATA_DIR (streamed for downloads).
  uint64_t small_blob_bytes = 1 << 20;
  // The same with --redis (servers and workers): Redis holds every byte in
  // memory, appends it to its AOF and serves all servers and workers from
  // one thread, so only small blobs go there; the rest are files in the
  // shared blob directory.
  static constexpr uint64_t kClusterSmallBlobBytes = 16 << 10;
  std::string presign_secret;  // HMAC key for result URLs (DATA_DIR/server.secret)
  std::string webhook_secret;  // HMAC key for webhook signatures (DATA_DIR/webhook.secret)
  // Ranges webhooks may reach besides public addresses (--webhook-allow):
  // by default none, so a callback URL cannot probe the server's own
  // network (loopback, private, link-local) for its submitter.
  std::vector<Cidr> webhook_allow;
  int webhook_attempts = 5;
  std::chrono::milliseconds webhook_first_backoff{500};
  // SIGTERM lets running jobs finish for this long (--drain-timeout-ms);
  // then they stop at their next hook point, in ERROR (UNAVAILABLE).
  std::chrono::milliseconds drain_timeout{30000};
  // Each of connect, write and read of one delivery attempt.
  std::chrono::milliseconds webhook_timeout{5000};
  // Deliveries in flight at once (--webhook-concurrency): receivers that
  // never answer each hold one slot for webhook_timeout, the rest go on.
  size_t webhook_max_in_flight = 64;
  // PEM CAs that https:// webhook receivers must chain to
  // (--webhook-ca-file); empty: the system's trust store.
  std::string webhook_ca_file;
  // WebSocket frames from clients (STREAM replies) larger than this are refused.
  uint64_t max_ws_frame_bytes = 96ull << 20;
  // Bytes queued to one event socket and not yet read by its client (a
  // STREAM frame at max_stream_bytes fits, with room for the events around
  // it): beyond it the socket is closed, so a client that stops reading
  // cannot grow the server's memory.
  uint64_t max_ws_outbound_bytes = 128ull << 20;
  // Tensor bytes of one STREAM request or reply (safetensors), each way.
  uint64_t max_stream_bytes = 64ull << 20;
  // Upper bound on a job's stream deadline (its request asks for its own,
  // 60 s by default). The job's executor waits that long at most.
  std::chrono::milliseconds max_stream_timeout{10 * 60 * 1000};
};

}  // namespace loom::server
