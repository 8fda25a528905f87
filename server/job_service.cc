#include "server/job_service.h"

#include <ATen/ATen.h>

#include <chrono>
#include <ctime>
#include <iostream>

#include "graph/codec.h"
#include "graph/sha256.h"
#include "runtime/execute.h"
#include "runtime/safetensors.h"
#include "runtime/stream_value.h"
#include "runtime/tensor_data.h"
#include "transport/base64.h"
#include "transport/presign.h"
#include "transport/request.h"
#include "transport/stream_frames.h"
#include "transport/zstd_codec.h"

namespace loom::server {
namespace {

using json = nlohmann::json;

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

bool has_stream_nodes(const graph::Graph& g) {
  for (const auto& n : g.nodes) {
    if (n.kind == graph::NodeKind::kStream) return true;
  }
  return false;
}

}  // namespace

JobService::JobService(ServerOptions options, JobStore& store, BlobStore& blobs, Metrics& metrics)
    : options_(std::move(options)), store_(store), blobs_(blobs), metrics_(metrics) {
  WebhookOptions w;
  w.secret = options_.webhook_secret;
  w.attempts = options_.webhook_attempts;
  w.first_backoff = options_.webhook_first_backoff;
  w.timeout = options_.webhook_timeout;
  w.on_attempt = [this](const std::string& event_id, int attempts, bool finished) {
    Status s = finished ? store_.delete_webhook(event_id) : store_.set_webhook_attempts(event_id, attempts);
    if (!s.ok()) std::cerr << "loom-server: webhook " << event_id << ": " << s.message() << "\n";
  };
  webhooks_ = std::make_unique<WebhookSender>(w);
}

JobService::~JobService() { drain(); }

Status JobService::start(const std::vector<ModelSpec>& models) {
  for (const ModelSpec& spec : models) {
    runtime::ModelOptions mo;
    mo.device = spec.device;
    auto m = runtime::load_model(spec.path, mo);
    if (!m.ok()) return m.status().with_context("model \"" + spec.key + "\"");
    auto& ex = executors_[spec.device];
    if (!ex) {
      ex = std::make_unique<Executor>(spec.device, options_.queue_capacity, [this](const std::string& id) { run_job(id); });
    }
    models_[spec.key] = LoadedModel{spec, std::move(m).value(), ex.get()};
  }
  // Recovery: what a previous process left unfinished.
  auto left = store_.list_by_state({JobState::kReceived, JobState::kQueued, JobState::kDispatched, JobState::kRunning});
  if (!left.ok()) return left.status();
  for (JobRecord& job : *left) {
    const LoadedModel* lm = find_model(job.model);
    if (job.state == JobState::kReceived || lm == nullptr) {
      finish(job, JobState::kError, "UNAVAILABLE",
             lm == nullptr ? "the server restarted without model \"" + job.model + "\""
                           : "the server stopped before the job was queued; submit it again");
      continue;
    }
    if (job.state != JobState::kQueued) {
      (void)emit(job.id, {{"type", "LOG"}, {"text", "the server restarted while this job was running; running it again"}});
      transition(job, JobState::kQueued);
    }
    lm->executor->push_unbounded(job.id);
  }
  // Webhooks a previous process had not delivered yet.
  auto hooks = store_.pending_webhooks();
  if (!hooks.ok()) return hooks.status();
  for (PendingWebhook& h : *hooks) {
    webhooks_->enqueue(std::move(h.event_id), std::move(h.url), std::move(h.body), h.attempts);
  }
  for (auto& [device, ex] : executors_) ex->start();
  return Status();
}

void JobService::drain() {
  if (draining_.exchange(true)) return;
  for (auto& [device, ex] : executors_) ex->stop();
  if (webhooks_) webhooks_->stop();
}

Result<std::string> JobService::authenticate(const std::string& api_key) {
  if (!options_.require_auth) return std::string("anonymous");
  const std::string how = " (an operator creates keys with `loom keys create NAME --data-dir DIR` on the server; "
                          "send it as `Authorization: Bearer KEY` or set LOOM_API_KEY)";
  if (api_key.empty()) return Status(StatusCode::kUnauthenticated, "no API key" + how);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = key_cache_.find(api_key);
    if (it != key_cache_.end()) return it->second;
  }
  auto key = store_.find_key(api_key);
  if (!key.ok()) return key.status();
  if (!key->has_value()) return Status(StatusCode::kUnauthenticated, "unknown API key" + how);
  std::lock_guard<std::mutex> lock(mu_);
  key_cache_[api_key] = (*key)->key_id;
  return (*key)->key_id;
}

