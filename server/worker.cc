#include "server/worker.h"

#include <unistd.h>

#include <condition_variable>
#include <iostream>

#include "transport/wire.h"

namespace loom::server {

using json = nlohmann::json;
using transport::event_type_name;
using transport::EventType;

namespace {

std::string default_name() {
  char host[256] = {0};
  if (::gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "worker");
  return std::string(host) + "-" + std::to_string(::getpid());
}

// The [[stream, [entry ...]]] of XREADGROUP as its entries.
std::vector<RedisReply> read_entries(RedisReply& r) {
  if (r.type != RedisReply::Type::kArray || r.elements.empty() || r.elements[0].elements.size() != 2) return {};
  return std::move(r.elements[0].elements[1].elements);
}

std::string entry_job(const RedisReply& entry) {
  if (entry.elements.size() != 2) return "";
  for (auto& [k, v] : reply_pairs(entry.elements[1])) {
    if (k == "job") return v;
  }
  return "";
}

}  // namespace

Worker::Worker(WorkerOptions options, std::shared_ptr<Redis> redis, BlobStore blobs)
    : options_(std::move(options)),
      redis_(std::move(redis)),
      store_(redis_, names_.prefix),
      files_(std::move(blobs)),
      blobs_(options_.server, store_, files_),
      delivery_(options_.server, store_, blobs_, metrics_),
      origin_(new_origin_id()) {
  if (options_.name.empty()) options_.name = default_name();
  WorkerHooks hooks;
  hooks.recover_at_start = false;
  hooks.shared_store = true;
  hooks.worker_name = options_.name;
  hooks.on_done = [this](const std::string& id) { done(id); };
  // GET /v1/models on any server shows where each model is on each worker.
  hooks.on_tier = [this](const std::string& key, Tier tier) {
    if (registered_) (void)redis_->run({"SET", names_.tier(key, options_.name), tier_name(tier)});
  };
  hooks.on_stream_pending = [this](const std::string& id, const std::string* frame) {
    if (frame != nullptr) {
      (void)redis_->run({"SET", names_.stream_pending(id), *frame, "PX", "3600000"});
    } else {
      (void)redis_->run({"DEL", names_.stream_pending(id)});
    }
  };
  execution_ = std::make_unique<Execution>(options_.server, store_, blobs_, delivery_, std::move(hooks));
  publish_through_redis(delivery_, store_, redis_, names_, origin_);
}

Worker::~Worker() { stop(); }

Status Worker::start() {
  // Result URLs and webhook signatures must verify on every server.
  LOOM_ASSIGN_OR_RETURN(options_.server.presign_secret, shared_secret(*redis_, names_, "presign"));
  LOOM_ASSIGN_OR_RETURN(options_.server.webhook_secret, shared_secret(*redis_, names_, "webhook"));
  LOOM_RETURN_IF_ERROR(execution_->start(options_.models));
  subscriber_ = std::make_unique<RedisSubscriber>(
      redis_, std::vector<std::string>{names_.cancels_channel(), names_.stream_replies_channel()},
      [this](const std::string& channel, const std::string& m) {
        if (channel == names_.cancels_channel()) {
          (void)execution_->cancel_running(m);
          return;
        }
        size_t a = m.find('\n');
        size_t b = a == std::string::npos ? a : m.find('\n', a + 1);
        if (b == std::string::npos) return;
        const std::string job = m.substr(0, a);
        {
          std::lock_guard<std::mutex> lock(mu_);
          if (!held_.count(job)) return;  // another worker's
        }
        (void)execution_->stream_reply(job, std::string_view(m).substr(b + 1), m.compare(a + 1, b - a - 1, "b") == 0);
      });
  LOOM_RETURN_IF_ERROR(subscriber_->start());
  LOOM_RETURN_IF_ERROR(register_models());
  keeper_ = std::thread([this] { keeper_loop(); });
  for (const std::string& key : execution_->served_keys()) {
    pullers_.emplace_back([this, key] { pull_loop(key); });
  }
  return Status();
}

Status Worker::register_models() {
  json keys = json::array(), devices = json::array();
  for (const std::string& key : execution_->served_keys()) {
    auto view = execution_->find(key);
    json info = {{"kind", view->kind}, {"revision", view->revision}, {"device", view->device},
                 {"modules", *view->module_paths}, {"bytes", execution_->model_bytes(key)},
                 {"path", view->path}};  // servers scan with its shapes (a shared filesystem)
    if (view->vocab_size) info["vocab_size"] = *view->vocab_size;
    LOOM_RETURN_IF_ERROR(redis_->run({"HSET", names_.models(), key, info.dump()}).status());
    auto group = redis_->run({"XGROUP", "CREATE", names_.queue(key), RedisNames::kWorkersGroup, "0", "MKSTREAM"});
    if (!group.ok() && group.status().message().find("BUSYGROUP") == std::string::npos) return group.status();
    const char* tier = tier_name(execution_->tier(key));
    LOOM_RETURN_IF_ERROR(redis_->run({"SET", names_.tier(key, options_.name), tier}).status());
    keys.push_back(key);
    devices.push_back(view->device);
  }
  LOOM_RETURN_IF_ERROR(redis_->run({"HSET", names_.worker(options_.name), "models", keys.dump(), "devices",
                                    devices.dump(), "pid", std::to_string(::getpid()), "started_ms",
                                    std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                       std::chrono::system_clock::now().time_since_epoch())
                                                       .count())})
                           .status());
  LOOM_RETURN_IF_ERROR(redis_->run({"SADD", names_.workers(), options_.name}).status());
  registered_ = true;
  return redis_->run({"SET", names_.alive(options_.name), "1", "PX", std::to_string(options_.lease.count())}).status();
}

