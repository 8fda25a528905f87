#include "server/delivery.h"

#include <chrono>
#include <ctime>
#include <iostream>

#include "transport/base64.h"
#include "transport/wire.h"

namespace loom::server {

using json = nlohmann::json;
using transport::event_type_name;
using transport::EventType;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string rfc3339(int64_t ms) {
  std::time_t s = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms % 1000));
  return out;
}

std::string event_text(const JobEvent& ev) {
  if (!ev.inline_result || ev.json.empty() || ev.json.back() != '}') return ev.json;
  std::string out = ev.json;
  out.pop_back();
  out += ",\"result_inline\":\"" + transport::base64_encode(*ev.inline_result) + "\"}";
  return out;
}

Delivery::Delivery(const ServerOptions& options, JobStore& store, JobBlobs& blobs, Metrics& metrics)
    : options_(options), store_(store), blobs_(blobs), metrics_(metrics) {
  WebhookOptions w;
  w.secret = options_.webhook_secret;
  w.attempts = options_.webhook_attempts;
  w.first_backoff = options_.webhook_first_backoff;
  w.timeout = options_.webhook_timeout;
  w.max_in_flight = options_.webhook_max_in_flight;
  w.ca_file = options_.webhook_ca_file;
  w.policy = CallbackPolicy(options_.webhook_allow);
  w.on_attempt = [this](const std::string& event_id, int attempts, bool finished) {
    Status s = finished ? store_.delete_webhook(event_id) : store_.set_webhook_attempts(event_id, attempts);
    if (!s.ok()) std::cerr << "loom-server: webhook " << event_id << ": " << s.message() << "\n";
    if (finished && delivered_) delivered_(event_id);
  };
  webhooks_ = std::make_unique<WebhookSender>(w);
}

Delivery::~Delivery() { stop(); }

Status Delivery::resume_webhooks() {
  LOOM_ASSIGN_OR_RETURN(std::vector<PendingWebhook> hooks, store_.pending_webhooks());
  for (PendingWebhook& h : hooks) {
    webhooks_->enqueue(std::move(h.event_id), std::move(h.url), std::move(h.body), h.attempts);
  }
  return Status();
}

void Delivery::stop() {
  if (webhooks_) webhooks_->stop();
}

uint64_t Delivery::subscribe(const std::string& job_id, Listener listener) {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t h = next_handle_++;
  listeners_[job_id][h] = std::move(listener);
  return h;
}

void Delivery::unsubscribe(const std::string& job_id, uint64_t handle) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = listeners_.find(job_id);
  if (it == listeners_.end()) return;
  it->second.erase(handle);
  if (it->second.empty()) listeners_.erase(it);
}

Result<std::vector<JobEvent>> Delivery::events_after(const std::string& job_id, uint64_t after) {
  return store_.events_after(job_id, after);
}

bool Delivery::has_listeners(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  return listeners_.count(job_id) != 0;
}

std::vector<std::string> Delivery::listened_jobs() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> ids;
  for (const auto& [id, l] : listeners_) ids.push_back(id);
  return ids;
}

void Delivery::send_webhook(PendingWebhook hook) {
  webhooks_->enqueue(std::move(hook.event_id), std::move(hook.url), std::move(hook.body), hook.attempts);
}

void Delivery::announce(const JobEvent& event) {
  std::vector<Listener> targets;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = listeners_.find(event.job_id);
    if (it != listeners_.end()) {
      for (auto& [h, l] : it->second) targets.push_back(l);
    }
  }
  for (auto& l : targets) l(event);
}

Status Delivery::emit(const std::string& job_id, const json& event, std::shared_ptr<const std::string> inline_result,
                      const JobRecord* job) {
  json e = event;
  e["job_id"] = job_id;
  e["time"] = rfc3339(now_ms());
  // Replace, not throw, on text from outside (a LOG node's message).
  const std::string text = e.dump(-1, ' ', false, json::error_handler_t::replace);
  auto stored = job != nullptr ? store_.update_and_append(*job, text) : store_.append_event(job_id, text);
  if (!stored.ok()) {
    std::cerr << "loom-server: job " << job_id << ": event not stored: " << stored.status().message() << "\n";
    return stored.status();
  }
  stored->inline_result = std::move(inline_result);
  announce(*stored);
  if (publish_ && !stored_published_) publish_(*stored);
  return Status();
}

