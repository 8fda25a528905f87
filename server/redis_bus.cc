#include "server/redis_bus.h"

#include <charconv>
#include <iostream>

#include "server/delivery.h"
#include "server/redis_job_store.h"

namespace loom::server {

std::string encode_bus_event(const std::string& origin, const JobEvent& event) {
  std::string out;
  out.reserve(origin.size() + event.job_id.size() + event.json.size() + 24);
  out += origin;
  out += '\n';
  out += event.job_id;
  out += '\n';
  out += std::to_string(event.seq);
  out += '\n';
  out += event.json;
  return out;
}

std::optional<BusEvent> decode_bus_event(std::string_view m) {
  size_t a = m.find('\n');
  if (a == std::string_view::npos) return std::nullopt;
  size_t b = m.find('\n', a + 1);
  if (b == std::string_view::npos) return std::nullopt;
  size_t c = m.find('\n', b + 1);
  if (c == std::string_view::npos) return std::nullopt;
  BusEvent out;
  out.origin = std::string(m.substr(0, a));
  out.event.job_id = std::string(m.substr(a + 1, b - a - 1));
  std::string_view seq = m.substr(b + 1, c - b - 1);
  auto [p, ec] = std::from_chars(seq.data(), seq.data() + seq.size(), out.event.seq);
  if (ec != std::errc() || p != seq.data() + seq.size()) return std::nullopt;
  out.event.json = std::string(m.substr(c + 1));
  return out;
}

Result<std::string> shared_secret(Redis& redis, const RedisNames& names, const std::string& name) {
  const std::string key = names.secret(name);
  std::string fresh = new_job_id() + new_job_id();  // 64 hex chars of RAND_bytes
  LOOM_RETURN_IF_ERROR(redis.run({"SET", key, fresh, "NX"}).status());
  LOOM_ASSIGN_OR_RETURN(RedisReply r, redis.run({"GET", key}));
  if (r.str.size() < 32) return internal_error("redis: secret " + key + " is too short");
  return r.str;
}

void publish_through_redis(Delivery& delivery, RedisJobStore& store, std::shared_ptr<Redis> redis,
                           const RedisNames& names, const std::string& origin) {
  // Stored events are published by the store's own script; live frames here.
  store.publish_events(names.events_channel(), origin);
  delivery.set_publisher(
      [redis, names, origin](const JobEvent& ev) {
        auto r = redis->run({"PUBLISH", names.events_channel(), encode_bus_event(origin, ev)});
        if (!r.ok()) std::cerr << "loom: job " << ev.job_id << ": event not published: " << r.status().message() << "\n";
      },
      /*stored_published=*/true);
  delivery.set_webhook_handoff([redis, names](const PendingWebhook& h) {
    auto r = redis->run({"XADD", names.webhook_queue(), "*", "event_id", h.event_id, "job_id", h.job_id, "url", h.url,
                         "body", h.body, "attempts", std::to_string(h.attempts)});
    if (!r.ok()) std::cerr << "loom: webhook " << h.event_id << " not queued: " << r.status().message() << "\n";
  });
}

std::string new_origin_id() { return new_job_id().substr(0, 16); }

RedisSubscriber::RedisSubscriber(std::shared_ptr<Redis> redis, std::vector<std::string> channels, Handler handler,
                                 std::function<void()> on_reconnect)
    : redis_(std::move(redis)),
      channels_(std::move(channels)),
      handler_(std::move(handler)),
      on_reconnect_(std::move(on_reconnect)) {}

RedisSubscriber::~RedisSubscriber() { stop(); }

Status RedisSubscriber::start(std::chrono::milliseconds timeout) {
  thread_ = std::thread([this] { loop(); });
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (subscribed_.load() == 0 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (subscribed_.load() != 1) {
    return Status(StatusCode::kUnavailable, "could not subscribe to redis at " + redis_->address().text());
  }
  return Status();
}

void RedisSubscriber::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void RedisSubscriber::loop() {
  bool first = true;
  while (!stop_) {
    auto conn = redis_->dedicated();
    if (!conn.ok()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    std::vector<std::string_view> args = {"SUBSCRIBE"};
    for (const std::string& c : channels_) args.push_back(c);
    if (!(*conn)->send(args).ok()) continue;
    size_t confirmed = 0;
    bool broken = false;
    while (!stop_ && !broken) {
      auto r = (*conn)->read(std::chrono::milliseconds(200));
      if (!r.ok()) {
        broken = true;
        break;
      }
      if (!r->has_value()) continue;
      const RedisReply& m = **r;
      if (m.type != RedisReply::Type::kArray || m.elements.size() < 3) continue;
      const std::string& kind = m.elements[0].str;
      if (kind == "subscribe") {
        if (++confirmed == channels_.size()) {
          subscribed_ = 1;
          if (!first && on_reconnect_) on_reconnect_();
          first = false;
        }
      } else if (kind == "message") {
        try {
          handler_(m.elements[1].str, m.elements[2].str);
        } catch (const std::exception& e) {
          std::cerr << "loom: redis message on " << m.elements[1].str << ": " << e.what() << "\n";
        }
      }
    }
    if (broken && !stop_) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace loom::server
