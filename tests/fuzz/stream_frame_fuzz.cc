// Fuzz target: what a client may send on a job's WebSocket (the server's
// reply handler decodes it) and what a server may send a client: STREAM_REPLY
// frames, text and binary, STREAM requests, event types and error bodies.
// The first byte picks text or binary.
#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "transport/stream_frames.h"
#include "transport/wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool binary = (data[0] & 1) != 0;
  std::string_view frame(reinterpret_cast<const char*>(data + 1), size - 1);
  (void)loom::transport::decode_stream_reply(frame, binary, 1 << 20);
  auto parts = loom::transport::split_binary_frame(frame);
  if (parts.ok()) (void)loom::transport::decode_stream_request(parts->first);
  (void)loom::transport::event_type_of_text(frame);
  (void)loom::transport::parse_error_body(frame);
  nlohmann::json j = loom::transport::valid_utf8(frame);
  (void)j.dump();  // must never throw: valid_utf8 made it valid
  return 0;
}
