// The server's job logic, independent of HTTP and WebSocket: submit,
// snapshot, cancel, event fan-out, the executors that run jobs, restart
// recovery and retention. The API layers (http_api, ws_events) call it.
//
// Every state change is written to the JobStore first and then announced to
// subscribers, so a reconnecting client or a restarted server sees the same
// history. Thread safety: every public method may be called from any thread;
// listeners are called on the thread that emitted the event (an executor
// or the caller) and must not block (post to your own executor).
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/model.h"
#include "server/blob_store.h"
#include "server/executor.h"
#include "server/job_store.h"
#include "server/metrics.h"
#include "server/models_config.h"
#include "server/server_options.h"
#include "server/stream_broker.h"
#include "server/webhook.h"

namespace loom::server {

struct SubmitAnswer {
  std::string job_id;
  JobState state;
  bool deduplicated = false;
  uint64_t subscription = 0;  // the `listener` handle given to submit(); 0 when none
};

// The event's JSON as sent to a client: with "result_inline" (base64) when
// the live event carries the result.
std::string event_text(const JobEvent& event);

class JobService {
 public:
  using Listener = std::function<void(const JobEvent&)>;

  JobService(ServerOptions options, JobStore& store, BlobStore& blobs, Metrics& metrics);
  ~JobService();

  // Loads the models, recovers jobs left by a previous process, starts executors.
  Status start(const std::vector<ModelSpec>& models);
  // Stops taking jobs, lets running jobs finish, stops executors and webhooks.
  void drain();
  bool draining() const { return draining_; }

  // The key id a request's API key belongs to (UNAUTHENTICATED otherwise).
  Result<std::string> authenticate(const std::string& api_key);

  // `listener`, when set, is subscribed to the new job before it is queued,
  // so it sees every event (a fast job may end before submit returns);
  // unsubscribe it with the answer's job_id and subscription.
  Result<SubmitAnswer> submit(const std::string& owner, std::string_view body, Listener listener = {});
  Result<nlohmann::json> snapshot(const std::string& owner, const std::string& id);
  Result<nlohmann::json> list(const std::string& owner);
  Result<nlohmann::json> cancel(const std::string& owner, const std::string& id);

  // NOT_FOUND unless `owner` submitted job `id`.
  Result<JobRecord> owned_job(const std::string& owner, const std::string& id);
  Result<JobState> job_state(const std::string& id);
  // Registers `listener` for the job's future events; returns a handle for unsubscribe.
  uint64_t subscribe(const std::string& job_id, Listener listener);
  void unsubscribe(const std::string& job_id, uint64_t handle);
  Result<std::vector<JobEvent>> events_after(const std::string& job_id, uint64_t after);

  // Hybrid execution: a STREAM_REPLY frame from a client following `job_id`.
  // OK when taken; otherwise why not (the caller answers REJECTED).
  Status stream_reply(const std::string& job_id, std::string_view frame, bool binary);
  // The job's STREAM frame still waiting for a reply, to send on (re)attach.
  std::optional<std::string> pending_stream(const std::string& job_id) { return streams_.pending_frame(job_id); }

  // Blobs up to options().small_blob_bytes are kept in the job store, larger
  // ones in files (BlobStore): a file per blob costs ~1 ms to create.
  Status put_blob(BlobKind kind, const std::string& id, std::string_view bytes);
  Result<std::string> get_blob(BlobKind kind, const std::string& id);  // NOT_FOUND
  // The blob when the job store holds it; nullopt when it is a file (or gone).
  std::optional<std::string> small_blob(BlobKind kind, const std::string& id);

  std::string result_url(const std::string& job_id) const;
  nlohmann::json models_json() const;
  Result<nlohmann::json> model_json(const std::string& key) const;
  size_t queue_depth() const;
  void sweep_expired();  // retention
  const ServerOptions& options() const { return options_; }

 private:
  struct LoadedModel {
    ModelSpec spec;
    std::unique_ptr<runtime::Model> model;
    Executor* executor;
  };
  void run_job(const std::string& id);
  // The request decoded at submit, if this process kept it (removes it).
  std::shared_ptr<const transport::JobRequest> take_decoded(const std::string& id);
  // Sets the state, persists, announces; `extra` fields join the event.
  void transition(JobRecord& job, JobState state, nlohmann::json extra = nlohmann::json::object());
  // Stores the event, then announces it. `inline_result` goes to current
  // subscribers only (JobEvent::inline_result): the stored history stays
  // small, and a replayed COMPLETED points at the result URL instead. With
  // `job`, its new state is stored in the same transaction as the event.
  Status emit(const std::string& job_id, const nlohmann::json& event,
              std::shared_ptr<const std::string> inline_result = nullptr, const JobRecord* job = nullptr);
  // To current subscribers only, unsequenced and not stored (STREAM).
  void emit_live(const std::string& job_id, const std::string& frame);
  // Sends a stream node's value to the client and waits for its reply.
  Result<std::vector<runtime::NamedTensor>> ask_client(const std::string& job_id, uint64_t stream_id,
                                                       const std::string& callback,
                                                       const std::vector<runtime::NamedTensor>& value,
                                                       std::chrono::milliseconds timeout,
                                                       const std::atomic<bool>* cancel);
  void finish(JobRecord& job, JobState state, const std::string& code, const std::string& message);
  void notify_webhook(const JobRecord& job, uint64_t event_seq);
  nlohmann::json to_json(const JobRecord& job);
  const LoadedModel* find_model(const std::string& key) const;

  ServerOptions options_;
  JobStore& store_;
  BlobStore& blobs_;
  Metrics& metrics_;
  std::unique_ptr<WebhookSender> webhooks_;
  StreamBroker streams_;
  std::map<std::string, LoadedModel> models_;
  std::map<std::string, std::unique_ptr<Executor>> executors_;  // by device
  std::atomic<bool> draining_{false};

  std::mutex mu_;  // guards listeners_, running_, cancel_pending_, key_cache_, decoded_
  std::map<std::string, std::map<uint64_t, Listener>> listeners_;
  uint64_t next_handle_ = 1;
  std::map<std::string, std::shared_ptr<std::atomic<bool>>> running_;  // cancel flags of running jobs
  std::set<std::string> cancel_pending_;          // cancelled between queue and start
  std::map<std::string, std::string> key_cache_;  // api key -> key id
  // Small requests decoded at submit, handed to the executor so it need not
  // read and decode them again (the store keeps them for restarts).
  std::map<std::string, std::shared_ptr<const transport::JobRequest>> decoded_;
};

}  // namespace loom::server
