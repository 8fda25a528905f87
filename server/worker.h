// Worker: the body of loom-worker. It loads its models and keeps them warm,
// registers them (with their module trees) in Redis, and runs the jobs of
// their queues with the embedded server's Execution: one executor per
// device, the same events, limits, STREAM round trips and results. What
// differs is where jobs come from and where what they make goes:
//   - a puller per model takes jobs one at a time from the model's stream
//     (XREADGROUP, group "workers"): for a model it has HOT, while the
//     executor holds fewer than kJobsPerDevice (the running job and the
//     next, read and decoded beside it); for one it would load, only when
//     the executor is idle and every kColdPull. Queued jobs wait in Redis
//     for whichever worker is free, a worker with the model HOT first;
//   - events are stored in Redis and published to the servers; results go
//     to the shared blob directory (large) or Redis (small);
//   - the entry is acknowledged (XACK) once the job has ended; one taken
//     and not started when the worker stops goes back to the queue.
// Leases: a worker renews the stream entries it holds every lease/3 and its
// heartbeat key (alive:NAME, TTL = lease). Entries idle for a lease belong
// to a worker that died: a live worker claims them (XAUTOCLAIM) and runs
// them again. A job that was running when kMaxDeaths workers died ends in
// ERROR instead: it may be what kills them (the poison guard, cluster-wide).
// Thread safety: start/stop from one thread; the rest runs on its threads.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "server/blob_store.h"
#include "server/delivery.h"
#include "server/execution.h"
#include "server/job_blobs.h"
#include "server/metrics.h"
#include "server/redis_bus.h"
#include "server/redis_job_store.h"
#include "server/server_options.h"

namespace loom::server {

struct WorkerOptions {
  std::string name;  // unique in the cluster; "" = HOSTNAME-PID
  std::vector<ModelSpec> models;
  std::chrono::milliseconds lease{30000};
  ServerOptions server;  // limits, inline_max, webhook settings, as a server's
};

class Worker {
 public:
  static constexpr int64_t kMaxDeaths = 2;
  // How often a worker looks for jobs of a model it does not have HOT.
  static constexpr std::chrono::milliseconds kColdPull{100};
  // Jobs a device holds at once: the running one and the next, taken from
  // Redis while the first runs so the device starts it without a round trip.
  static constexpr size_t kJobsPerDevice = 2;

  Worker(WorkerOptions options, std::shared_ptr<Redis> redis, BlobStore blobs);
  ~Worker();

  // Loads the models, registers them and starts taking jobs.
  Status start();
  // Stops taking jobs, hands the ones not started back to the queue, lets
  // the running ones finish within the drain deadline, and unregisters
  // (entries not acknowledged stay for others).
  void stop();
  const std::string& name() const { return options_.name; }

 private:
  struct Held {
    std::string stream;
    std::string entry;
  };
  void pull_loop(const std::string& model);
  void keeper_loop();
  // A stream entry this worker now holds; `reclaimed` when it was a dead worker's.
  void take(const std::string& model, const std::string& entry, const std::string& job_id, bool reclaimed);
  // Takes the job's entry out of held_ (nullopt: not held).
  std::optional<Held> release(const std::string& job_id);
  void done(const std::string& job_id);
  // A job taken but not started goes back to the end of its model's queue.
  void hand_back(const std::string& job_id);
  Status register_models();

  WorkerOptions options_;
  std::shared_ptr<Redis> redis_;
  RedisNames names_;
  RedisJobStore store_;
  BlobStore files_;
  Metrics metrics_;
  JobBlobs blobs_;
  Delivery delivery_;
  std::unique_ptr<Execution> execution_;
  std::unique_ptr<RedisSubscriber> subscriber_;
  const std::string origin_;

  std::mutex mu_;  // guards held_
  std::map<std::string, Held> held_;  // job id -> its stream entry
  std::atomic<bool> registered_{false};   // tier changes go to Redis from now on
  std::atomic<bool> stop_{false};         // no more pulls or claims
  std::atomic<bool> keeper_stop_{false};  // no more renewals (after the drain)
  std::vector<std::thread> pullers_;
  std::thread keeper_;
};

}  // namespace loom::server