void Worker::pull_loop(const std::string& model) {
  std::unique_ptr<RedisConnection> conn;
  const std::string stream = names_.queue(model);
  while (!stop_) {
    // Workers that have the model HOT take its jobs first: one running and
    // the next beside it. One that would have to load it waits until its
    // device is idle and then looks only every kColdPull, and so gets the
    // jobs that wait (every HOT worker is busy) without taking one a HOT
    // worker would have run at once. The rest wait in Redis.
    const bool hot = execution_->tier(model) == Tier::kHot;
    if (!execution_->wait_load_below(model, hot ? kJobsPerDevice : 1, std::chrono::milliseconds(100))) continue;
    if (hot != (execution_->tier(model) == Tier::kHot)) continue;  // loaded or demoted meanwhile: look again
    if (!conn || !conn->usable()) {
      auto c = redis_->dedicated();
      if (!c.ok()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        continue;
      }
      conn = std::move(c).value();
    }
    if (!hot) std::this_thread::sleep_for(kColdPull);
    auto r = conn->command({"XREADGROUP", "GROUP", RedisNames::kWorkersGroup, options_.name, "COUNT", "1", "BLOCK",
                            hot ? "500" : "1", "STREAMS", stream, ">"});
    if (!r.ok()) {
      if (r.status().message().find("NOGROUP") != std::string::npos) {
        // Redis lost the group (restarted without AOF): make it again.
        (void)redis_->run({"XGROUP", "CREATE", stream, RedisNames::kWorkersGroup, "0", "MKSTREAM"});
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    for (const RedisReply& e : read_entries(*r)) take(model, e.elements[0].str, entry_job(e), /*reclaimed=*/false);
  }
}

void Worker::take(const std::string& model, const std::string& entry, const std::string& job_id, bool reclaimed) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    held_[job_id] = Held{names_.queue(model), entry};
  }
  if (job_id.empty()) return done(job_id);
  // A fresh entry goes straight to the executor, which reads the record and
  // leaves a removed or ended one alone (its ack was lost); a reclaimed one
  // is looked at here first, for the poison guard.
  auto rec = reclaimed ? store_.get(job_id) : Result<JobRecord>(JobRecord{});
  if (reclaimed && (!rec.ok() || is_terminal(rec->state))) return done(job_id);
  JobRecord& job = *rec;
  if (reclaimed && (job.state == JobState::kDispatched || job.state == JobState::kLoading ||
                    job.state == JobState::kRunning)) {
    auto deaths = store_.add_death(job_id);
    const int64_t n = deaths.ok() ? *deaths : kMaxDeaths;
    if (n >= kMaxDeaths) {
      delivery_.finish(job, JobState::kError, StatusCode::kInternal,
                       std::to_string(n) + " workers stopped while running this job; it is not run again "
                                           "(submit it again to retry)");
      return done(job_id);
    }
    (void)delivery_.emit(job_id, {{"type", event_type_name(EventType::kLog)},
                                  {"text", "the worker running this job stopped; running it again on " + options_.name},
                                  {"recovered_run", n}});
    delivery_.transition(job, JobState::kQueued);
  }
  // Read and decoded here, while the device may still run the job before
  // it; one that fails is read again (and its error recorded) when it runs.
  std::shared_ptr<const transport::JobRequest> decoded;
  if (auto body = blobs_.get(BlobKind::kRequest, job_id); body.ok()) {
    auto req = transport::decode_request(*body, options_.server.decode_limits());
    if (req.ok()) decoded = std::make_shared<const transport::JobRequest>(std::move(req).value());
  }
  if (!execution_->try_enqueue(model, job_id, std::move(decoded))) {
    // Not ours to run now: left unacknowledged, another worker claims it.
    std::lock_guard<std::mutex> lock(mu_);
    held_.erase(job_id);
  }
}

