// Counters for GET /metrics (Prometheus text format).
// Thread safety: all methods may be called from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

#include "server/job_store.h"

namespace loom::server {

class Metrics {
 public:
  void job_entered(JobState s) { by_state_[static_cast<size_t>(s) % by_state_.size()]++; }
  void job_finished(double seconds);  // submit to terminal state
  void bytes_sent(uint64_t n) { bytes_sent_ += n; }
  void http_request() { http_requests_++; }
  void ws_follow() { ws_follows_++; }  // a WebSocket that follows a job opened
  // Prometheus exposition; `queue_depth` is read when rendering.
  std::string render(size_t queue_depth) const;

 private:
  static constexpr std::array<double, 10> kBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30};
  std::array<std::atomic<uint64_t>, 8> by_state_{};  // by JobState, kUnknown last (never entered)
  std::atomic<uint64_t> bytes_sent_{0};
  std::atomic<uint64_t> http_requests_{0};
  std::atomic<uint64_t> ws_follows_{0};
  mutable std::mutex mu_;
  std::array<uint64_t, kBuckets.size()> bucket_counts_{};
  uint64_t latency_count_ = 0;
  double latency_sum_ = 0;
};

}  // namespace loom::server
