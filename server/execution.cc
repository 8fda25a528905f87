#include "server/execution.h"

#include <ATen/ATen.h>

#include <cmath>
#include <condition_variable>
#include <thread>

#include <iostream>

#include "graph/codec.h"
#include "graph/sha256.h"
#include "runtime/causal_lm.h"
#include "runtime/execute.h"
#include "runtime/generate.h"
#include "runtime/model.h"
#include "runtime/safetensors.h"
#include "runtime/stream_value.h"
#include "runtime/tensor_data.h"
#include "transport/stream_frames.h"
#include "transport/wire.h"
#include "transport/zstd_codec.h"

namespace loom::server {

using json = nlohmann::json;
using transport::event_type_name;
using transport::EventType;

Execution::Execution(const ServerOptions& options, JobStore& store, JobBlobs& blobs, Delivery& delivery,
                     WorkerHooks hooks)
    : options_(options),
      store_(store),
      blobs_(blobs),
      delivery_(delivery),
      hooks_(std::move(hooks)),
      tiers_(options.tier_budgets, hooks_.on_tier) {}

Execution::~Execution() { stop(); }

Status Execution::start(const std::vector<ModelSpec>& models) {
  for (const ModelSpec& spec : models) {
    runtime::ModelOptions mo;
    mo.device = spec.device;
    auto m = runtime::load_model(spec.path, mo);
    if (!m.ok()) return m.status().with_context("model \"" + spec.key + "\"");
    auto revision = model_revision(spec.path);
    if (!revision.ok()) return revision.status().with_context("model \"" + spec.key + "\"");
    auto& ex = executors_[spec.device];
    if (!ex) {
      ex = std::make_unique<Executor>(spec.device, options_.queue_capacity,
                                      [this](const std::string& id) { run_and_finish(id); });
    }
    LoadedModel lm{spec, ex.get(), (*m)->kind(), std::move(revision).value(),
                   std::make_shared<const std::vector<std::string>>((*m)->module_paths()), std::nullopt};
    if (auto* causal = dynamic_cast<const runtime::CausalLm*>(m->get())) lm.vocab_size = causal->vocab_size();
    models_[spec.key] = std::move(lm);
    LOOM_RETURN_IF_ERROR(tiers_.add(spec, std::move(m).value()));
  }
  finishers_ = std::make_unique<WorkPool>(std::max<size_t>(1, executors_.size()), 2 * executors_.size());
  if (!hooks_.recover_at_start) {
    for (auto& [device, ex] : executors_) ex->start();
    return Status();
  }
  // Recovery: what a previous process left unfinished.
  auto left = store_.list_by_state(
      {JobState::kReceived, JobState::kQueued, JobState::kDispatched, JobState::kLoading, JobState::kRunning});
  if (!left.ok()) return left.status();
  for (JobRecord& job : *left) {
    const LoadedModel* lm = find_model(job.model);
    if (job.state == JobState::kReceived || lm == nullptr) {
      delivery_.finish(job, JobState::kError, StatusCode::kUnavailable,
                       lm == nullptr ? "the server restarted without model \"" + job.model + "\""
                                     : "the server stopped before the job was queued; submit it again");
      continue;
    }
    if (job.state != JobState::kQueued) {
      // The poison-job guard: the store's events say how often a restart
      // found this job running already. A job the process died in twice
      // may be what kills it; it is failed, not run a third time.
      const int64_t died_in = recovered_runs(job.id) + 1;
      if (died_in >= kMaxDeathsPerJob) {
        delivery_.finish(job, JobState::kError, StatusCode::kInternal,
                         "the server stopped " + std::to_string(died_in) +
                             " times while running this job; it is not run again (submit it again to retry)");
        continue;
      }
      (void)delivery_.emit(job.id, {{"type", event_type_name(EventType::kLog)},
                                    {"text", "the server restarted while this job was running; running it again"},
                                    {"recovered_run", died_in}});
      delivery_.transition(job, JobState::kQueued);
    }
    lm->executor->push_unbounded(job.id);
  }
  for (auto& [device, ex] : executors_) ex->start();
  ticker_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(ticker_mu_);
    while (!ticker_cv_.wait_for(lock, std::chrono::seconds(1), [this] { return ticker_stop_; })) {
      lock.unlock();
      announce_positions();
      lock.lock();
    }
  });
  return Status();
}

