// Admission: what happens to a request before it is queued. Authenticates
// API keys (cached briefly, so a revoked key is refused within a second),
// decodes and validates the body against the model, answers idempotent
// retries (same request id) and identical requests that already completed
// (deduplication, per key), stores the request and queues the job.
// Thread safety: every method may be called from any thread; submit does
// blocking store I/O.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "server/delivery.h"
#include "server/job_runner.h"
#include "server/job_blobs.h"
#include "server/job_store.h"
#include "server/callback_policy.h"
#include "server/metrics.h"
#include "server/server_options.h"
#include "server/variants.h"
#include "transport/request.h"

namespace loom::server {

// How the HTTP layer should answer a refused submit beyond its Status:
// a full queue is worth retrying soon (429 + Retry-After), a request id
// reused for another request is a conflict (409).
struct SubmitRefusal {
  int64_t retry_after_s = -1;
  bool conflict = false;
};

struct SubmitAnswer {
  std::string job_id;
  JobState state;
  bool deduplicated = false;
  uint64_t subscription = 0;  // the `listener` handle given to submit(); 0 when none
};

class Admission {
 public:
  // How long a checked key is trusted without asking the store again.
  static constexpr std::chrono::milliseconds kKeyCacheTtl{500};

  // `variants` resolves jobs for "key@variant" (server/variants.h).
  Admission(const ServerOptions& options, JobStore& store, JobBlobs& blobs, Delivery& delivery, JobRunner& execution,
            Metrics& metrics, const Variants& variants)
      : variants_(variants),
        options_(options),
        store_(store),
        blobs_(blobs),
        delivery_(delivery),
        execution_(execution),
        metrics_(metrics),
        callbacks_(options.webhook_allow) {}

  // The key id a request's API key belongs to (UNAUTHENTICATED otherwise).
  Result<std::string> authenticate(const std::string& api_key);

  // `listener`, when set, is subscribed to the new job before it is queued,
  // so it sees every event (a fast job may end before submit returns).
  // A request id seen before answers with that job, if the request is the
  // same; another request under it is refused (FAILED_PRECONDITION,
  // `refusal->conflict`). A refusal worth retrying soon (queue full, key
  // at its cap) sets `refusal->retry_after_s`.
  Result<SubmitAnswer> submit(const std::string& owner, std::string_view body, Delivery::Listener listener = {},
                              SubmitRefusal* refusal = nullptr);
  bool queue_full(const std::string& model) const;

 private:
  // The job an earlier submit with this request id made, if the request is
  // the same (FAILED_PRECONDITION, a conflict, if not); nullopt when none.
  Result<std::optional<SubmitAnswer>> answer_retry(const std::string& owner, const transport::JobRequest& req,
                                                   SubmitRefusal* refusal);
  // A cached job whose identity matches, answered at once; nullopt to run it.
  Result<std::optional<SubmitAnswer>> answer_from_cache(JobRecord& job, uint64_t subscription);

  const Variants& variants_;
  const ServerOptions& options_;
  JobStore& store_;
  JobBlobs& blobs_;
  Delivery& delivery_;
  JobRunner& execution_;
  Metrics& metrics_;
  const CallbackPolicy callbacks_;
  struct CachedKey {
    std::string key_id;
    std::chrono::steady_clock::time_point checked;
  };
  std::mutex mu_;  // guards key_cache_
  std::map<std::string, CachedKey> key_cache_;  // api key -> key id
};

}  // namespace loom::server
