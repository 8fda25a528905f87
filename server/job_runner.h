// JobRunner: where admitted jobs go to run. The API side (Admission,
// JobService) names no backend:
//   Execution       the embedded server: models loaded in this process, one
//                   executor per device (server/execution.h)
//   RedisDispatch   scale-out: a Redis stream per model, read by loom-workers
//                   that registered the model (server/redis_dispatch.h)
// Thread safety: implementations are safe to call from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "graph/status.h"
#include "server/job_store.h"
#include "server/models_config.h"
#include "transport/request.h"

namespace loom::server {

class JobRunner {
 public:
  // Admission's view of a model: what it checks a request against.
  struct ModelView {
    std::string kind;  // "gpt2", "llama", "torchscript", ...
    std::string device;
    std::string revision;  // content hash of its files (model_revision)
    std::shared_ptr<const std::vector<std::string>> module_paths;
    std::optional<int64_t> vocab_size;  // set when it can generate
    std::string path;  // its checkpoint (scans load its shapes); "" when unknown
  };

  virtual ~JobRunner() = default;

  // Loads `models` (Execution) or connects to the workers' registry, and
  // recovers what a previous process left unfinished.
  virtual Status start(const std::vector<ModelSpec>& models) = 0;
  // Finishes or hands back the jobs in hand; see Execution::stop.
  virtual void stop(std::chrono::milliseconds deadline) = 0;

  virtual std::optional<ModelView> find(const std::string& key) const = 0;
  virtual std::string model_keys() const = 0;  // "a, b" for messages
  // Jobs waiting for `key`; try_enqueue is false when that queue is full.
  virtual size_t queued_for(const std::string& key) const = 0;
  virtual bool try_enqueue(const std::string& key, const std::string& job_id,
                           std::shared_ptr<const transport::JobRequest> decoded) = 0;
  virtual size_t queue_depth() const = 0;
  // At least as many as the jobs queued or running here: while a key has
  // fewer active jobs than this, its cap need not be looked up.
  virtual size_t active_upper_bound() const = 0;
  // 0-based place in its model's queue; -1 when not queued or not known.
  virtual int64_t queue_position(const std::string& model, const std::string& job_id) const = 0;
  // True when the job was running and records CANCELLED itself; otherwise
  // it was taken off its queue and recorded CANCELLED here.
  virtual bool cancel(JobRecord& job) = 0;

  // Hybrid execution: a STREAM_REPLY frame from a client following `job_id`.
  virtual Status stream_reply(const std::string& job_id, std::string_view frame, bool binary) = 0;
  // The STREAM request frame the job waits on, for a client that (re)attaches.
  virtual std::optional<std::string> pending_stream(const std::string& job_id) = 0;

  // Whether webhooks a previous process left undelivered are resumed from
  // the store at start (embedded), or come back through a queue (scale-out).
  virtual bool resumes_webhooks_from_store() const { return true; }

  virtual nlohmann::json models_json() const = 0;
  virtual Result<nlohmann::json> model_json(const std::string& key) const = 0;
};

}  // namespace loom::server
