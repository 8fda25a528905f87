// Where a running job's STREAM requests wait for their replies.
//
// The executor thread running a job posts a request (the STREAM frame) and
// blocks in wait() until the client's reply arrives, the deadline passes or
// the job is cancelled. The WebSocket side hands replies in with reply()
// and, when a client (re)attaches, sends the pending frame again
// (pending_frame()), so a dropped socket loses nothing while the deadline
// lasts. One request per job is pending at a time: stream nodes are
// answered in graph order.
// Thread safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "graph/status.h"
#include "transport/stream_frames.h"

namespace loom::server {

class StreamBroker {
 public:
  enum class Outcome { kReply, kDeadline, kCancelled };

  // Executor side. `frame` is the STREAM event text sent to clients.
  void post(const std::string& job_id, uint64_t stream_id, std::string frame);
  // Waits for the reply to `stream_id`; checks `cancel` every few ms.
  Outcome wait(const std::string& job_id, uint64_t stream_id, std::chrono::steady_clock::time_point deadline,
               const std::atomic<bool>* cancel, transport::StreamReply* reply);
  // The job ended: forget it (late replies are then unknown).
  void close(const std::string& job_id);

  // WebSocket side. OK when the reply was taken (or repeats one already
  // taken, which a client resends after reattaching); FAILED_PRECONDITION
  // saying why otherwise (no stream pending, unknown stream id).
  Status reply(const std::string& job_id, transport::StreamReply reply);
  std::optional<std::string> pending_frame(const std::string& job_id);

 private:
  struct Slot {
    uint64_t stream_id = 0;   // the pending (or last) request
    uint64_t answered = 0;    // highest stream id whose reply was taken
    bool waiting = false;     // a request is pending
    std::string frame;
    std::optional<transport::StreamReply> reply;
  };
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Slot> slots_;
};

}  // namespace loom::server
