#include "server/job_store.h"

#include <openssl/rand.h>

#include <random>

namespace loom::server {

const char* job_state_name(JobState s) {
  switch (s) {
    case JobState::kReceived: return "RECEIVED";
    case JobState::kQueued: return "QUEUED";
    case JobState::kDispatched: return "DISPATCHED";
    case JobState::kRunning: return "RUNNING";
    case JobState::kCompleted: return "COMPLETED";
    case JobState::kError: return "ERROR";
    case JobState::kCancelled: return "CANCELLED";
  }
  return "UNKNOWN";
}

std::optional<JobState> parse_job_state(const std::string& name) {
  static constexpr JobState kAll[] = {JobState::kReceived,  JobState::kQueued, JobState::kDispatched,
                                      JobState::kRunning,   JobState::kCompleted, JobState::kError,
                                      JobState::kCancelled};
  for (JobState s : kAll) {
    if (name == job_state_name(s)) return s;
  }
  return std::nullopt;
}

bool is_terminal(JobState s) {
  return s == JobState::kCompleted || s == JobState::kError || s == JobState::kCancelled;
}

std::string new_job_id() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    // RAND_bytes fails only when OpenSSL cannot seed itself; std::random_device
    // reads the same kernel source (getrandom) on Linux, so ids stay unguessable.
    std::random_device rd;
    for (unsigned char& b : bytes) b = static_cast<unsigned char>(rd());
  }
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(32);
  for (unsigned char b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

}  // namespace loom::server
