// What loom-servers and loom-workers say to each other through Redis,
// beside the job records of RedisJobStore (same prefix):
//   queue:MODEL            stream: one entry {job: ID} per job to run; the
//                          consumer group "workers" hands each to one worker
//   webhooks:queue         stream: webhooks to send; the group "servers"
//                          hands each to one server
//   models                 hash: model key -> JSON the worker registered
//                          (kind, revision, modules, vocab_size, device)
//   workers                set of worker names; worker:NAME hash of its
//                          models and devices; alive:NAME a key with a TTL
//                          (the heartbeat); tier:MODEL:NAME its tier
//   stream-pending:ID      the STREAM request frame job ID waits on
//   secret:NAME            secrets all processes share (presigned URLs, webhooks)
// and on pub/sub channels (fire and forget: a subscriber that reconnects
// replays what it may have missed from the stored history):
//   events                 ORIGIN \n JOB \n SEQ \n payload: every stored event
//                          (SEQ > 0, the payload its JSON) and live STREAM frame
//                          (SEQ 0, binary)
//   stream-replies         JOB \n b|t \n frame: a client's STREAM reply
//   cancels                JOB: a cancel for a job that may be running
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "server/job_store.h"
#include "server/redis_client.h"

namespace loom::server {

struct RedisNames {
  std::string prefix = "loom:";
  std::string queue(const std::string& model) const { return prefix + "queue:" + model; }
  std::string models() const { return prefix + "models"; }
  std::string workers() const { return prefix + "workers"; }
  std::string worker(const std::string& name) const { return prefix + "worker:" + name; }
  std::string alive(const std::string& name) const { return prefix + "alive:" + name; }
  std::string tier(const std::string& model, const std::string& name) const {
    return prefix + "tier:" + model + ":" + name;
  }
  std::string stream_pending(const std::string& job) const { return prefix + "stream-pending:" + job; }
  std::string webhook_queue() const { return prefix + "webhooks:queue"; }
  std::string secret(const std::string& name) const { return prefix + "secret:" + name; }
  std::string events_channel() const { return prefix + "events"; }
  std::string stream_replies_channel() const { return prefix + "stream-replies"; }
  std::string cancels_channel() const { return prefix + "cancels"; }
  static constexpr const char* kWorkersGroup = "workers";
  static constexpr const char* kServersGroup = "servers";
};

// An event as published on the events channel, and back.
std::string encode_bus_event(const std::string& origin, const JobEvent& event);
struct BusEvent {
  std::string origin;
  JobEvent event;
};
std::optional<BusEvent> decode_bus_event(std::string_view message);

// The secret NAME every process of the cluster shares: made once (SET NX)
// by whichever process asks first.
Result<std::string> shared_secret(Redis& redis, const RedisNames& names, const std::string& name);

class Delivery;
class RedisJobStore;
// Makes each event `delivery` stores (through `store`, whose script
// publishes it) or sends live go out on the events channel (as `origin`),
// and hands its webhooks to the webhooks:queue stream.
void publish_through_redis(Delivery& delivery, RedisJobStore& store, std::shared_ptr<Redis> redis,
                           const RedisNames& names, const std::string& origin);

// 16 random hex chars naming this process on the bus.
std::string new_origin_id();

// One thread subscribed to some channels, calling `handler(channel,
// message)` for each message; it reconnects after Redis went away and then
// calls `on_reconnect` (what was published meanwhile is lost to it).
class RedisSubscriber {
 public:
  using Handler = std::function<void(const std::string& channel, const std::string& message)>;
  RedisSubscriber(std::shared_ptr<Redis> redis, std::vector<std::string> channels, Handler handler,
                  std::function<void()> on_reconnect = {});
  ~RedisSubscriber();  // stops and joins
  // Waits until the first subscription is in place (so nothing published
  // after start() returns is missed), up to `timeout`.
  Status start(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));
  void stop();

 private:
  void loop();
  std::shared_ptr<Redis> redis_;
  const std::vector<std::string> channels_;
  Handler handler_;
  std::function<void()> on_reconnect_;
  std::atomic<bool> stop_{false};
  std::atomic<int> subscribed_{0};  // 0 not yet, 1 subscribed, -1 failed for good
  std::thread thread_;
};

}  // namespace loom::server
