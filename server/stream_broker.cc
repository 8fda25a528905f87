#include "server/stream_broker.h"

namespace loom::server {

void StreamBroker::post(const std::string& job_id, uint64_t stream_id, std::string frame) {
  std::lock_guard<std::mutex> lock(mu_);
  Slot& s = slots_[job_id];
  s.stream_id = stream_id;
  s.waiting = true;
  s.frame = std::move(frame);
  s.reply.reset();
}

StreamBroker::Outcome StreamBroker::wait(const std::string& job_id, uint64_t stream_id,
                                         std::chrono::steady_clock::time_point deadline,
                                         const std::atomic<bool>* cancel, transport::StreamReply* reply) {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    Slot& s = slots_[job_id];
    if (s.stream_id == stream_id && s.reply) {
      *reply = std::move(*s.reply);
      s.reply.reset();
      s.waiting = false;
      s.frame.clear();
      return Outcome::kReply;
    }
    if (cancel != nullptr && cancel->load()) return Outcome::kCancelled;
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      s.waiting = false;
      return Outcome::kDeadline;
    }
    // Replies notify at once; the slice only bounds how late a cancel is seen.
    cv_.wait_until(lock, std::min(deadline, now + std::chrono::milliseconds(20)));
  }
}

void StreamBroker::close(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  slots_.erase(job_id);
}

Status StreamBroker::reply(const std::string& job_id, transport::StreamReply reply) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = slots_.find(job_id);
    if (it == slots_.end()) {
      return failed_precondition("job " + job_id + " has no stream request waiting for a reply");
    }
    Slot& s = it->second;
    if (reply.stream_id <= s.answered) return Status();  // a resend after reattaching: already taken
    if (!s.waiting || reply.stream_id != s.stream_id) {
      return failed_precondition("stream id " + std::to_string(reply.stream_id) + " is unknown: job " + job_id +
                                 (s.waiting ? " waits for stream id " + std::to_string(s.stream_id)
                                            : " has no stream request waiting"));
    }
    if (s.reply) return Status();  // a second reply to the same request: the first counts
    s.answered = reply.stream_id;
    s.reply = std::move(reply);
  }
  cv_.notify_all();
  return Status();
}

std::optional<std::string> StreamBroker::pending_frame(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = slots_.find(job_id);
  if (it == slots_.end() || !it->second.waiting) return std::nullopt;
  return it->second.frame;
}

}  // namespace loom::server