void Execution::announce_positions() {
  std::vector<std::pair<std::string, int64_t>> moved;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::map<std::string, int64_t> now;
    for (const auto& [device, ex] : executors_) {
      std::vector<std::string> ids = ex->queued();
      for (size_t i = 0; i < ids.size(); ++i) now[ids[i]] = static_cast<int64_t>(i);
    }
    // Jobs that left the queue are forgotten; those queued since are known
    // from try_enqueue (the position their QUEUED event gave). A job told
    // less than a second ago waits for the next tick.
    const auto t = std::chrono::steady_clock::now();
    for (auto it = announced_position_.begin(); it != announced_position_.end();) {
      auto n = now.find(it->first);
      if (n == now.end()) {
        it = announced_position_.erase(it);
        continue;
      }
      if (n->second != it->second.position && t - it->second.at >= std::chrono::seconds(1)) {
        moved.emplace_back(it->first, n->second);
        it->second = {n->second, t};
      }
      ++it;
    }
  }
  for (const auto& [id, position] : moved) {
    (void)delivery_.emit(id, {{"type", event_type_name(EventType::kStatus)},
                              {"state", job_state_name(JobState::kQueued)},
                              {"queue_position", position}});
  }
}

int64_t Execution::recovered_runs(const std::string& job_id) {
  auto events = store_.events_after(job_id, 0);
  if (!events.ok()) return 0;
  int64_t most = 0;
  for (const JobEvent& ev : *events) {
    json j = json::parse(ev.json, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("recovered_run") && j["recovered_run"].is_number_integer()) {
      most = std::max(most, j["recovered_run"].get<int64_t>());
    }
  }
  return most;
}

void Execution::stop(std::chrono::milliseconds deadline) {
  std::mutex m;
  std::condition_variable cv;
  bool stopped = false;
  std::thread watchdog([&] {
    std::unique_lock<std::mutex> lock(m);
    if (cv.wait_for(lock, deadline, [&] { return stopped; })) return;
    drain_expired_ = true;
    std::lock_guard<std::mutex> guard(mu_);
    for (auto& [id, flag] : running_) flag->store(true);
  });
  {
    std::lock_guard<std::mutex> lock(ticker_mu_);
    ticker_stop_ = true;
  }
  ticker_cv_.notify_all();
  if (ticker_.joinable()) ticker_.join();
  for (auto& [device, ex] : executors_) ex->stop();
  if (finishers_) finishers_->stop();  // the results of the last jobs are written
  {
    std::lock_guard<std::mutex> lock(m);
    stopped = true;
  }
  cv.notify_all();
  watchdog.join();
}

const Execution::LoadedModel* Execution::find_model(const std::string& key) const {
  auto it = models_.find(key);
  return it == models_.end() ? nullptr : &it->second;
}

std::optional<JobRunner::ModelView> Execution::find(const std::string& key) const {
  const LoadedModel* lm = find_model(key);
  if (lm == nullptr) return std::nullopt;
  return ModelView{lm->kind, lm->spec.device, lm->revision, lm->module_paths, lm->vocab_size, lm->spec.path};
}

std::vector<std::string> Execution::served_keys() const {
  std::vector<std::string> keys;
  for (const auto& [k, m] : models_) keys.push_back(k);
  return keys;
}

size_t Execution::load_for(const std::string& key) const {
  const LoadedModel* lm = find_model(key);
  return lm == nullptr ? 0 : lm->executor->load();
}

