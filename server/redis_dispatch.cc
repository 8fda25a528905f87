#include "server/redis_dispatch.h"

#include <iostream>

#include "transport/stream_frames.h"
#include "transport/wire.h"

namespace loom::server {

using json = nlohmann::json;

namespace {

// The fields of a stream entry [id, [f, v, ...]] as a map.
std::map<std::string, std::string> entry_fields(const RedisReply& entry) {
  std::map<std::string, std::string> out;
  if (entry.elements.size() == 2) {
    for (auto& [k, v] : reply_pairs(entry.elements[1])) out[k] = v;
  }
  return out;
}

}  // namespace

RedisDispatch::RedisDispatch(const ServerOptions& options, RedisJobStore& store, JobBlobs& blobs, Delivery& delivery)
    : options_(options),
      store_(store),
      blobs_(blobs),
      delivery_(delivery),
      redis_(store.redis()),
      origin_(new_origin_id()),
      consumer_("server-" + origin_) {
  names_.prefix = store.prefix();
  publish_through_redis(delivery_, store_, redis_, names_, origin_);
  delivery_.set_webhook_delivered([this](const std::string& event_id) {
    std::string entry;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = webhook_entries_.find(event_id);
      if (it == webhook_entries_.end()) return;
      entry = it->second;
      webhook_entries_.erase(it);
    }
    (void)redis_->run({"XACK", names_.webhook_queue(), RedisNames::kServersGroup, entry});
    (void)redis_->run({"XDEL", names_.webhook_queue(), entry});
  });
}

RedisDispatch::~RedisDispatch() { stop(std::chrono::milliseconds(0)); }

Status RedisDispatch::start(const std::vector<ModelSpec>& models) {
  if (!models.empty()) return invalid_argument("a server with --redis loads no models: its workers register them");
  auto group = redis_->run({"XGROUP", "CREATE", names_.webhook_queue(), RedisNames::kServersGroup, "0", "MKSTREAM"});
  if (!group.ok() && group.status().message().find("BUSYGROUP") == std::string::npos) return group.status();
  subscriber_ = std::make_unique<RedisSubscriber>(
      redis_, std::vector<std::string>{names_.events_channel()},
      [this](const std::string&, const std::string& m) { on_event_message(m); }, [this] { replay_listened(); });
  LOOM_RETURN_IF_ERROR(subscriber_->start());
  webhooks_ = std::thread([this] { webhook_loop(); });
  return Status();
}

void RedisDispatch::stop(std::chrono::milliseconds) {
  stop_ = true;
  if (webhooks_.joinable()) webhooks_.join();
  if (subscriber_) subscriber_->stop();
}

void RedisDispatch::on_event_message(const std::string& message) {
  auto bus = decode_bus_event(message);
  if (!bus || bus->origin == origin_) return;  // ours were announced when stored
  JobEvent& ev = bus->event;
  if (!delivery_.has_listeners(ev.job_id)) return;
  if (ev.seq > 0 && transport::event_type_of_text(ev.json) == transport::EventType::kCompleted) {
    // A small result rides inline, as it would from an embedded server
    // (from Redis, or from its file when it is over --small-blob-bytes).
    json j = json::parse(ev.json, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j["result_size"].is_number_unsigned() && j["result_size"].get<uint64_t>() <= options_.inline_max) {
      auto bytes = blobs_.get(BlobKind::kResult, ev.job_id);
      if (bytes.ok() && bytes->size() <= options_.inline_max) {
        ev.inline_result = std::make_shared<const std::string>(std::move(*bytes));
      }
    }
  }
  delivery_.announce(ev);
}

void RedisDispatch::replay_listened() {
  // Messages published while the subscriber was away are lost to it; the
  // stored history is not. Followers drop what they had by seq.
  for (const std::string& id : delivery_.listened_jobs()) {
    auto events = store_.events_after(id, 0);
    if (!events.ok()) continue;
    for (const JobEvent& ev : *events) delivery_.announce(ev);
  }
}

