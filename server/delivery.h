// Delivery: how what happens to a job reaches the outside. Every state
// change and event is stored first (JobStore, one transaction with the
// record when there is one), then announced to the job's subscribers (the
// WebSocket followers, a submit that waits); terminal states post a webhook
// (recorded, so a restart resumes it); and the retention sweep deletes old
// jobs with their blobs.
// Thread safety: every method may be called from any thread. Listeners run
// on the thread that emitted (an executor, or an API call) and must not
// block: they post to their own executor.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "server/job_blobs.h"
#include "server/job_store.h"
#include "server/metrics.h"
#include "server/server_options.h"
#include "server/webhook.h"

namespace loom::server {

// The event's JSON as sent to a client: with "result_inline" (base64) when
// the live event carries the result.
std::string event_text(const JobEvent& event);

class Delivery {
 public:
  using Listener = std::function<void(const JobEvent&)>;

  Delivery(const ServerOptions& options, JobStore& store, JobBlobs& blobs, Metrics& metrics);
  ~Delivery();

  // Re-sends the webhooks a previous process had not delivered.
  Status resume_webhooks();
  void stop();  // gives up on webhooks not delivered yet (they stay recorded)

  // Registers `listener` for the job's future events; the handle unsubscribes.
  uint64_t subscribe(const std::string& job_id, Listener listener);
  void unsubscribe(const std::string& job_id, uint64_t handle);
  Result<std::vector<JobEvent>> events_after(const std::string& job_id, uint64_t after);

  // Stores the event, then announces it. `inline_result` goes to current
  // subscribers only (JobEvent::inline_result): the stored history stays
  // small, and a replayed COMPLETED points at the result URL instead. With
  // `job`, its new state is stored in the same transaction as the event.
  Status emit(const std::string& job_id, const nlohmann::json& event,
              std::shared_ptr<const std::string> inline_result = nullptr, const JobRecord* job = nullptr);
  // To current subscribers only, unsequenced and not stored (STREAM frames).
  void emit_live(const std::string& job_id, const std::string& frame);

  // A non-terminal state change: sets, persists, announces a STATUS event
  // (`extra` fields join it).
  void transition(JobRecord& job, JobState state, nlohmann::json extra = nlohmann::json::object());
  // The same, saying whether it was stored (a shared store refuses a job
  // that ended elsewhere: FAILED_PRECONDITION).
  Status try_transition(JobRecord& job, JobState state, nlohmann::json extra = nlohmann::json::object());
  // ERROR or CANCELLED with its code and message, and the webhook.
  void finish(JobRecord& job, JobState state, StatusCode code, const std::string& message);
  // COMPLETED (the result is stored already): the event, counted, and the
  // webhook. On failure to store the event the job is left as it was.
  Status complete(JobRecord& job, bool deduplicated, std::shared_ptr<const std::string> inline_result);

  void sweep_expired();  // retention

  // Scale-out, set before any event: each event this process stores or
  // sends live also goes to `publish` (to other processes' followers);
  // webhooks go to `handoff` (recorded first, as always) instead of being
  // sent from here; `delivered` hears of each webhook this process finished.
  // `stored_published`: the store publishes the events it stores itself
  // (RedisJobStore::publish_events), so `publish` gets only live frames.
  void set_publisher(std::function<void(const JobEvent&)> publish, bool stored_published = false) {
    publish_ = std::move(publish);
    stored_published_ = stored_published;
  }
  void set_webhook_handoff(std::function<void(const PendingWebhook&)> handoff) { handoff_ = std::move(handoff); }
  void set_webhook_delivered(std::function<void(const std::string& event_id)> d) { delivered_ = std::move(d); }
  // Sends a webhook from this process (one handed off by another).
  void send_webhook(PendingWebhook hook);
  // To this process's subscribers only (an event another process stored).
  void announce(const JobEvent& event);
  bool has_listeners(const std::string& job_id);
  std::vector<std::string> listened_jobs();

 private:
  void notify_webhook(const JobRecord& job);

  const ServerOptions& options_;
  JobStore& store_;
  JobBlobs& blobs_;
  Metrics& metrics_;
  std::unique_ptr<WebhookSender> webhooks_;
  std::function<void(const JobEvent&)> publish_;
  bool stored_published_ = false;
  std::function<void(const PendingWebhook&)> handoff_;
  std::function<void(const std::string&)> delivered_;
  std::mutex mu_;  // guards listeners_, next_handle_
  std::map<std::string, std::map<uint64_t, Listener>> listeners_;
  uint64_t next_handle_ = 1;
};

// Unix epoch milliseconds now, and as RFC 3339 UTC with milliseconds.
int64_t now_ms();
std::string rfc3339(int64_t ms);

}  // namespace loom::server