const JobService::LoadedModel* JobService::find_model(const std::string& key) const {
  auto it = models_.find(key);
  return it == models_.end() ? nullptr : &it->second;
}

Result<SubmitAnswer> JobService::submit(const std::string& owner, std::string_view body, Listener listener) {
  if (draining_) return Status(StatusCode::kUnavailable, "the server is shutting down; retry on another server or later");
  LOOM_ASSIGN_OR_RETURN(transport::JobRequest req, transport::decode_request(body, options_.request_limits));
  const LoadedModel* lm = find_model(req.model_key);
  if (lm == nullptr) {
    std::string known;
    for (const auto& [k, m] : models_) known += (known.empty() ? "" : ", ") + k;
    return not_found("unknown model \"" + req.model_key + "\" (this server has: " + known + ")");
  }
  LOOM_RETURN_IF_ERROR(runtime::validate_for_model(req.graph, *lm->model, options_.run_limits.graph));
  if (req.invokes.size() != req.graph.invokes) {
    return invalid_argument("the graph has " + std::to_string(req.graph.invokes) + " invoke(s) but the request carries " +
                            std::to_string(req.invokes.size()) + " input set(s)");
  }
  if (!req.request_id.empty()) {
    auto prior = store_.find_by_request_id(owner, req.request_id);
    if (!prior.ok()) return prior.status();
    if (prior->has_value()) return SubmitAnswer{(*prior)->id, (*prior)->state, true};
  }
  JobRecord job;
  job.id = new_job_id();
  job.owner = owner;
  job.model = req.model_key;
  job.created_ms = job.updated_ms = now_ms();
  job.request_id = req.request_id;
  job.callback_url = req.callback_url;
  uint64_t subscription = listener ? subscribe(job.id, std::move(listener)) : 0;
  // Failing before the job exists: the listener has nothing to hear.
  auto refuse = [&](Status s) {
    if (subscription != 0) unsubscribe(job.id, subscription);
    return s;
  };
  // Results are cached per owner: a shared cache would tell one user what another ran.
  if (!req.no_cache && !has_stream_nodes(req.graph)) {
    job.identity = sha256_hex(owner + "\n" + transport::request_identity(req));
    auto done = store_.find_completed(job.identity);
    if (!done.ok()) return refuse(done.status());
    if (done->has_value()) {
      auto bytes = get_blob(BlobKind::kResult, (*done)->id);
      if (bytes.ok() && put_blob(BlobKind::kResult, job.id, *bytes).ok()) {
        job.state = JobState::kCompleted;
        job.result_size = (*done)->result_size;
        job.result_sha256 = (*done)->result_sha256;
        Status created = store_.create(job);
        if (!created.ok()) return refuse(created);
        metrics_.job_entered(JobState::kCompleted);
        json ev = {{"type", "COMPLETED"}, {"state", "COMPLETED"}, {"deduplicated", true}};
        ev["result_size"] = job.result_size;
        ev["result_sha256"] = job.result_sha256;
        ev["result_url"] = result_url(job.id);
        std::shared_ptr<const std::string> inline_result;
        if (job.result_size <= options_.inline_max) inline_result = std::make_shared<const std::string>(*bytes);
        (void)emit(job.id, ev, std::move(inline_result));
        notify_webhook(job, 0);
        return SubmitAnswer{job.id, job.state, true, subscription};
      }
    }
  }
  if (static_cast<size_t>(lm->executor->size()) >= options_.queue_capacity) {
    return refuse(Status(StatusCode::kResourceExhausted, "the queue for " + lm->spec.device + " is full (" +
                                                      std::to_string(options_.queue_capacity) + " jobs); retry later"));
  }
  job.state = JobState::kReceived;
  Status created = store_.create(job);
  if (!created.ok()) return refuse(created);
  metrics_.job_entered(JobState::kReceived);
  Status put = put_blob(BlobKind::kRequest, job.id, body);
  if (!put.ok()) {
    finish(job, JobState::kError, "INTERNAL", "could not store the request: " + put.message());
    return refuse(put);
  }
  if (body.size() <= options_.small_blob_bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    decoded_[job.id] = std::make_shared<const transport::JobRequest>(std::move(req));
  }
  transition(job, JobState::kQueued, {{"queue_position", lm->executor->size()}});
  if (!lm->executor->try_push(job.id)) {
    (void)take_decoded(job.id);
    finish(job, JobState::kError, "RESOURCE_EXHAUSTED", "the queue was full");
    return refuse(Status(StatusCode::kResourceExhausted, "the queue for " + lm->spec.device + " is full; retry later"));
  }
  return SubmitAnswer{job.id, JobState::kQueued, false, subscription};
}

