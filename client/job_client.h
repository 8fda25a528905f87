// loom::client::JobClient: the torch-free half of the loom-server client
// (transport/PROTOCOL.md): submit requests, follow and wait for jobs, cancel
// them, list them, and download results to files. client/client.h builds
// Client (models, traces, results as tensors, stream callbacks) on it; the
// `loom` command's remote subcommands use it alone, so they start without
// loading LibTorch.
//
// Failures throw the typed exceptions of remote/errors.h. Downloads are
// verified (size and SHA-256 of the compressed bytes), resume with Range
// after a dropped connection and ask for a fresh presigned URL when one has
// expired.
// Thread safety: a JobClient belongs to one thread (it holds one kept-alive
// HTTP connection).
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "client/errors.h"
#include "graph/scan_report.h"
#include "transport/http_client.h"
#include "transport/request.h"
#include "transport/wire.h"

namespace loom::client {

class StatusDisplay;

// The wire vocabulary (transport/wire.h) and the HTTP client, under the
// client's namespace: JobState::kQueued, job_state_name(), is_terminal().
using transport::HttpClient;
using transport::HttpEndpoint;
using transport::HttpRequest;
using transport::HttpResponse;
using transport::is_terminal;
using transport::job_state_name;
using transport::JobState;
using transport::parse_base_url;
using transport::parse_job_state;

// A job's status snapshot (GET /v1/jobs/{id}) or the state an event stream
// ended in.
struct JobStatus {
  std::string id;
  JobState state = JobState::kUnknown;
  std::string state_name;  // as the server sent it (a newer server may add states)
  std::string model;
  std::string created_at;  // RFC 3339 UTC
  std::string updated_at;
  int64_t queue_position = -1;  // while QUEUED: jobs waiting ahead (0: next in line); -1 otherwise
  // ERROR / CANCELLED.
  StatusCode error_code = StatusCode::kOk;
  std::string error_message;
  // COMPLETED: a fresh presigned path+query, and the compressed result's size and SHA-256 (hex).
  std::string result_url;
  uint64_t result_size = 0;
  std::string result_sha256;
  // COMPLETED, from the event stream only: the compressed result itself
  // when the server sent it inline (small results); empty otherwise.
  std::string result_inline;
  std::string json;  // the snapshot as received (for `loom status --json`)

  bool terminal() const { return is_terminal(state); }
};
// Parses a snapshot (PROTOCOL.md); INVALID_ARGUMENT naming what is missing.
Result<JobStatus> parse_job_status(const std::string& json);

struct ModelInfo {
  std::string key;
  std::string kind;    // "gpt2", "torchscript"
  std::string device;  // "cpu", "cuda:0"
};

struct ServerEnv {
  std::string server_version;
  uint32_t protocol_version = 0;
  uint16_t websocket_port = 0;
  // The largest WebSocket frame the server sends (a STREAM request at its
  // --max-stream-bytes); 0 when an older server does not say.
  uint64_t max_frame_bytes = 0;
};

struct ClientOptions {
  // "http://HOST:PORT"; empty: LOOM_HOST. Neither: ConnectionError.
  std::string host{};
  // Empty: LOOM_API_KEY. Neither: AuthError.
  std::string api_key{};
  // For an https:// host: the PEM file of the CAs its certificate must
  // chain to. Empty: LOOM_CA_FILE; neither: the system's trust store.
  std::string ca_file{};
  // Status display defaults for blocking runs (RunOptions can turn them on too).
  bool verbose = false;
  bool quiet = false;
  std::ostream* status_out = nullptr;  // nullptr: std::cerr
  // Per network step (connect, each read or write), not per job: jobs can
  // run for minutes (RunOptions::timeout bounds a wait).
  std::chrono::milliseconds timeout{30000};
  // Decompressed result held in memory by result()/run(): the runtime's
  // default bound on saved bytes (2 GiB) plus room for the container.
  uint64_t max_result_bytes = 4ull << 30;
  // Attempts for one download after dropped connections (without progress)
  // and after expired URLs.
  int max_download_attempts = 6;
  // Polling when the WebSocket is unavailable, and wait_for's default.
  std::chrono::milliseconds poll_interval{500};
  // A blocking run first waits this long in its submit call (POST
  // /v1/jobs?wait_ms=N): a job that ends by then needs no WebSocket. Longer
  // jobs (and jobs with stream or log nodes) are followed over the
  // WebSocket with the status display. 0: always follow.
  std::chrono::milliseconds submit_wait{250};
  // A quiet blocking run has no status line to keep moving, so it waits in
  // its submit call as long as the server holds one (10 s): one HTTP
  // exchange, no WebSocket, for every such job that ends by then.
  std::chrono::milliseconds quiet_submit_wait{10000};
};

// A LOG event: its text and the server's summary of the value.
using LogCallback = std::function<void(const std::string& text, const std::string& value)>;

// A TOKEN event (a generation step): its index, each row's new token id,
// and the server's time since the job started running.
struct TokenEvent {
  int64_t step = 0;
  std::vector<int64_t> tokens;
  int64_t elapsed_ms = 0;
};
using TokenCallback = std::function<void(const TokenEvent&)>;

// How JobClient::wait() follows a job: the status display and limits.
struct WaitOptions {
  bool verbose = false;  // keep each state on its own line (or ClientOptions::verbose)
  bool quiet = false;    // no status display (or ClientOptions::quiet)
  // How long to wait (0: no limit); then TimeoutError, the job keeps running.
  std::chrono::milliseconds timeout{0};
  LogCallback on_log{};  // LOG events
  TokenCallback on_token{};  // TOKEN events, in step order
};

// Answers a STREAM event (its header and tensors) with the STREAM_REPLY
// frame to send; empty: nothing to send. Unset: the follower only watches.
using StreamAnswer = std::function<std::string(const nlohmann::json& event)>;

class JobClient {
 public:
  explicit JobClient(ClientOptions options = {});
  virtual ~JobClient();
  JobClient(const JobClient&) = delete;
  JobClient& operator=(const JobClient&) = delete;

