// Execution: the run loop. Loads the models, keeps one Executor (thread and
// bounded queue) per device, runs each job's graph against its model, asks
// clients for STREAM replies while a job waits mid-forward, and stops
// running jobs that are cancelled at their next hook point. At start it
// recovers what a previous process left unfinished.
//
// Only the executor writes a running job's record; state changes go
// through Delivery (stored, then announced).
// Thread safety: every public method may be called from any thread; jobs
// run on the executors' threads.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "server/delivery.h"
#include "server/executor.h"
#include "server/job_blobs.h"
#include "server/job_runner.h"
#include "server/job_store.h"
#include "server/model_tiers.h"
#include "server/models_config.h"
#include "server/server_options.h"
#include "server/stream_broker.h"
#include "server/work_pool.h"
#include "transport/request.h"

namespace loom::runtime {
class Model;
struct NamedTensor;
}  // namespace loom::runtime

namespace loom::server {

// How a loom-worker changes the embedded behaviour (the defaults are the
// embedded server's).
struct WorkerHooks {
  // Requeue or fail, at start, the jobs the store says a previous process
  // left unfinished. A worker shares its store with others: its recovery
  // is the reclaim of a dead worker's stream entries instead.
  bool recover_at_start = true;
  // Called on the executor's thread after each job's run, whatever its end.
  std::function<void(const std::string& job_id)> on_done;
  // The STREAM request a job now waits on (frame), or none any more (nullptr).
  std::function<void(const std::string& job_id, const std::string* frame)> on_stream_pending;
  // The store is shared with other runners of the same job (a reclaim can
  // run it twice): the record is read again before each step that writes
  // a result, and a job that ended elsewhere is left alone.
  bool shared_store = false;
  // Named in the RUNNING event, so a job's history says who ran it.
  std::string worker_name;
  // A model's tier changed (server/model_tiers.h); on the thread that changed it.
  std::function<void(const std::string& key, Tier tier)> on_tier;
};

class Execution : public JobRunner {
 public:
  Execution(const ServerOptions& options, JobStore& store, JobBlobs& blobs, Delivery& delivery,
            WorkerHooks hooks = {});
  ~Execution() override;

  // Loads the models (placing them in tiers within the budgets of
  // options.tier_budgets), requeues (or fails) jobs left by a previous process,
  // starts the executors.
  Status start(const std::vector<ModelSpec>& models) override;
  // Finishes the jobs in hand and stops the executors (queued jobs stay
  // QUEUED). A job still running after `deadline` is stopped at its next
  // hook point and ends in ERROR (UNAVAILABLE), saying the server shut down.
  void stop(std::chrono::milliseconds deadline = std::chrono::milliseconds(30000)) override;

  std::optional<ModelView> find(const std::string& key) const override;
  std::string model_keys() const override;
  // Jobs waiting for `key`'s executor.
  size_t queued_for(const std::string& key) const override;
  bool try_enqueue(const std::string& key, const std::string& job_id,
                   std::shared_ptr<const transport::JobRequest> decoded) override;
  size_t queue_depth() const override;
  // The queues plus one job in hand per executor.
  size_t active_upper_bound() const override { return queue_depth() + executors_.size(); }
  int64_t queue_position(const std::string& model, const std::string& job_id) const override;
  // A running job stops at its next hook point; a queued one is taken off
  // the queue and recorded CANCELLED here.
  bool cancel(JobRecord& job) override;
  // Stops the job if it runs here (at its next hook point); false otherwise.
  bool cancel_running(const std::string& job_id);
  // Queued plus running jobs on the executor of `key`'s device.
  size_t load_for(const std::string& key) const;
  // Waits until the executor of `key` holds fewer than `n` jobs, queued and
  // in hand (or `timeout` passes); true when it does.
  bool wait_load_below(const std::string& key, size_t n, std::chrono::milliseconds timeout) const;
  // Takes the jobs waiting for `key`'s executor off its queue, still QUEUED
  // (a stopping worker hands them back).
  std::vector<std::string> take_queued(const std::string& key);
  std::vector<std::string> served_keys() const;
  Tier tier(const std::string& key) const { return tiers_.tier(key); }
  int64_t model_bytes(const std::string& key) const { return tiers_.bytes(key); }