bool Execution::wait_load_below(const std::string& key, size_t n, std::chrono::milliseconds timeout) const {
  const LoadedModel* lm = find_model(key);
  return lm != nullptr && lm->executor->wait_load_below(n, timeout);
}

std::vector<std::string> Execution::take_queued(const std::string& key) {
  const LoadedModel* lm = find_model(key);
  if (lm == nullptr) return {};
  std::vector<std::string> taken = lm->executor->take_queued();
  for (const std::string& id : taken) (void)take_decoded(id);
  return taken;
}

bool Execution::cancel_running(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = running_.find(job_id);
  if (it == running_.end()) return false;
  it->second->store(true);
  return true;
}

std::string Execution::model_keys() const {
  std::string known;
  for (const auto& [k, m] : models_) known += (known.empty() ? "" : ", ") + k;
  return known;
}

size_t Execution::queued_for(const std::string& key) const {
  const LoadedModel* lm = find_model(key);
  return lm == nullptr ? 0 : lm->executor->size();
}

bool Execution::try_enqueue(const std::string& key, const std::string& job_id,
                            std::shared_ptr<const transport::JobRequest> decoded) {
  const LoadedModel* lm = find_model(key);
  if (lm == nullptr) return false;
  if (decoded) {
    std::lock_guard<std::mutex> lock(mu_);
    decoded_[job_id] = std::move(decoded);
  }
  {
    // The place its QUEUED event gave (Admission reads it just before).
    std::lock_guard<std::mutex> lock(mu_);
    announced_position_[job_id] = {static_cast<int64_t>(lm->executor->size()), std::chrono::steady_clock::now()};
  }
  if (lm->executor->try_push(job_id)) return true;
  (void)take_decoded(job_id);
  return false;
}

size_t Execution::queue_depth() const {
  size_t n = 0;
  for (const auto& [d, ex] : executors_) n += ex->size();
  return n;
}

int64_t Execution::queue_position(const std::string& model, const std::string& job_id) const {
  const LoadedModel* lm = find_model(model);
  return lm == nullptr ? -1 : lm->executor->position(job_id);
}

bool Execution::cancel(JobRecord& job) {
  {
    // Running: the interleaver stops at the next hook point and the
    // executor records CANCELLED. Only the executor writes a running job.
    std::lock_guard<std::mutex> lock(mu_);
    auto it = running_.find(job.id);
    if (it != running_.end()) {
      it->second->store(true);
      return true;
    }
  }
  const LoadedModel* lm = find_model(job.model);
  if (lm != nullptr && lm->executor->remove(job.id)) {
    (void)take_decoded(job.id);
    job.cancel_requested = true;
    delivery_.finish(job, JobState::kCancelled, StatusCode::kCancelled, "cancelled while queued");  // it never runs
    return false;
  }
  // Taken off the queue but not started yet: run_job sees this before it runs.
  std::lock_guard<std::mutex> lock(mu_);
  cancel_pending_.insert(job.id);
  return false;
}

std::shared_ptr<const transport::JobRequest> Execution::take_decoded(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = decoded_.find(id);
  if (it == decoded_.end()) return nullptr;
  auto req = std::move(it->second);
  decoded_.erase(it);
  return req;
}

Status Execution::stream_reply(const std::string& job_id, std::string_view frame, bool binary) {
  LOOM_ASSIGN_OR_RETURN(transport::StreamReply reply,
                        transport::decode_stream_reply(frame, binary, options_.max_ws_frame_bytes));
  return streams_.reply(job_id, std::move(reply));
}