void RedisDispatch::webhook_loop() {
  auto last_claim = std::chrono::steady_clock::now();
  std::unique_ptr<RedisConnection> conn;
  while (!stop_) {
    if (!conn || !conn->usable()) {
      auto c = redis_->dedicated();
      if (!c.ok()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        continue;
      }
      conn = std::move(c).value();
    }
    std::vector<RedisReply> entries;
    auto r = conn->command({"XREADGROUP", "GROUP", RedisNames::kServersGroup, consumer_, "COUNT", "16", "BLOCK", "500",
                            "STREAMS", names_.webhook_queue(), ">"});
    if (r.ok() && r->type == RedisReply::Type::kArray && !r->elements.empty() && r->elements[0].elements.size() == 2) {
      entries = std::move(r->elements[0].elements[1].elements);
    }
    if (std::chrono::steady_clock::now() - last_claim > std::chrono::seconds(30)) {
      // Deliveries a dead server took and never finished.
      last_claim = std::chrono::steady_clock::now();
      auto c = redis_->run({"XAUTOCLAIM", names_.webhook_queue(), RedisNames::kServersGroup, consumer_,
                            std::to_string(kWebhookLease.count()), "0-0", "COUNT", "16"});
      if (c.ok() && c->elements.size() >= 2) {
        for (RedisReply& e : c->elements[1].elements) entries.push_back(std::move(e));
      }
    }
    for (const RedisReply& e : entries) {
      if (e.elements.size() != 2) continue;
      auto f = entry_fields(e);
      PendingWebhook h{f["event_id"], f["job_id"], f["url"], f["body"],
                       static_cast<int>(parse_int(f["attempts"]))};
      {
        std::lock_guard<std::mutex> lock(mu_);
        webhook_entries_[h.event_id] = e.elements[0].str;
      }
      delivery_.send_webhook(std::move(h));
    }
  }
}

std::shared_ptr<const std::map<std::string, RedisDispatch::Registered>> RedisDispatch::registry() const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (registry_ && std::chrono::steady_clock::now() - registry_at_ < kRegistryTtl) return registry_;
  }
  auto fresh = std::make_shared<std::map<std::string, Registered>>();
  auto r = redis_->run({"HGETALL", names_.models()});
  if (r.ok()) {
    for (auto& [key, text] : reply_pairs(*r)) {
      json info = json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (!info.is_object() || !info["modules"].is_array()) continue;
      Registered reg;
      reg.view.kind = info.value("kind", "");
      reg.view.device = info.value("device", "");
      reg.view.revision = info.value("revision", "");
      auto paths = std::make_shared<std::vector<std::string>>();
      for (const json& m : info["modules"]) {
        if (m.is_string()) paths->push_back(m.get<std::string>());
      }
      reg.view.module_paths = std::move(paths);
      if (info["vocab_size"].is_number_integer()) reg.view.vocab_size = info["vocab_size"].get<int64_t>();
      if (info.contains("path") && info["path"].is_string()) reg.view.path = info["path"].get<std::string>();
      info.erase("modules");
      reg.info = std::move(info);
      (*fresh)[key] = std::move(reg);
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!r.ok() && registry_) return registry_;  // Redis away: the last known registry
  registry_ = std::move(fresh);
  registry_at_ = std::chrono::steady_clock::now();
  return registry_;
}

std::optional<JobRunner::ModelView> RedisDispatch::find(const std::string& key) const {
  auto reg = registry();
  auto it = reg->find(key);
  if (it == reg->end()) return std::nullopt;
  return it->second.view;
}

std::string RedisDispatch::model_keys() const {
  std::string known;
  for (const auto& [k, m] : *registry()) known += (known.empty() ? "" : ", ") + k;
  return known.empty() ? "no model: no worker has registered one yet" : known;
}

size_t RedisDispatch::queued_for(const std::string& key) const {
  auto r = redis_->run({"XLEN", names_.queue(key)});
  return r.ok() ? static_cast<size_t>(r->as_int()) : 0;
}

bool RedisDispatch::try_enqueue(const std::string& key, const std::string& job_id,
                                std::shared_ptr<const transport::JobRequest>) {
  // The workers read the request from the store; the stream says whose turn it is.
  auto r = redis_->run({"XADD", names_.queue(key), "*", "job", job_id});
  if (!r.ok()) std::cerr << "loom-server: job " << job_id << " not queued: " << r.status().message() << "\n";
  return r.ok();
}

size_t RedisDispatch::queue_depth() const {
  size_t n = 0;
  for (const auto& [k, m] : *registry()) n += queued_for(k);
  return n;
}

