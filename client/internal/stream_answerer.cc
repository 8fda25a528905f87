#include "client/internal/stream_answerer.h"

#include "runtime/safetensors.h"
#include "transport/stream_frames.h"

namespace loom::client::internal {

std::string StreamAnswerer::answer(const nlohmann::json& event) {
  transport::StreamReply reply;
  if (event.contains("stream_id") && event["stream_id"].is_number_unsigned()) {
    reply.stream_id = event["stream_id"].get<uint64_t>();
  }
  if (reply.stream_id == 0) return "";
  if (reply.stream_id == last_id_) return last_frame_;  // sent again after a reattach
  auto req = transport::decode_stream_request(event);
  if (!req.ok()) {
    reply.error = "the client could not read the STREAM request: " + req.status().message();
  } else if (auto it = handlers_.find(req->callback); it == handlers_.end()) {
    reply.error = "no handler is registered for it on this client";
  } else {
    runtime::SafetensorsLimits limits;
    limits.max_total_bytes = max_request_bytes_;
    auto value = runtime::read_safetensors_buffer(req->tensors, limits);
    if (!value.ok()) {
      reply.error = "the client could not read the streamed tensors: " + value.status().message();
    } else {
      try {
        auto result = it->second(value->tensors);
        auto bytes = runtime::encode_safetensors(result);
        if (!bytes.ok()) {
          reply.error = "the callback's reply cannot be encoded: " + bytes.status().message();
        } else if (req->max_reply_bytes > 0 && bytes->size() > req->max_reply_bytes) {
          reply.error = "the callback's reply is " + std::to_string(bytes->size()) +
                        " bytes, over the server's stream limit of " + std::to_string(req->max_reply_bytes);
        } else {
          reply.tensors = std::move(bytes).value();
        }
      } catch (const std::exception& e) {
        reply.error = e.what();
        if (reply.error.empty()) reply.error = "an exception without a message";
      } catch (...) {
        reply.error = "a non-standard exception";
      }
    }
  }
  last_id_ = reply.stream_id;
  last_frame_ = transport::encode_stream_reply(reply);
  return last_frame_;
}

}  // namespace loom::client::internal
