#include "server/metrics.h"

#include <sstream>

namespace loom::server {

void Metrics::job_finished(double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) bucket_counts_[i]++;
  }
  latency_count_++;
  latency_sum_ += seconds;
}

std::string Metrics::render(size_t queue_depth) const {
  std::ostringstream o;
  o << "# HELP loom_jobs_total Jobs that entered each state.\n# TYPE loom_jobs_total counter\n";
  for (size_t i = 0; i + 1 < by_state_.size(); ++i) {  // not kUnknown
    o << "loom_jobs_total{state=\"" << job_state_name(static_cast<JobState>(i)) << "\"} " << by_state_[i].load() << "\n";
  }
  o << "# HELP loom_queue_depth Jobs waiting for an executor.\n# TYPE loom_queue_depth gauge\n";
  o << "loom_queue_depth " << queue_depth << "\n";
  o << "# HELP loom_job_latency_seconds Submit to terminal state.\n# TYPE loom_job_latency_seconds histogram\n";
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < kBuckets.size(); ++i) {
      o << "loom_job_latency_seconds_bucket{le=\"" << kBuckets[i] << "\"} " << bucket_counts_[i] << "\n";
    }
    o << "loom_job_latency_seconds_bucket{le=\"+Inf\"} " << latency_count_ << "\n";
    o << "loom_job_latency_seconds_sum " << latency_sum_ << "\n";
    o << "loom_job_latency_seconds_count " << latency_count_ << "\n";
  }
  o << "# HELP loom_bytes_sent_total Response body bytes sent (results, snapshots).\n# TYPE loom_bytes_sent_total counter\n";
  o << "loom_bytes_sent_total " << bytes_sent_.load() << "\n";
  o << "# HELP loom_http_requests_total HTTP requests handled.\n# TYPE loom_http_requests_total counter\n";
  o << "loom_http_requests_total " << http_requests_.load() << "\n";
  o << "# HELP loom_websocket_follows_total WebSockets opened to follow a job.\n"
       "# TYPE loom_websocket_follows_total counter\n";
  o << "loom_websocket_follows_total " << ws_follows_.load() << "\n";
  return o.str();
}

}  // namespace loom::server