void JobService::transition(JobRecord& job, JobState state, json extra) {
  job.state = state;
  job.updated_ms = now_ms();
  metrics_.job_entered(state);
  extra["type"] = "STATUS";
  extra["state"] = job_state_name(state);
  (void)emit(job.id, extra, nullptr, &job);  // failures are logged
}

std::string event_text(const JobEvent& ev) {
  if (!ev.inline_result || ev.json.empty() || ev.json.back() != '}') return ev.json;
  std::string out = ev.json;
  out.pop_back();
  out += ",\"result_inline\":\"" + transport::base64_encode(*ev.inline_result) + "\"}";
  return out;
}

Status JobService::emit(const std::string& job_id, const json& event, std::shared_ptr<const std::string> inline_result,
                        const JobRecord* job) {
  json e = event;
  e["job_id"] = job_id;
  e["time"] = rfc3339(now_ms());
  auto stored = job != nullptr ? store_.update_and_append(*job, e.dump()) : store_.append_event(job_id, e.dump());
  if (!stored.ok()) {
    std::cerr << "loom-server: job " << job_id << ": event not stored: " << stored.status().message() << "\n";
    return stored.status();
  }
  stored->inline_result = std::move(inline_result);
  std::vector<Listener> targets;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = listeners_.find(job_id);
    if (it != listeners_.end()) {
      for (auto& [h, l] : it->second) targets.push_back(l);
    }
  }
  for (auto& l : targets) l(*stored);
  return Status();
}

void JobService::emit_live(const std::string& job_id, const std::string& frame) {
  std::vector<Listener> targets;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = listeners_.find(job_id);
    if (it != listeners_.end()) {
      for (auto& [h, l] : it->second) targets.push_back(l);
    }
  }
  JobEvent ev{job_id, 0, frame, nullptr};
  for (auto& l : targets) l(ev);
}

