// The WebSocket frames of hybrid execution (transport/PROTOCOL.md, "STREAM"):
// the server's STREAM request, the client's STREAM_REPLY and the server's
// REJECTED answer to a reply it cannot place. Frames with tensors are binary:
// a 4-byte little-endian header length, a JSON header, then a safetensors
// buffer (encoded and decoded by the runtime, so this file stays free of
// torch); no base64 and no JSON parsing of tensor bytes on either side. A
// reply may also be a JSON text frame with the tensors as base64 "tensors"
// (for hand-written clients).
//
// Decoders treat their input as hostile: every field is type-checked and a
// malformed frame gives INVALID_ARGUMENT saying what is wrong.
// Thread safety: plain values and pure functions.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "graph/status.h"

namespace loom::transport {

// Server -> client: run callback `callback` on `tensors`, reply before the deadline.
struct StreamRequest {
  std::string job_id;
  uint64_t stream_id = 0;        // 1, 2, ... per job, in graph order
  std::string callback;
  uint64_t deadline_ms = 0;      // how long the server waits for the reply, from when it was first sent
  uint64_t max_reply_bytes = 0;  // the server's bound on the reply's tensor bytes
  std::string tensors;           // safetensors bytes (decoded from base64)
};

// Client -> server: the callback's result or its error.
struct StreamReply {
  uint64_t stream_id = 0;
  std::string tensors;  // safetensors bytes (decoded); empty when `error` is set
  std::string error;    // the callback's failure; non-empty means failed
};

// Binary frames: header JSON + body bytes.
std::string encode_binary_frame(const nlohmann::json& header, std::string_view body);
// INVALID_ARGUMENT for a frame too short for its header length or whose
// header is not a JSON object.
Result<std::pair<nlohmann::json, std::string>> split_binary_frame(std::string_view frame);

std::string encode_stream_request(const StreamRequest& request);  // binary
// From a STREAM event: its header with the body under "tensors" (the raw
// safetensors bytes as a JSON binary value, as EventStream delivers it).
Result<StreamRequest> decode_stream_request(const nlohmann::json& event);

std::string encode_stream_reply(const StreamReply& reply);  // binary
// A binary or text STREAM_REPLY frame. Frames over `max_frame_bytes` are
// refused before they are parsed.
Result<StreamReply> decode_stream_reply(std::string_view frame, bool binary, uint64_t max_frame_bytes);

// Server -> client: a reply frame that was not accepted (unknown stream id,
// not a reply, malformed); the job is not affected.
std::string encode_rejected(uint64_t stream_id, const std::string& message);

}  // namespace loom::transport
