#include "transport/stream_frames.h"

#include "transport/base64.h"

namespace loom::transport {
namespace {

using json = nlohmann::json;

Result<uint64_t> positive_id(const json& j, const char* what) {
  if (!j.contains("stream_id") || !j["stream_id"].is_number_unsigned() || j["stream_id"].get<uint64_t>() == 0) {
    return invalid_argument(std::string(what) + " has no \"stream_id\" (a positive integer)");
  }
  return j["stream_id"].get<uint64_t>();
}

Result<std::string> tensors_of(const json& j, const char* what) {
  if (!j.contains("tensors") || !j["tensors"].is_string()) {
    return invalid_argument(std::string(what) + " has no \"tensors\" (base64 of a safetensors buffer)");
  }
  auto bytes = base64_decode(j["tensors"].get_ref<const std::string&>());
  if (!bytes.ok()) return invalid_argument(std::string(what) + ": \"tensors\" is not base64: " + bytes.status().message());
  return bytes;
}

}  // namespace

std::string encode_stream_request(const StreamRequest& r) {
  json j = {{"type", "STREAM"},
            {"job_id", r.job_id},
            {"stream_id", r.stream_id},
            {"callback", r.callback},
            {"deadline_ms", r.deadline_ms},
            {"max_reply_bytes", r.max_reply_bytes},
            {"tensors", base64_encode(r.tensors)}};
  return j.dump();
}

Result<StreamRequest> decode_stream_request(const json& j) {
  const char* what = "STREAM event";
  if (!j.is_object() || j.value("type", "") != "STREAM") return invalid_argument("not a STREAM event");
  StreamRequest r;
  LOOM_ASSIGN_OR_RETURN(r.stream_id, positive_id(j, what));
  if (!j.contains("callback") || !j["callback"].is_string()) return invalid_argument("STREAM event has no \"callback\"");
  r.callback = j["callback"].get<std::string>();
  r.job_id = j.value("job_id", "");
  if (j.contains("deadline_ms") && j["deadline_ms"].is_number_unsigned()) r.deadline_ms = j["deadline_ms"].get<uint64_t>();
  if (j.contains("max_reply_bytes") && j["max_reply_bytes"].is_number_unsigned()) {
    r.max_reply_bytes = j["max_reply_bytes"].get<uint64_t>();
  }
  LOOM_ASSIGN_OR_RETURN(r.tensors, tensors_of(j, what));
  return r;
}

std::string encode_stream_reply(const StreamReply& r) {
  json j = {{"type", "STREAM_REPLY"}, {"stream_id", r.stream_id}};
  if (!r.error.empty()) {
    j["error"] = r.error;
  } else {
    j["tensors"] = base64_encode(r.tensors);
  }
  return j.dump();
}

Result<StreamReply> decode_stream_reply(std::string_view frame, uint64_t max_frame_bytes) {
  if (frame.size() > max_frame_bytes) {
    return Status(StatusCode::kResourceExhausted, "the frame is " + std::to_string(frame.size()) +
                                                      " bytes, over the limit of " + std::to_string(max_frame_bytes));
  }
  json j = json::parse(frame, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return invalid_argument("the frame is not a JSON object");
  if (j.value("type", "") != "STREAM_REPLY") {
    return invalid_argument("clients may only send STREAM_REPLY frames, not \"" +
                            (j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>() : "") + "\"");
  }
  const char* what = "STREAM_REPLY";
  StreamReply r;
  LOOM_ASSIGN_OR_RETURN(r.stream_id, positive_id(j, what));
  if (j.contains("error")) {
    if (!j["error"].is_string() || j["error"].get_ref<const std::string&>().empty()) {
      return invalid_argument("STREAM_REPLY \"error\" must be a non-empty string");
    }
    r.error = j["error"].get<std::string>();
    return r;
  }
  LOOM_ASSIGN_OR_RETURN(r.tensors, tensors_of(j, what));
  return r;
}

std::string encode_rejected(uint64_t stream_id, const std::string& message) {
  return json{{"type", "REJECTED"}, {"stream_id", stream_id}, {"message", message}}.dump();
}

}  // namespace loom::transport