  Status stream_reply(const std::string& job_id, std::string_view frame, bool binary) override;
  std::optional<std::string> pending_stream(const std::string& job_id) override {
    return streams_.pending_frame(job_id);
  }

  nlohmann::json models_json() const override;
  Result<nlohmann::json> model_json(const std::string& key) const override;

 private:
  // What is known of a model whatever its tier; the model itself is tiers_'.
  struct LoadedModel {
    ModelSpec spec;
    Executor* executor;
    std::string kind;
    std::string revision;
    std::shared_ptr<const std::vector<std::string>> module_paths;
    std::optional<int64_t> vocab_size;  // set when it can generate
  };
  // A restart that finds a job running for the second time fails it.
  static constexpr int64_t kMaxDeathsPerJob = 2;

  const LoadedModel* find_model(const std::string& key) const;
  // How many restarts found this job running before (its LOG events say).
  int64_t recovered_runs(const std::string& job_id);
  // Runs the job on the device's thread; what is left once the device is
  // free (encoding, compressing and storing the result) comes back as `rest`.
  using Rest = std::function<void()>;
  Rest run_job(const std::string& id);
  // `held` is the job's record once read, for the caller's catch.
  void run_job(const std::string& id, std::optional<JobRecord>& held, Rest& rest);
  // The job's model, HOT; a job that waits for it to load is LOADING meanwhile.
  Result<runtime::Model*> acquire_model(JobRecord& job);
  void run_loaded(JobRecord& job, const transport::JobRequest& req, runtime::Model& model,
                  const std::atomic<bool>* cancel, Rest& rest);
  // The executor's callback: the job, then its rest on a finisher thread
  // (on the device's own thread when the finishers are behind), then on_done.
  void run_and_finish(const std::string& id);
  // The job ended (or vanished) in the shared store: another runner had it.
  bool ended_elsewhere(const JobRecord& job);
  // The request decoded at submit, if this process kept it (removes it).
  std::shared_ptr<const transport::JobRequest> take_decoded(const std::string& id);
  // Sends a stream node's value to the client and waits for its reply.
  Result<std::vector<runtime::NamedTensor>> ask_client(const std::string& job_id, uint64_t stream_id,
                                                       const std::string& callback,
                                                       const std::vector<runtime::NamedTensor>& value,
                                                       std::chrono::milliseconds timeout,
                                                       const std::atomic<bool>* cancel);

  const ServerOptions& options_;
  JobStore& store_;
  JobBlobs& blobs_;
  Delivery& delivery_;
  const WorkerHooks hooks_;
  StreamBroker streams_;
  ModelTiers tiers_;
  std::map<std::string, LoadedModel> models_;
  std::map<std::string, std::unique_ptr<Executor>> executors_;  // by device
  // Results are written here, so a device starts its next job while the
  // last one's result is compressed and stored. Bounded: two per device.
  std::unique_ptr<WorkPool> finishers_;

  std::mutex mu_;  // guards running_, cancel_pending_, decoded_
  std::map<std::string, std::shared_ptr<std::atomic<bool>>> running_;  // cancel flags of running jobs
  std::set<std::string> cancel_pending_;  // cancelled between queue and start
  std::atomic<bool> drain_expired_{false};  // stop()'s deadline passed: cancels mean shutdown

  // Once a second, a STATUS event for each queued job whose place in line
  // changed since it was last told (so followers see it move, at most 1/s).
  void announce_positions();
  struct Announced {
    int64_t position;
    std::chrono::steady_clock::time_point at;
  };
  std::map<std::string, Announced> announced_position_;  // guarded by mu_
  std::mutex ticker_mu_;
  std::condition_variable ticker_cv_;
  bool ticker_stop_ = false;
  std::thread ticker_;
  // Small requests decoded at submit, handed to the executor so it need not
  // read and decode them again (the store keeps them for restarts).
  std::map<std::string, std::shared_ptr<const transport::JobRequest>> decoded_;
};

}  // namespace loom::server