std::optional<Worker::Held> Worker::release(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = held_.find(job_id);
  if (it == held_.end()) return std::nullopt;
  Held h = std::move(it->second);
  held_.erase(it);
  return h;
}

void Worker::done(const std::string& job_id) {
  std::optional<Held> h = release(job_id);
  if (!h) return;
  // Acknowledged and deleted in one round trip.
  static const std::string kAckDel =
      "redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) return redis.call('XDEL', KEYS[1], ARGV[2])";
  (void)redis_->run({"EVAL", kAckDel, "1", h->stream, RedisNames::kWorkersGroup, h->entry});
}

void Worker::hand_back(const std::string& job_id) {
  std::optional<Held> h = release(job_id);
  if (!h) return;
  // Acknowledged, deleted and added again in one step: never in two places.
  static const std::string kHandBack =
      "redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) redis.call('XDEL', KEYS[1], ARGV[2]) "
      "return redis.call('XADD', KEYS[1], '*', 'job', ARGV[3])";
  (void)redis_->run({"EVAL", kHandBack, "1", h->stream, RedisNames::kWorkersGroup, h->entry, job_id});
}

void Worker::keeper_loop() {
  const auto tick = std::max(std::chrono::milliseconds(50), options_.lease / 10);
  const auto renew_every = std::max(std::chrono::milliseconds(50), options_.lease / 3);
  auto last_renew = std::chrono::steady_clock::now() - renew_every;
  while (!keeper_stop_) {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_renew >= renew_every) {
      last_renew = now;
      (void)redis_->run({"SET", names_.alive(options_.name), "1", "PX", std::to_string(options_.lease.count())});
      // Renewing resets each held entry's idle time, so no one reclaims it.
      std::map<std::string, std::vector<std::string>> by_stream;
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (const auto& [id, h] : held_) by_stream[h.stream].push_back(h.entry);
      }
      for (const auto& [stream, entries] : by_stream) {
        std::vector<std::string_view> args = {"XCLAIM", stream, RedisNames::kWorkersGroup, options_.name, "0"};
        for (const std::string& e : entries) args.push_back(e);
        args.push_back("JUSTID");
        (void)redis_->run(args);
      }
    }
    // A dead worker's entries, one at a time, when this model's executor is idle.
    for (const std::string& key : execution_->served_keys()) {
      if (stop_ || execution_->load_for(key) > 0) continue;
      auto r = redis_->run({"XAUTOCLAIM", names_.queue(key), RedisNames::kWorkersGroup, options_.name,
                            std::to_string(options_.lease.count()), "0-0", "COUNT", "1"});
      if (!r.ok() || r->elements.size() < 2) continue;
      for (const RedisReply& e : r->elements[1].elements) {
        if (e.elements.size() == 2) take(key, e.elements[0].str, entry_job(e), /*reclaimed=*/true);
      }
    }
    std::this_thread::sleep_for(tick);
  }
}

void Worker::stop() {
  if (stop_.exchange(true)) return;
  for (std::thread& t : pullers_) t.join();
  pullers_.clear();
  for (const std::string& key : execution_->served_keys()) {
    for (const std::string& id : execution_->take_queued(key)) hand_back(id);
  }
  // Running jobs finish (the keeper renews their entries meanwhile), then
  // the heartbeat goes.
  execution_->stop(options_.server.drain_timeout);
  keeper_stop_ = true;
  if (keeper_.joinable()) keeper_.join();
  if (subscriber_) subscriber_->stop();
  (void)redis_->run({"DEL", names_.alive(options_.name)});
  for (const std::string& key : execution_->served_keys()) (void)redis_->run({"DEL", names_.tier(key, options_.name)});
}

}  // namespace loom::server
