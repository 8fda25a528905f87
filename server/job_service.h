// The server's job logic, independent of HTTP and WebSocket. JobService
// composes one class per responsibility and is what the API layers
// (http_api, ws_events) call:
//   Admission   keys, decoding and validation, idempotency, deduplication, queueing
//   JobRunner   where jobs run: Execution (models, executors, the run loop,
//               STREAM round trips, cancel, recovery) in the embedded server,
//               RedisDispatch (queues read by loom-workers) in scale-out
//   Delivery    events (stored, then announced), webhooks, retention
//   JobBlobs    where requests and results live (store rows or files)
//   ScanService shape-only dry runs (POST /v1/jobs?scan=1)
//   Variants    persistent edits, jobs for key@variant
// It adds the read side: snapshots and listings of a key's jobs.
// Thread safety: every public method may be called from any thread;
// listeners are called on the thread that emitted the event (an executor
// or the caller) and must not block (post to your own executor).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/admission.h"
#include "server/blob_store.h"
#include "server/delivery.h"
#include "server/execution.h"
#include "server/job_blobs.h"
#include "server/job_store.h"
#include "server/metrics.h"
#include "server/models_config.h"
#include "server/scan_service.h"
#include "server/variants.h"
#include "server/server_options.h"

namespace loom::server {

class JobService {
 public:
  using Listener = Delivery::Listener;
  // Makes the runner; none: the embedded Execution.
  using RunnerFactory =
      std::function<std::unique_ptr<JobRunner>(const ServerOptions&, JobStore&, JobBlobs&, Delivery&)>;

  JobService(ServerOptions options, JobStore& store, BlobStore& blobs, Metrics& metrics,
             const RunnerFactory& runner = {});
  ~JobService();

  // Loads the models, recovers jobs left by a previous process, starts executors.
  Status start(const std::vector<ModelSpec>& models);
  // Stops taking jobs, lets running jobs finish, stops executors and webhooks.
  void drain();
  bool draining() const { return draining_; }

  Result<std::string> authenticate(const std::string& api_key) { return admission_.authenticate(api_key); }
  // See Admission::submit; UNAVAILABLE while draining.
  Result<SubmitAnswer> submit(const std::string& owner, std::string_view body, Listener listener = {},
                              SubmitRefusal* refusal = nullptr);

  // POST /v1/models/{key}/variants (server/variants.h).
  Result<nlohmann::json> create_variant(const std::string& owner, const std::string& key, const std::string& name,
                                        bool shared, std::string_view body) {
    return variants_.create(owner, key, name, shared, body);
  }
  // POST /v1/jobs?scan=1: the request run on shapes only (server/scan_service.h).
  Result<nlohmann::json> scan(const std::string& owner, std::string_view body) { return scans_.scan(owner, body); }

  Result<nlohmann::json> snapshot(const std::string& owner, const std::string& id);
  Result<nlohmann::json> list(const std::string& owner);
  Result<nlohmann::json> cancel(const std::string& owner, const std::string& id);
  // NOT_FOUND unless `owner` submitted job `id`.
  Result<JobRecord> owned_job(const std::string& owner, const std::string& id);
  Result<JobState> job_state(const std::string& id);

  uint64_t subscribe(const std::string& job_id, Listener listener) {
    return delivery_.subscribe(job_id, std::move(listener));
  }
  void unsubscribe(const std::string& job_id, uint64_t handle) { delivery_.unsubscribe(job_id, handle); }
  Result<std::vector<JobEvent>> events_after(const std::string& job_id, uint64_t after) {
    return delivery_.events_after(job_id, after);
  }

  Status stream_reply(const std::string& job_id, std::string_view frame, bool binary) {
    return runner_->stream_reply(job_id, frame, binary);
  }
  std::optional<std::string> pending_stream(const std::string& job_id) { return runner_->pending_stream(job_id); }

  JobBlobs& blobs() { return job_blobs_; }
  Delivery& delivery() { return delivery_; }
  JobRunner& runner() { return *runner_; }
  nlohmann::json models_json() const { return runner_->models_json(); }
  Result<nlohmann::json> model_json(const std::string& key) const { return runner_->model_json(key); }
  size_t queue_depth() const { return runner_->queue_depth(); }
  void sweep_expired() { delivery_.sweep_expired(); }
  const ServerOptions& options() const { return options_; }

 private:
  nlohmann::json to_json(const JobRecord& job);

  const ServerOptions options_;
  JobStore& store_;
  JobBlobs job_blobs_;
  Delivery delivery_;
  std::unique_ptr<JobRunner> runner_;
  Variants variants_;
  Admission admission_;
  ScanService scans_;
  std::atomic<bool> draining_{false};
};

}  // namespace loom::server
