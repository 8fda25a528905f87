// loom::client::Client: the C++ client of loom-server (transport/PROTOCOL.md).
//
//   loom::client::Client client;                    // LOOM_HOST, LOOM_API_KEY
//   auto gpt2 = client.model("gpt2");               // fetches the module tree
//   auto tr = gpt2.trace({ids});                    // client/trace.h
//   tr.module("transformer.h.3").output(0).save("h3");
//   auto result = tr.run({.remote = true});         // blocks, live status line
//
// Lower level: submit() returns a job ID at once; status(), wait_for(),
// wait() (event-driven, with the status line), result(), download_result(),
// cancel(), jobs(); attach() reattaches to a job by ID and collects its
// result; run_async() for callers with their own event loop.
//
// Hybrid execution: a job whose graph has stream nodes sends STREAM requests
// while it runs; whoever follows it with handlers (on_stream() here, or
// RunOptions::streams) runs the callback and replies on the same socket. Such
// a job may be submitted without waiting and attached later, with its
// handlers, by ID: it waits for each reply until its stream timeout.
//
// Failures throw the typed exceptions of client/errors.h. Results are
// verified (size and SHA-256 of the compressed bytes) before they are used;
// downloads resume with Range after a dropped connection and ask for a fresh
// presigned URL when one has expired.
//
// Thread safety: a Client belongs to one thread (it holds one kept-alive
// HTTP connection). run_async() works on its own connection on a background
// thread. Use one Client per thread; they are cheap.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "client/errors.h"
#include "client/http_client.h"
#include "runtime/trace.h"
#include "transport/request.h"

namespace loom::client {

class Client;
class Trace;
class StatusDisplay;

enum class JobState { kReceived, kQueued, kDispatched, kRunning, kCompleted, kError, kCancelled, kUnknown };
const char* job_state_name(JobState state);  // "QUEUED"
JobState parse_job_state(std::string_view name);  // kUnknown for a name this client does not know
bool is_terminal(JobState state);

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
};

struct ClientOptions {
  // "http://HOST:PORT"; empty: LOOM_HOST. Neither: ConnectionError.
  std::string host{};
  // Empty: LOOM_API_KEY. Neither: AuthError.
  std::string api_key{};
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
};

// A LOG event: its text and the server's summary of the value.
using LogCallback = std::function<void(const std::string& text, const std::string& value)>;

// How Trace::run() and Client::run_blocking() run and wait.
struct RunOptions {
  bool remote = false;    // Trace::run only: on the server instead of the local model
  bool verbose = false;   // keep each state on its own line (or ClientOptions::verbose)
  bool quiet = false;     // no status display (or ClientOptions::quiet)
  // How long to wait for the job (0: no limit). Remote: TimeoutError and
  // the job keeps running (reattach with attach(id) or cancel it). Local:
  // the run's wall-time limit.
  std::chrono::milliseconds timeout{0};
  bool no_cache = false;        // remote: run even if an identical request has a result
  std::string callback_url{};   // remote: webhook for the terminal state
  std::string request_id{};     // remote: the caller's own id, echoed in server logs
  uint32_t wall_time_ms = 0;    // remote: run-time limit on the server (0: its default)
  LogCallback on_log{};         // LOG events (local and remote)
  // Stream callbacks by name (hybrid execution), over the Client's own
  // (Client::on_stream) and, for Trace::run, the Trace's. They run on the
  // thread that follows the job: the caller's, or run_async's background one.
  std::map<std::string, runtime::StreamFn> streams{};
  // Remote: how long the server waits for each stream reply, counted from
  // when it first sends the request; a client that reattaches within it
  // picks the request up again. Past it the job fails naming the callback.
  std::chrono::milliseconds stream_timeout{60000};
  // Called with the job ID as soon as the server accepted the job.
  std::function<void(const std::string& job_id)> on_submitted{};
};

// A model on the server and its module tree (GET /v1/models/{key}), so
// traces are validated before they are sent. Holds a pointer to its Client,
// which must outlive it. Cheap to copy.
class RemoteModel {
 public:
  RemoteModel(Client* client, ModelInfo info, std::vector<std::string> module_paths);