Result<std::vector<runtime::NamedTensor>> Execution::ask_client(const std::string& job_id, uint64_t stream_id,
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
  if (auto frame = streams_.pending_frame(job_id)) {
    if (hooks_.on_stream_pending) hooks_.on_stream_pending(job_id, &*frame);
    delivery_.emit_live(job_id, *frame);
  }
  transport::StreamReply reply;
  const StreamBroker::Outcome outcome = streams_.wait(job_id, stream_id, deadline, cancel, &reply);
  if (hooks_.on_stream_pending) hooks_.on_stream_pending(job_id, nullptr);
  switch (outcome) {
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

bool Execution::ended_elsewhere(const JobRecord& job) {
  auto now = store_.get(job.id);
  return !now.ok() || is_terminal(now->state);
}

void Execution::run_and_finish(const std::string& id) {
  Rest rest = run_job(id);
  Rest end = [this, id, rest] {
    if (rest) rest();
    if (hooks_.on_done) hooks_.on_done(id);
  };
  if (!rest || !finishers_->try_post(end)) end();
}

Execution::Rest Execution::run_job(const std::string& id) {
  std::optional<JobRecord> job;
  Rest rest;
  try {
    run_job(id, job, rest);
  } catch (const std::exception& e) {
    // A job whose execution throws ends in ERROR with what it threw.
    if (job && !is_terminal(job->state)) {
      delivery_.finish(*job, JobState::kError, StatusCode::kInternal,
                       std::string("the job's execution failed: ") + e.what());
    }
    return nullptr;
  }
  return rest;
}

void Execution::run_job(const std::string& id, std::optional<JobRecord>& held, Rest& rest) {
  std::shared_ptr<const transport::JobRequest> req = take_decoded(id);  // whatever happens next
  auto cancel = std::make_shared<std::atomic<bool>>(false);
  {
    std::lock_guard<std::mutex> lock(mu_);
    running_[id] = cancel;
    if (cancel_pending_.erase(id)) cancel->store(true);
  }
  // Running until its rest is done too: a cancel that comes meanwhile finds
  // it running (too late to stop it) rather than waiting for it to start.
  struct Unregister {
    Execution* s;
    std::string id;
    ~Unregister() {
      std::lock_guard<std::mutex> lock(s->mu_);
      s->running_.erase(id);
    }
  };
  std::shared_ptr<Unregister> unregister(new Unregister{this, id});  // no temporary to run ~Unregister early
  auto rec = store_.get(id);
  if (!rec.ok()) return;
  held = std::move(rec).value();
  JobRecord& job = *held;
  if (is_terminal(job.state)) return;
  if (cancel->load() || job.cancel_requested) {
    job.cancel_requested = true;
    delivery_.finish(job, JobState::kCancelled, StatusCode::kCancelled, "cancelled before it ran");
    return;
  }
  delivery_.transition(job, JobState::kDispatched);
  Result<runtime::Model*> model = acquire_model(job);
  if (!model.ok()) return delivery_.finish(job, JobState::kError, model.status().code(), model.status().message());
  Status running = delivery_.try_transition(
      job, JobState::kRunning, hooks_.worker_name.empty() ? json::object() : json{{"worker", hooks_.worker_name}});
  // A shared store refuses the change when the job ended elsewhere (or is gone).
  if (hooks_.shared_store && !running.ok()) return;
  if (!req) {  // submitted before a restart, or too large to keep: from the store
    auto body = blobs_.get(BlobKind::kRequest, id);
    auto decoded = body.ok() ? transport::decode_request(*body, options_.decode_limits())
                             : Result<transport::JobRequest>(body.status());
    if (!decoded.ok()) {
      return delivery_.finish(job, JobState::kError, decoded.status().code(), decoded.status().message());
    }
    req = std::make_shared<const transport::JobRequest>(std::move(decoded).value());
  }
  run_loaded(job, *req, **model, cancel.get(), rest);
  if (rest) rest = [rest = std::move(rest), unregister] { rest(); };
}

Result<runtime::Model*> Execution::acquire_model(JobRecord& job) {
  if (tiers_.tier(job.model) == Tier::kHot) return tiers_.acquire(job.model, {});
  delivery_.transition(job, JobState::kLoading, json{{"progress", 0.0}});
  // Progress events at most every 10 % or 250 ms: a history, not a flood.
  double told = 0;
  auto told_at = std::chrono::steady_clock::now();
  return tiers_.acquire(job.model, [&](double p) {
    const auto now = std::chrono::steady_clock::now();
    if (p < 1.0 && p - told < 0.1 && now - told_at < std::chrono::milliseconds(250)) return;
    if (p <= told) return;
    told = p;
    told_at = now;
    (void)delivery_.emit(job.id, {{"type", event_type_name(EventType::kStatus)},
                                  {"state", job_state_name(JobState::kLoading)},
                                  {"progress", std::round(p * 1000) / 1000}});
  });
}

void Execution::run_loaded(JobRecord& job, const transport::JobRequest& req, runtime::Model& model,
                           const std::atomic<bool>* cancel, Rest& rest) {
  const std::string& id = job.id;
  auto fail = [&](const Status& s) {
    if (s.code() == StatusCode::kCancelled && drain_expired_) {
      return delivery_.finish(job, JobState::kError, StatusCode::kUnavailable,
                              "the server shut down before the job finished (its drain deadline, --drain-timeout-ms " +
                                  std::to_string(options_.drain_timeout.count()) + ", passed); submit it again");
    }
    delivery_.finish(job, s.code() == StatusCode::kCancelled ? JobState::kCancelled : JobState::kError, s.code(),
                     s.message());
  };
  const LoadedModel* lm = find_model(req.model_key);
  if (lm == nullptr) return fail(not_found("model \"" + req.model_key + "\" is gone"));

  std::vector<std::vector<c10::IValue>> inputs;
  for (const auto& invoke : req.invokes) {
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
  if (req.wall_time_ms > 0) {
    eo.limits.max_wall_time = std::min(eo.limits.max_wall_time, std::chrono::milliseconds(req.wall_time_ms));
  }
  eo.cancel = cancel;
  // Every LOG event is stored: a graph of many log nodes (or a generation
  // logging at every step) must not grow a job's history without bound.
  uint64_t log_events = 0, log_bytes = 0;
  eo.on_log = [&](const std::string& text, const c10::IValue& v) {
    if (log_events > options_.max_log_events_per_job) return;  // dropped, said once below
    std::string value = runtime::log_summary(v);
    log_bytes += text.size() + value.size();
    if (++log_events > options_.max_log_events_per_job || log_bytes > options_.max_log_bytes_per_job) {
      log_events = options_.max_log_events_per_job + 1;
      (void)delivery_.emit(id, {{"type", event_type_name(EventType::kLog)},
                                {"text", "further LOG events of this job are dropped: it reached the limit of " +
                                             std::to_string(options_.max_log_events_per_job) + " events or " +
                                             std::to_string(options_.max_log_bytes_per_job) +
                                             " bytes (--max-log-events-per-job)"},
                                {"value", ""}});
      return;
    }
    (void)delivery_.emit(id, {{"type", event_type_name(EventType::kLog)}, {"text", text}, {"value", value}});
  };
  uint64_t stream_id = 0;
  std::chrono::milliseconds stream_timeout(req.stream_timeout_ms == 0 ? 60000 : req.stream_timeout_ms);
  stream_timeout = std::min(stream_timeout, options_.max_stream_timeout);
  eo.on_stream = [&](const std::string& callback, const std::vector<runtime::NamedTensor>& value) {
    return ask_client(id, ++stream_id, callback, value, stream_timeout, cancel);
  };
  if (lm->spec.test_forward_delay_ms > 0) {
    // In slices of 20 ms, so a cancel lands as it would at a hook point; a
    // 20 ms forward is one wait, as a device's would be, not several wakeups.
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(lm->spec.test_forward_delay_ms);
    while (std::chrono::steady_clock::now() < until && !cancel->load()) {
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
          std::chrono::milliseconds(20), until - std::chrono::steady_clock::now()));
    }
    if (cancel->load()) return fail(cancelled("cancelled while running"));
  }
  Result<runtime::RunOutput> out = invalid_argument("not run");
  if (req.generation) {
    auto* causal = dynamic_cast<runtime::CausalLm*>(&model);
    if (causal == nullptr) return fail(invalid_argument("model \"" + req.model_key + "\" cannot generate"));
    // One TOKEN event per step (max_new_tokens, checked at submit, bounds
    // their number); their ids are bounded by max_token_ids_per_job.
    uint64_t token_ids = 0;
    out = runtime::generate(*causal, req.graph, inputs, eo, *req.generation, [&](const runtime::TokenStep& s) {
      json ev = {{"type", event_type_name(EventType::kToken)},
                 {"step", s.step},
                 {"elapsed_ms", static_cast<int64_t>(s.elapsed_s * 1000)}};
      token_ids += s.tokens.size();
      if (token_ids <= options_.max_token_ids_per_job) {
        ev["tokens"] = s.tokens;
      } else {
        ev["tokens_dropped"] = true;
      }
      (void)delivery_.emit(id, std::move(ev));
    });
  } else {
    out = runtime::execute(model, req.graph, inputs, eo);
  }
  streams_.close(id);
  if (!out.ok()) return fail(out.status());

  std::map<std::string, std::string> meta = {
      {"job_id", id}, {"model", req.model_key}, {"graph_sha256", graph::graph_checksum(req.graph)}};
  auto saved = std::make_shared<std::vector<runtime::NamedTensor>>(std::move(out->saved));
  rest = [this, job, saved, meta = std::move(meta)]() mutable {
    auto fail = [&](const Status& s) { delivery_.finish(job, JobState::kError, s.code(), s.message()); };
    try {
      auto encoded = runtime::encode_safetensors(*saved, meta);
      saved.reset();
      if (!encoded.ok()) return fail(encoded.status());
      // Level 1: results are mostly float noise, which higher levels barely shrink more.
      std::string compressed = transport::zstd_compress(*encoded, 1);
      // Run twice after a reclaim: the first run's result stays the only one.
      if (hooks_.shared_store && ended_elsewhere(job)) return;
      Status put = blobs_.put(BlobKind::kResult, job.id, compressed);
      if (!put.ok()) return fail(put);
      job.result_size = compressed.size();
      job.result_sha256 = sha256_hex(compressed);
      std::shared_ptr<const std::string> inline_result;
      if (compressed.size() <= options_.inline_max) {
        inline_result = std::make_shared<const std::string>(std::move(compressed));
      }
      Status s = delivery_.complete(job, /*deduplicated=*/false, std::move(inline_result));
      if (!s.ok()) fail(s);
    } catch (const std::exception& e) {
      if (!is_terminal(job.state)) fail(internal_error(std::string("storing the job's result failed: ") + e.what()));
    }
  };
}

json Execution::models_json() const {
  json arr = json::array();
  for (const auto& [k, m] : models_) {
    arr.push_back({{"key", k},
                   {"kind", m.kind},
                   {"device", m.spec.device},
                   {"revision", m.revision},
                   {"tier", tier_name(tiers_.tier(k))},
                   {"bytes", tiers_.bytes(k)}});
  }
  return json{{"models", arr}};
}

Result<json> Execution::model_json(const std::string& key) const {
  const LoadedModel* lm = find_model(key);
  if (lm == nullptr) return not_found("unknown model \"" + key + "\" (this server has: " + model_keys() + ")");
  return json{{"key", key},           {"kind", lm->kind},
              {"device", lm->spec.device}, {"revision", lm->revision},
              {"tier", tier_name(tiers_.tier(key))}, {"bytes", tiers_.bytes(key)},
              {"modules", *lm->module_paths}};
}

}  // namespace loom::server
