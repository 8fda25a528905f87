// RedisDispatch: the JobRunner of a stateless scale-out loom-server. It
// loads no model: the models are those loom-workers registered in Redis,
// jobs go to a stream per model that the workers read, cancels and STREAM
// replies go to the workers over pub/sub, and the events workers store come
// back to this server's followers through the events channel (see
// redis_bus.h). Webhooks are sent by one server each: the workers hand them
// to the webhooks:queue stream, which this server's consumer reads.
// Thread safety: as JobRunner; it runs two threads of its own (the
// subscriber and the webhook consumer).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "server/delivery.h"
#include "server/job_blobs.h"
#include "server/job_runner.h"
#include "server/redis_bus.h"
#include "server/redis_job_store.h"
#include "server/server_options.h"

namespace loom::server {

class RedisDispatch : public JobRunner {
 public:
  // How long the model registry is trusted before Redis is asked again.
  static constexpr std::chrono::milliseconds kRegistryTtl{1000};
  // A webhook a server took but did not finish within this (it died) is
  // taken by another: longer than every retry of one delivery.
  static constexpr std::chrono::milliseconds kWebhookLease{5 * 60 * 1000};

  RedisDispatch(const ServerOptions& options, RedisJobStore& store, JobBlobs& blobs, Delivery& delivery);
  ~RedisDispatch() override;

  Status start(const std::vector<ModelSpec>& models) override;  // `models` must be empty
  void stop(std::chrono::milliseconds deadline) override;

  std::optional<ModelView> find(const std::string& key) const override;
  std::string model_keys() const override;
  size_t queued_for(const std::string& key) const override;
  bool try_enqueue(const std::string& key, const std::string& job_id,
                   std::shared_ptr<const transport::JobRequest> decoded) override;
  size_t queue_depth() const override;
  // Unknown here (other servers queue too): the store is always asked.
  size_t active_upper_bound() const override { return SIZE_MAX; }
  int64_t queue_position(const std::string&, const std::string&) const override { return -1; }
  bool cancel(JobRecord& job) override;
  Status stream_reply(const std::string& job_id, std::string_view frame, bool binary) override;
  std::optional<std::string> pending_stream(const std::string& job_id) override;
  bool resumes_webhooks_from_store() const override { return false; }
  nlohmann::json models_json() const override;
  Result<nlohmann::json> model_json(const std::string& key) const override;

 private:
  struct Registered {
    ModelView view;
    nlohmann::json info;  // as registered
  };
  // The registry, from Redis when the cached copy is older than kRegistryTtl.
  std::shared_ptr<const std::map<std::string, Registered>> registry() const;
  void on_event_message(const std::string& message);
  void replay_listened();  // after the subscriber reconnected
  void webhook_loop();

  const ServerOptions& options_;
  RedisJobStore& store_;
  JobBlobs& blobs_;
  Delivery& delivery_;
  RedisNames names_;
  std::shared_ptr<Redis> redis_;
  const std::string origin_;
  std::unique_ptr<RedisSubscriber> subscriber_;

  mutable std::mutex mu_;  // guards registry_, registry_at_, webhook_entries_
  mutable std::shared_ptr<const std::map<std::string, Registered>> registry_;
  mutable std::chrono::steady_clock::time_point registry_at_{};
  std::map<std::string, std::string> webhook_entries_;  // event_id -> stream entry id
  std::atomic<bool> stop_{false};
  std::thread webhooks_;
  std::string consumer_;  // this server's name in the servers group
};

}  // namespace loom::server