void Delivery::emit_live(const std::string& job_id, const std::string& frame) {
  JobEvent ev{job_id, 0, frame, nullptr};
  announce(ev);
  if (publish_) publish_(ev);
}

void Delivery::transition(JobRecord& job, JobState state, json extra) {
  (void)try_transition(job, state, std::move(extra));  // failures are logged
}

Status Delivery::try_transition(JobRecord& job, JobState state, json extra) {
  job.state = state;
  job.updated_ms = now_ms();
  metrics_.job_entered(state);
  extra["type"] = event_type_name(EventType::kStatus);
  extra["state"] = job_state_name(state);
  return emit(job.id, extra, nullptr, &job);
}

void Delivery::finish(JobRecord& job, JobState state, StatusCode code, const std::string& message) {
  job.state = state;
  job.error_code = status_code_name(code);
  job.error_message = message;
  job.updated_ms = now_ms();
  metrics_.job_entered(state);
  metrics_.job_finished((job.updated_ms - job.created_ms) / 1000.0);
  json ev = {{"type", event_type_name(transport::terminal_event_type(state))},
             {"state", job_state_name(state)},
             {"code", job.error_code},
             {"message", message}};
  (void)emit(job.id, ev, nullptr, &job);  // failures are logged
  notify_webhook(job);
}

Status Delivery::complete(JobRecord& job, bool deduplicated, std::shared_ptr<const std::string> inline_result) {
  const JobState before = job.state;
  job.state = JobState::kCompleted;
  job.updated_ms = now_ms();
  json ev = {{"type", event_type_name(EventType::kCompleted)}, {"state", job_state_name(JobState::kCompleted)}};
  if (deduplicated) ev["deduplicated"] = true;
  ev["result_size"] = job.result_size;
  ev["result_sha256"] = job.result_sha256;
  ev["result_url"] = blobs_.result_url(job.id);
  // A deduplicated job was created COMPLETED: its record is written already.
  Status s = emit(job.id, ev, std::move(inline_result), deduplicated ? nullptr : &job);
  if (!s.ok()) {
    job.state = before;
    return s;
  }
  metrics_.job_entered(JobState::kCompleted);
  if (!deduplicated) metrics_.job_finished((job.updated_ms - job.created_ms) / 1000.0);
  notify_webhook(job);
  return Status();
}

void Delivery::notify_webhook(const JobRecord& job) {
  if (job.callback_url.empty()) return;
  const std::string event_id = job.id + ":" + job_state_name(job.state);
  json body = {{"event_id", event_id}, {"job_id", job.id}, {"state", job_state_name(job.state)}};
  if (job.state == JobState::kCompleted) body["result_url"] = blobs_.result_url(job.id);
  if (!job.error_code.empty()) body["error"] = {{"code", job.error_code}, {"message", job.error_message}};
  // Recorded first: a restart resumes a delivery that was not done.
  PendingWebhook hook{event_id, job.id, job.callback_url, body.dump(-1, ' ', false, json::error_handler_t::replace), 0};
  Status s = store_.put_webhook(hook);
  if (!s.ok()) std::cerr << "loom-server: job " << job.id << ": webhook not recorded: " << s.message() << "\n";
  if (handoff_) return handoff_(hook);
  webhooks_->enqueue(std::move(hook.event_id), std::move(hook.url), std::move(hook.body));
}

void Delivery::sweep_expired() {
  auto old = store_.list_expired(now_ms() - std::chrono::duration_cast<std::chrono::milliseconds>(options_.retention).count());
  if (!old.ok()) return;
  for (const auto& job : *old) {
    blobs_.remove_files(job.id);
    (void)store_.remove(job.id);
  }
}

}  // namespace loom::server
