// loom::client::Client: the C++ client of loom-server (transport/PROTOCOL.md).
//
//   loom::client::Client client;                    // LOOM_HOST, LOOM_API_KEY
//   auto gpt2 = client.model("gpt2");               // fetches the module tree
//   auto tr = gpt2.trace({ids});                    // client/trace.h
//   tr.module("transformer.h.3").output(0).save("h3");
//   auto result = tr.run({.remote = true});         // blocks, live status line
//
// Lower level (remote/job_client.h, which Client extends): submit() returns
// a job ID at once; status(), wait_for(), wait() (event-driven, with the
// status line), download_result(), cancel(), jobs(). Here: result(),
// attach() reattaches to a job by ID and collects its result; run_async()
// for callers with their own event loop.
//
// Hybrid execution: a job whose graph has stream nodes sends STREAM requests
// while it runs; whoever follows it with handlers (on_stream() here, or
// RunOptions::streams) runs the callback and replies on the same socket. Such
// a job may be submitted without waiting and attached later, with its
// handlers, by ID: it waits for each reply until its stream timeout.
//
// Failures throw the typed exceptions of remote/errors.h. Results are
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

#include "client/job_client.h"
#include "graph/generation.h"
#include "runtime/trace.h"
#include "transport/request.h"

namespace loom::client {

class Client;
class Trace;

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
  TokenCallback on_token{};     // generation steps (local and remote)
  // Set: run the trace as a generation (runtime/generate.h): step 0 is the
  // prompt pass; the result adds "tokens" [B, T + N].
  std::optional<graph::GenerateOptions> generation{};
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

class Client : public JobClient {
 public:
  explicit Client(ClientOptions options = {});
  ~Client() override;

  // The model with its module tree (GET /v1/models/{key}), so traces are
  // validated before they are sent. NotFoundError naming the server's models.
  // "key@variant" is a variant (create_variant): traces of it are validated
  // against the base model and run with the variant's edit first.
  RemoteModel model(const std::string& key);
  // Stores `edit` on the server as the persistent edit "key@name" (POST
  // /v1/models/{key}/variants; graph/edits.h says what an edit may hold),
  // visible to this API key only unless `shared`. Replaces this key's own
  // variant of that name. Returns the variant, ready to trace.
  RemoteModel create_variant(const std::string& key, const std::string& name, const graph::Graph& edit,
                             bool shared = false);

  using JobClient::wait;
  // wait() with the run's display options and this client's stream handlers.
  JobStatus wait(const std::string& job_id, const RunOptions& options);
  // The result of a COMPLETED job, downloaded into memory and verified.
  // ERROR -> RemoteError; CANCELLED -> CancelledError; not yet finished ->
  // LoomError(FAILED_PRECONDITION).
  runtime::TraceResult result(const std::string& job_id);

  // Stream callbacks for every job this Client follows (attach(), wait(),
  // run_blocking(), run_async()); RunOptions::streams override them by name.
  void on_stream(const std::string& name, std::function<at::Tensor(const at::Tensor&)> fn);
  void on_stream_set(const std::string& name, runtime::StreamFn fn) { streams_[name] = std::move(fn); }
  const std::map<std::string, runtime::StreamFn>& stream_handlers() const { return streams_; }

  // submit() + attach(); a short job is waited for in the submit call itself
  // (ClientOptions::submit_wait, quiet_submit_wait for a quiet run) and needs
  // no WebSocket.
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
  // This client's and the options' stream handlers (the options' win).
  std::map<std::string, runtime::StreamFn> handlers_for(const RunOptions& options) const;
  runtime::TraceResult decode_result(const JobStatus& status, const std::string& compressed) const;

  std::map<std::string, runtime::StreamFn> streams_;
};

// The display and limit options of a RunOptions.
WaitOptions wait_options(const RunOptions& options);

}  // namespace loom::client