Result<std::vector<runtime::NamedTensor>> JobService::ask_client(const std::string& job_id, uint64_t stream_id,
                                                                 const std::string& callback,
                                                                 const std::vector<runtime::NamedTensor>& value,
                                                                 std::chrono::milliseconds timeout,
                                                                 const std::atomic<bool>* cancel) {
  const std::string who = "stream callback \"" + callback + "\"";
  transport::StreamRequest req;
  req.job_id = job_id;
  req.stream_id = stream_id;
  req.callback = callback;
  req.deadline_ms = static_cast<uint64_t>(timeout.count());
  req.max_reply_bytes = options_.max_stream_bytes;
  LOOM_ASSIGN_OR_RETURN(req.tensors, runtime::encode_safetensors(value));
  if (req.tensors.size() > options_.max_stream_bytes) {
    return resource_exhausted(who + ": the value is " + std::to_string(req.tensors.size()) +
                              " bytes, over the server's stream limit of " + std::to_string(options_.max_stream_bytes));
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  streams_.post(job_id, stream_id, transport::encode_stream_request(req));
  if (auto frame = streams_.pending_frame(job_id)) emit_live(job_id, *frame);
  transport::StreamReply reply;
  switch (streams_.wait(job_id, stream_id, deadline, cancel, &reply)) {
    case StreamBroker::Outcome::kDeadline:
      return Status(StatusCode::kDeadlineExceeded,
                    who + " got no reply within " + std::to_string(timeout.count()) +
                        " ms (no client answered or reattached in time; a run sets this with its stream timeout)");
    case StreamBroker::Outcome::kCancelled:
      return Status(StatusCode::kCancelled, "cancelled while waiting for " + who);
    case StreamBroker::Outcome::kReply: break;
  }
  if (!reply.error.empty()) return invalid_argument(who + " failed on the client: " + reply.error);
  if (reply.tensors.size() > options_.max_stream_bytes) {
    return resource_exhausted(who + ": the reply is " + std::to_string(reply.tensors.size()) +
                              " bytes, over the server's stream limit of " + std::to_string(options_.max_stream_bytes));
  }
  runtime::SafetensorsLimits limits;
  limits.max_total_bytes = options_.max_stream_bytes;
  limits.max_header_bytes = std::min<uint64_t>(limits.max_header_bytes, options_.max_stream_bytes);
  auto file = runtime::read_safetensors_buffer(reply.tensors, limits);
  if (!file.ok()) return invalid_argument(who + ": the reply is not a valid tensor set: " + file.status().message());
  return std::move(file->tensors);
}

Status JobService::stream_reply(const std::string& job_id, std::string_view frame, bool binary) {
  LOOM_ASSIGN_OR_RETURN(transport::StreamReply reply,
                        transport::decode_stream_reply(frame, binary, options_.max_ws_frame_bytes));
  return streams_.reply(job_id, std::move(reply));
}

void JobService::finish(JobRecord& job, JobState state, const std::string& code, const std::string& message) {
  job.state = state;
  job.error_code = code;
  job.error_message = message;
  job.updated_ms = now_ms();
  metrics_.job_entered(state);
  metrics_.job_finished((job.updated_ms - job.created_ms) / 1000.0);
  json ev = {{"type", state == JobState::kCancelled ? "CANCELLED" : "ERROR"}, {"state", job_state_name(state)},
             {"code", code}, {"message", message}};
  (void)emit(job.id, ev, nullptr, &job);  // failures are logged
  notify_webhook(job, 0);
}

void JobService::notify_webhook(const JobRecord& job, uint64_t) {
  if (job.callback_url.empty()) return;
  json body = {{"event_id", job.id + ":" + job_state_name(job.state)}, {"job_id", job.id},
               {"state", job_state_name(job.state)}};
  if (job.state == JobState::kCompleted) body["result_url"] = result_url(job.id);
  if (!job.error_code.empty()) body["error"] = {{"code", job.error_code}, {"message", job.error_message}};
  // Recorded first: a restart resumes a delivery that was not done.
  PendingWebhook hook{job.id + ":" + job_state_name(job.state), job.id, job.callback_url, body.dump(), 0};
  Status s = store_.put_webhook(hook);
  if (!s.ok()) std::cerr << "loom-server: job " << job.id << ": webhook not recorded: " << s.message() << "\n";
  webhooks_->enqueue(std::move(hook.event_id), std::move(hook.url), std::move(hook.body));
}

void JobService::run_job(const std::string& id) {
  std::shared_ptr<const transport::JobRequest> req = take_decoded(id);  // whatever happens next
  auto cancel = std::make_shared<std::atomic<bool>>(false);
  {
    std::lock_guard<std::mutex> lock(mu_);
    running_[id] = cancel;
    if (cancel_pending_.erase(id)) cancel->store(true);
  }
  struct Unregister {
    JobService* s;
    std::string id;
    ~Unregister() {
      std::lock_guard<std::mutex> lock(s->mu_);
      s->running_.erase(id);
    }
  } unregister{this, id};
  auto rec = store_.get(id);
  if (!rec.ok()) return;
  JobRecord job = std::move(rec).value();
  if (is_terminal(job.state)) return;
  if (cancel->load()) {
    job.cancel_requested = true;
    finish(job, JobState::kCancelled, "CANCELLED", "cancelled before it ran");
    return;
  }
  transition(job, JobState::kDispatched);
  transition(job, JobState::kRunning);

  auto fail = [&](const Status& s) {
    finish(job, s.code() == StatusCode::kCancelled ? JobState::kCancelled : JobState::kError,
           status_code_name(s.code()), s.message());
  };
  if (!req) {  // submitted before a restart, or too large to keep: from the store
    auto body = get_blob(BlobKind::kRequest, id);
    if (!body.ok()) return fail(body.status());
    auto decoded = transport::decode_request(*body, options_.request_limits);
    if (!decoded.ok()) return fail(decoded.status());
    req = std::make_shared<const transport::JobRequest>(std::move(decoded).value());
  }
  const LoadedModel* lm = find_model(req->model_key);
  if (lm == nullptr) return fail(not_found("model \"" + req->model_key + "\" is gone"));

  std::vector<std::vector<c10::IValue>> inputs;
  for (const auto& invoke : req->invokes) {
    std::vector<c10::IValue> in;
    for (const auto& td : invoke) {
      auto t = runtime::to_tensor(td);
      if (!t.ok()) return fail(t.status());
      in.emplace_back(std::move(t).value());
    }
    inputs.push_back(std::move(in));
  }
  runtime::ExecOptions eo;
  eo.limits = options_.run_limits;
  if (req->wall_time_ms > 0) {
    eo.limits.max_wall_time = std::min(eo.limits.max_wall_time, std::chrono::milliseconds(req->wall_time_ms));
  }
  eo.cancel = cancel.get();
  eo.on_log = [&](const std::string& text, const c10::IValue& v) {
    (void)emit(id, {{"type", "LOG"}, {"text", text}, {"value", runtime::log_summary(v)}});
  };
  uint64_t stream_id = 0;
  std::chrono::milliseconds stream_timeout(req->stream_timeout_ms == 0 ? 60000 : req->stream_timeout_ms);
  stream_timeout = std::min(stream_timeout, options_.max_stream_timeout);
  eo.on_stream = [&](const std::string& callback, const std::vector<runtime::NamedTensor>& value) {
    return ask_client(id, ++stream_id, callback, value, stream_timeout, cancel.get());
  };
  auto out = runtime::execute(*lm->model, req->graph, inputs, eo);
  streams_.close(id);
  if (!out.ok()) return fail(out.status());

  std::map<std::string, std::string> meta = {
      {"job_id", id}, {"model", req->model_key}, {"graph_sha256", graph::graph_checksum(req->graph)}};
  auto encoded = runtime::encode_safetensors(out->saved, meta);
  if (!encoded.ok()) return fail(encoded.status());
  // Level 1: results are mostly float noise, which higher levels barely shrink more.
  std::string compressed = transport::zstd_compress(*encoded, 1);
  Status put = put_blob(BlobKind::kResult, id, compressed);
  if (!put.ok()) return fail(put);
  job.result_size = compressed.size();
  job.result_sha256 = sha256_hex(compressed);
  job.state = JobState::kCompleted;
  job.updated_ms = now_ms();
  json ev = {{"type", "COMPLETED"}, {"state", "COMPLETED"}, {"result_size", job.result_size},
             {"result_sha256", job.result_sha256}, {"result_url", result_url(id)}};
  std::shared_ptr<const std::string> inline_result;
  if (compressed.size() <= options_.inline_max) inline_result = std::make_shared<const std::string>(std::move(compressed));
  Status s = emit(id, ev, std::move(inline_result), &job);
  if (!s.ok()) {
    job.state = JobState::kRunning;
    return fail(s);
  }
  metrics_.job_entered(JobState::kCompleted);
  metrics_.job_finished((job.updated_ms - job.created_ms) / 1000.0);
  notify_webhook(job, 0);
}

std::shared_ptr<const transport::JobRequest> JobService::take_decoded(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = decoded_.find(id);
  if (it == decoded_.end()) return nullptr;
  auto req = std::move(it->second);
  decoded_.erase(it);
  return req;
}

Result<JobRecord> JobService::owned_job(const std::string& owner, const std::string& id) {
  auto job = store_.get(id);
  if (!job.ok() || job->owner != owner) return not_found("no job \"" + id + "\" for this API key");
  return job;
}

Result<JobState> JobService::job_state(const std::string& id) {
  LOOM_ASSIGN_OR_RETURN(JobRecord job, store_.get(id));
  return job.state;
}

json JobService::to_json(const JobRecord& job) {
  json j = {{"id", job.id}, {"state", job_state_name(job.state)}, {"model", job.model},
            {"created_at", rfc3339(job.created_ms)}, {"updated_at", rfc3339(job.updated_ms)}};
  if (job.state == JobState::kQueued) {
    const LoadedModel* lm = find_model(job.model);
    if (lm != nullptr) j["queue_position"] = lm->executor->position(job.id);
  }
  if (!job.error_code.empty()) j["error"] = {{"code", job.error_code}, {"message", job.error_message}};
  if (job.state == JobState::kCompleted) {
    j["result_url"] = result_url(job.id);
    j["result_size"] = job.result_size;
    j["result_sha256"] = job.result_sha256;
  }
  return j;
}

Result<json> JobService::snapshot(const std::string& owner, const std::string& id) {
  LOOM_ASSIGN_OR_RETURN(JobRecord job, owned_job(owner, id));
  return to_json(job);
}

Result<json> JobService::list(const std::string& owner) {
  LOOM_ASSIGN_OR_RETURN(std::vector<JobRecord> jobs, store_.list_by_owner(owner, 100));
  json arr = json::array();
  for (const auto& j : jobs) arr.push_back(to_json(j));
  return json{{"jobs", arr}};
}

Result<json> JobService::cancel(const std::string& owner, const std::string& id) {
  LOOM_ASSIGN_OR_RETURN(JobRecord job, owned_job(owner, id));
  if (is_terminal(job.state)) return to_json(job);
  {
    // Running: the interleaver stops at the next hook point and the
    // executor records CANCELLED. Only the executor writes a running job.
    std::lock_guard<std::mutex> lock(mu_);
    auto it = running_.find(id);
    if (it != running_.end()) {
      it->second->store(true);
      return to_json(job);
    }
  }
  const LoadedModel* lm = find_model(job.model);
  if (lm != nullptr && lm->executor->remove(id)) {
    (void)take_decoded(id);
    job.cancel_requested = true;
    finish(job, JobState::kCancelled, "CANCELLED", "cancelled while queued");  // it never runs
    return to_json(job);
  }
  // Taken off the queue but not started yet: run_job sees this before it runs.
  std::lock_guard<std::mutex> lock(mu_);
  cancel_pending_.insert(id);
  return to_json(job);
}

uint64_t JobService::subscribe(const std::string& job_id, Listener listener) {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t h = next_handle_++;
  listeners_[job_id][h] = std::move(listener);
  return h;
}

void JobService::unsubscribe(const std::string& job_id, uint64_t handle) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = listeners_.find(job_id);
  if (it == listeners_.end()) return;
  it->second.erase(handle);
  if (it->second.empty()) listeners_.erase(it);
}