  // Options with host and key resolved.
  const ClientOptions& options() const { return options_; }
  const HttpEndpoint& endpoint() const { return endpoint_; }

  // GET /v1/env (cached): the server's versions and WebSocket port. Throws
  // VersionError when the server speaks another protocol version.
  const ServerEnv& env();
  std::vector<ModelInfo> models();
  // GET /v1/models/{key}: the model and its module paths ([0] is "").
  // NotFoundError naming the models the server has.
  std::pair<ModelInfo, std::vector<std::string>> describe_model(const std::string& key);

  // Submits and returns the job ID at once. ValidationError for a graph that
  // fails structural validation (checked here before sending).
  std::string submit(const transport::JobRequest& request);
  JobStatus status(const std::string& job_id);
  // Polls every poll_interval until the job ends; on_poll sees every
  // snapshot. Returns the COMPLETED snapshot; throws RemoteError (ERROR),
  // CancelledError (CANCELLED), TimeoutError (timeout > 0 passed; the job
  // keeps running).
  JobStatus wait_for(const std::string& job_id, std::chrono::milliseconds poll_interval = std::chrono::seconds(1),
                     const std::function<void(const JobStatus&)>& on_poll = {},
                     std::chrono::milliseconds timeout = std::chrono::milliseconds(0));
  // Like wait_for, but follows the job's event stream (WebSocket) with the
  // status display, and falls back to polling if the stream is unavailable.
  JobStatus wait(const std::string& job_id, const WaitOptions& options = {});
  // Streams the result to `path` through bounded buffers: the compressed
  // bytes go to "PATH.part" (kept across a dropped connection, and across
  // processes: a later call resumes it), are verified, then decompressed to
  // PATH as a safetensors file (or moved there as is with `compressed`).
  // Returns the bytes written to PATH.
  uint64_t download_result(const std::string& job_id, const std::string& path, bool compressed = false);
  // DELETE /v1/jobs/{id}: the snapshot after (CANCELLED, or the terminal
  // state the job already had).
  JobStatus cancel(const std::string& job_id);
  // This key's jobs, newest first (at most 100).
  std::vector<JobStatus> jobs();
  // POST /v1/jobs?scan=1: the request run on shapes only, answered at once
  // (nothing is queued): every node's shape and dtype, the saves, and the
  // job's estimated peak memory and device time (runtime/scan_report.h).
  // A graph that would fail on shapes throws as a submit would.
  graph::ScanReport scan(const transport::JobRequest& request);

 protected:
  // POST /v1/jobs (?wait_ms=N when > 0); the answer's JSON.
  nlohmann::json post_job(const transport::JobRequest& request, int64_t wait_ms);
  // The same; with `raw_result` a job COMPLETED within the wait comes back
  // as its compressed result (&inline=raw), filled into `completed`.
  nlohmann::json post_job(const transport::JobRequest& request, int64_t wait_ms, bool raw_result,
                          JobStatus& completed);
  HttpResponse call(const std::string& method, const std::string& target, std::string body = {},
                    const std::string& content_type = {});
  HttpResponse expect_ok(const std::string& method, const std::string& target, std::string body = {},
                         const std::string& content_type = {});
  StatusDisplay make_display(const WaitOptions& options) const;
  // Follows the job's events to its end; `answer` replies to STREAM requests.
  JobStatus follow(const std::string& job_id, const WaitOptions& options, StatusDisplay& display,
                   const StreamAnswer& answer = {});
  JobStatus poll_until_end(const std::string& job_id, const WaitOptions& options, StatusDisplay* display,
                           std::chrono::steady_clock::time_point deadline);
  // The verified compressed result: inline when the status has it, else downloaded.
  std::string fetch_compressed(JobStatus& status, StatusDisplay* display);

  ClientOptions options_;
  HttpEndpoint endpoint_;
  std::unique_ptr<HttpClient> http_;
  std::optional<ServerEnv> env_;
};

// Checks that `id` can be a job ID (letters, digits, '-', '_'; 1-128 chars)
// before it goes into a URL path. ValidationError otherwise.
void check_job_id(const std::string& id);
// ERROR -> RemoteError, CANCELLED -> CancelledError; otherwise nothing.
void throw_if_failed(const JobStatus& status);
// A COMPLETED, ERROR or CANCELLED event into the job's status; the display shows the end.
void apply_terminal_event(const nlohmann::json& event, JobStatus& status, StatusDisplay& display);

}  // namespace loom::client