  const std::string& key() const { return info_.key; }
  const ModelInfo& info() const { return info_; }
  // Every module by dotted path; [0] is "" (the model itself).
  const std::vector<std::string>& module_paths() const { return *module_paths_; }
  Client& client() const { return *client_; }

  // A trace bound to this model (client/trace.h); inputs make one invoke.
  Trace trace(std::vector<at::Tensor> inputs = {}) const;

 private:
  Client* client_;
  ModelInfo info_;
  std::shared_ptr<const std::vector<std::string>> module_paths_;
};

// A job running on a background thread (run_async).
struct AsyncRun {
  std::string job_id;                         // known at once: cancel(job_id) works
  std::future<runtime::TraceResult> result;   // get() rethrows the run's exception
};

class Client {
 public:
  explicit Client(ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Options with host and key resolved.
  const ClientOptions& options() const { return options_; }
  const HttpEndpoint& endpoint() const { return endpoint_; }

  // GET /v1/env (cached): the server's versions and WebSocket port. Throws
  // VersionError when the server speaks another protocol version.
  const ServerEnv& env();
  std::vector<ModelInfo> models();
  // NotFoundError naming the models the server has.
  RemoteModel model(const std::string& key);

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
  JobStatus wait(const std::string& job_id, const RunOptions& options = {});
  // The result of a COMPLETED job, downloaded into memory and verified.
  // ERROR -> RemoteError; CANCELLED -> CancelledError; not yet finished ->
  // LoomError(FAILED_PRECONDITION).
  runtime::TraceResult result(const std::string& job_id);
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

  // Stream callbacks for every job this Client follows (attach(), wait(),
  // run_blocking(), run_async()); RunOptions::streams override them by name.
  void on_stream(const std::string& name, std::function<at::Tensor(const at::Tensor&)> fn);
  void on_stream_set(const std::string& name, runtime::StreamFn fn) { streams_[name] = std::move(fn); }
  const std::map<std::string, runtime::StreamFn>& stream_handlers() const { return streams_; }

  // submit() + attach().
  runtime::TraceResult run_blocking(const transport::JobRequest& request, const RunOptions& options = {});
  // Follows a submitted job to its end with the status display and returns
  // its result (inline when the server sent it so, else downloaded with a
  // progress bar). Reattaches to a job whose client went away.
  runtime::TraceResult attach(const std::string& job_id, const RunOptions& options = {});
  // Submits on this thread (submission errors throw here), then follows and
  // downloads on a background thread with its own connection and no status
  // display. The Client need not outlive the future.
  AsyncRun run_async(const transport::JobRequest& request, const RunOptions& options = {});

 private:
  // POST /v1/jobs (?wait_ms=N when > 0); the answer's JSON.
  nlohmann::json post_job(const transport::JobRequest& request, int64_t wait_ms);
  HttpResponse call(const std::string& method, const std::string& target, std::string body = {},
                    const std::string& content_type = {});
  HttpResponse expect_ok(const std::string& method, const std::string& target, std::string body = {},
                         const std::string& content_type = {});
  StatusDisplay make_display(const RunOptions& options) const;
  JobStatus follow(const std::string& job_id, const RunOptions& options, StatusDisplay& display);
  JobStatus poll_until_end(const std::string& job_id, const RunOptions& options, StatusDisplay* display,
                           std::chrono::steady_clock::time_point deadline);
  std::string fetch_compressed(JobStatus& status, StatusDisplay* display);
  runtime::TraceResult decode_result(const JobStatus& status, const std::string& compressed) const;

  ClientOptions options_;
  HttpEndpoint endpoint_;
  std::unique_ptr<HttpClient> http_;
  std::optional<ServerEnv> env_;
  std::map<std::string, runtime::StreamFn> streams_;
};

// Checks that `id` can be a job ID (letters, digits, '-', '_'; 1-128 chars)
// before it goes into a URL path. ValidationError otherwise.
void check_job_id(const std::string& id);

}  // namespace loom::client