bool RedisDispatch::cancel(JobRecord& job) {
  // Whoever runs it stops at its next hook point; a worker that takes it
  // later sees cancel_requested. A queued job ends here; if a worker took it
  // meanwhile, the store refuses that worker's writes after this terminal one.
  (void)redis_->run({"HSET", store_.prefix() + "job:" + job.id, "cancel_requested", "1"});
  (void)redis_->run({"PUBLISH", names_.cancels_channel(), job.id});
  if (job.state != JobState::kQueued) return true;
  job.cancel_requested = true;
  delivery_.finish(job, JobState::kCancelled, StatusCode::kCancelled, "cancelled while queued");
  return false;
}

Status RedisDispatch::stream_reply(const std::string& job_id, std::string_view frame, bool binary) {
  // Checked here, so a malformed reply is REJECTED to its sender; the
  // worker running the job decodes it again.
  LOOM_ASSIGN_OR_RETURN(transport::StreamReply reply,
                        transport::decode_stream_reply(frame, binary, options_.max_ws_frame_bytes));
  // The request the worker posted says which stream id it waits for, so a
  // stray reply is answered here as the embedded broker would answer it.
  std::optional<std::string> pending = pending_stream(job_id);
  if (!pending) return failed_precondition("job " + job_id + " has no stream request waiting for a reply");
  auto head = transport::split_binary_frame(*pending);
  if (head.ok() && head->first["stream_id"].is_number_unsigned()) {
    const uint64_t waiting = head->first["stream_id"].get<uint64_t>();
    if (reply.stream_id < waiting) return Status();  // a resend after reattaching: already taken
    if (reply.stream_id != waiting) {
      return failed_precondition("stream id " + std::to_string(reply.stream_id) + " is unknown: job " + job_id +
                                 " waits for stream id " + std::to_string(waiting));
    }
  }
  std::string message = job_id + "\n" + (binary ? "b" : "t") + "\n";
  message.append(frame.data(), frame.size());
  return redis_->run({"PUBLISH", names_.stream_replies_channel(), message}).status();
}

std::optional<std::string> RedisDispatch::pending_stream(const std::string& job_id) {
  auto r = redis_->run({"GET", names_.stream_pending(job_id)});
  if (!r.ok() || r->nil()) return std::nullopt;
  return std::move(r->str);
}

json RedisDispatch::models_json() const {
  // Each model with the live workers that serve it and its tier on each.
  std::map<std::string, json> workers_of;
  auto names = redis_->run({"SMEMBERS", names_.workers()});
  if (names.ok()) {
    for (const RedisReply& n : names->elements) {
      auto alive = redis_->run({"EXISTS", names_.alive(n.str)});
      if (!alive.ok() || alive->as_int() != 1) continue;
      auto models = redis_->run({"HGET", names_.worker(n.str), "models"});
      if (!models.ok() || models->nil()) continue;
      json keys = json::parse(models->str, nullptr, /*allow_exceptions=*/false);
      if (!keys.is_array()) continue;
      for (const json& k : keys) {
        if (!k.is_string()) continue;
        auto tier = redis_->run({"GET", names_.tier(k.get<std::string>(), n.str)});
        workers_of[k.get<std::string>()].push_back(
            {{"name", n.str}, {"tier", tier.ok() && !tier->nil() ? tier->str : "HOT"}});
      }
    }
  }
  json arr = json::array();
  for (const auto& [k, m] : *registry()) {
    json j = m.info;
    j["key"] = k;
    j["workers"] = workers_of.count(k) ? workers_of[k] : json::array();
    // The model's best tier on any live worker (what a job for it meets at best).
    std::string best = "COLD";
    for (const json& w : j["workers"]) {
      const std::string t = w.value("tier", "");
      if (t == "HOT" || (t == "LOADING" && best != "HOT") || (t == "WARM" && best == "COLD")) best = t;
    }
    j["tier"] = j["workers"].empty() ? "" : best;
    arr.push_back(std::move(j));
  }
  return json{{"models", arr}};
}

Result<json> RedisDispatch::model_json(const std::string& key) const {
  auto reg = registry();
  auto it = reg->find(key);
  if (it == reg->end()) return not_found("unknown model \"" + key + "\" (this cluster has: " + model_keys() + ")");
  json j = it->second.info;
  j["key"] = key;
  j["modules"] = *it->second.view.module_paths;
  return j;
}

}  // namespace loom::server
