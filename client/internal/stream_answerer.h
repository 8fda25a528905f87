// Answers a job's STREAM requests on the client (hybrid execution): decodes
// the tensors, runs the registered callback on the caller's thread, and
// builds the STREAM_REPLY frame (transport/stream_frames.h). The last reply
// is kept: a request the server sends again after a reattach gets the same
// answer without running the callback twice.
// Thread safety: one thread (the one following the job).
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <string>

#include "runtime/stream_value.h"

namespace loom::client::internal {

class StreamAnswerer {
 public:
  StreamAnswerer(std::map<std::string, runtime::StreamFn> handlers, uint64_t max_request_bytes)
      : handlers_(std::move(handlers)), max_request_bytes_(max_request_bytes) {}

  // Without handlers the follower only watches: STREAM requests are left
  // to the client that has them.
  bool answers() const { return !handlers_.empty(); }

  // The STREAM_REPLY frame for a STREAM event; a callback that throws, a
  // missing handler or an unreadable request become an error reply (the
  // job then fails with that message). Empty when the event has no usable
  // stream id (nothing to answer).
  std::string answer(const nlohmann::json& event);
  uint64_t answered() const { return last_id_; }

 private:
  std::map<std::string, runtime::StreamFn> handlers_;
  uint64_t max_request_bytes_;
  uint64_t last_id_ = 0;
  std::string last_frame_;
};

}  // namespace loom::client::internal