Result<std::vector<JobEvent>> JobService::events_after(const std::string& job_id, uint64_t after) {
  return store_.events_after(job_id, after);
}

Status JobService::put_blob(BlobKind kind, const std::string& id, std::string_view bytes) {
  if (bytes.size() <= options_.small_blob_bytes) return store_.put_blob(static_cast<int>(kind), id, bytes);
  return blobs_.put(kind, id, bytes);
}

Result<std::string> JobService::get_blob(BlobKind kind, const std::string& id) {
  LOOM_ASSIGN_OR_RETURN(std::optional<std::string> small, store_.get_blob(static_cast<int>(kind), id));
  if (small) return std::move(*small);
  return blobs_.get(kind, id);
}

std::optional<std::string> JobService::small_blob(BlobKind kind, const std::string& id) {
  auto small = store_.get_blob(static_cast<int>(kind), id);
  return small.ok() ? std::move(*small) : std::nullopt;
}

std::string JobService::result_url(const std::string& job_id) const {
  int64_t expires = std::chrono::duration_cast<std::chrono::seconds>(
                        (std::chrono::system_clock::now() + options_.url_lifetime).time_since_epoch())
                        .count();
  return transport::presign(options_.presign_secret, "GET", "/v1/blobs/results/" + job_id, expires);
}

json JobService::models_json() const {
  json arr = json::array();
  for (const auto& [k, m] : models_) arr.push_back({{"key", k}, {"kind", m.model->kind()}, {"device", m.spec.device}});
  return json{{"models", arr}};
}

Result<json> JobService::model_json(const std::string& key) const {
  const LoadedModel* lm = find_model(key);
  if (lm == nullptr) return not_found("unknown model \"" + key + "\"");
  return json{{"key", key}, {"kind", lm->model->kind()}, {"device", lm->spec.device},
              {"modules", lm->model->module_paths()}};
}

size_t JobService::queue_depth() const {
  size_t n = 0;
  for (const auto& [d, ex] : executors_) n += ex->size();
  return n;
}

void JobService::sweep_expired() {
  auto old = store_.list_expired(now_ms() - std::chrono::duration_cast<std::chrono::milliseconds>(options_.retention).count());
  if (!old.ok()) return;
  for (const auto& job : *old) {
    (void)blobs_.remove(BlobKind::kResult, job.id);
    (void)blobs_.remove(BlobKind::kRequest, job.id);
    (void)store_.remove(job.id);
  }
}

}  // namespace loom::server
