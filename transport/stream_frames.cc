#include "transport/stream_frames.h"

#include "transport/base64.h"
#include "transport/internal/printable.h"
#include "transport/wire.h"

namespace loom::transport {
namespace {

using json = nlohmann::json;

Result<uint64_t> positive_id(const json& j, const char* what) {
  if (!j.contains("stream_id") || !j["stream_id"].is_number_unsigned() || j["stream_id"].get<uint64_t>() == 0) {
    return invalid_argument(std::string(what) + " has no \"stream_id\" (a positive integer)");
  }
  return j["stream_id"].get<uint64_t>();
}

// "tensors": raw bytes (a JSON binary value, from a binary frame) or base64 text.
Result<std::string> tensors_of(const json& j, const char* what) {
  if (j.contains("tensors") && j["tensors"].is_binary()) {
    const auto& bin = j["tensors"].get_binary();
    return std::string(bin.begin(), bin.end());
  }
  if (!j.contains("tensors") || !j["tensors"].is_string()) {
    return invalid_argument(std::string(what) + " has no \"tensors\" (a safetensors buffer)");
  }
  auto bytes = base64_decode(j["tensors"].get_ref<const std::string&>());
  if (!bytes.ok()) return invalid_argument(std::string(what) + ": \"tensors\" is not base64: " + bytes.status().message());
  return bytes;
}

}  // namespace

std::string encode_binary_frame(const json& header, std::string_view body) {
  // Replace, not throw: a callback name comes from a client's graph.
  std::string h = header.dump(-1, ' ', false, json::error_handler_t::replace);
  std::string out;
  out.reserve(4 + h.size() + body.size());
  uint32_t n = static_cast<uint32_t>(h.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out += h;
  out.append(body.data(), body.size());
  return out;
}

Result<std::pair<json, std::string>> split_binary_frame(std::string_view frame) {
  if (frame.size() < 4) return invalid_argument("the binary frame is shorter than its 4-byte header length");
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n |= static_cast<uint32_t>(static_cast<unsigned char>(frame[i])) << (8 * i);
  if (n > frame.size() - 4) {
    return invalid_argument("the binary frame's header length " + std::to_string(n) + " runs past its " +
                            std::to_string(frame.size()) + " bytes");
  }
  json header = json::parse(frame.substr(4, n), nullptr, /*allow_exceptions=*/false);
  if (!header.is_object()) return invalid_argument("the binary frame's header is not a JSON object");
  return std::make_pair(std::move(header), std::string(frame.substr(4 + n)));
}

std::string encode_stream_request(const StreamRequest& r) {
  json j = {{"type", event_type_name(EventType::kStream)},
            {"job_id", r.job_id},
            {"stream_id", r.stream_id},
            {"callback", r.callback},
            {"deadline_ms", r.deadline_ms},
            {"max_reply_bytes", r.max_reply_bytes}};
  return encode_binary_frame(j, r.tensors);
}

Result<StreamRequest> decode_stream_request(const json& j) {
  const char* what = "STREAM event";
  if (event_type_of(j) != EventType::kStream) return invalid_argument("not a STREAM event");
  StreamRequest r;
  LOOM_ASSIGN_OR_RETURN(r.stream_id, positive_id(j, what));
  if (!j.contains("callback") || !j["callback"].is_string()) return invalid_argument("STREAM event has no \"callback\"");
  r.callback = j["callback"].get<std::string>();
  if (j.contains("job_id") && j["job_id"].is_string()) r.job_id = j["job_id"].get<std::string>();
  if (j.contains("deadline_ms") && j["deadline_ms"].is_number_unsigned()) r.deadline_ms = j["deadline_ms"].get<uint64_t>();
  if (j.contains("max_reply_bytes") && j["max_reply_bytes"].is_number_unsigned()) {
    r.max_reply_bytes = j["max_reply_bytes"].get<uint64_t>();
  }
  LOOM_ASSIGN_OR_RETURN(r.tensors, tensors_of(j, what));
  return r;
}

std::string encode_stream_reply(const StreamReply& r) {
  json j = {{"type", event_type_name(EventType::kStreamReply)}, {"stream_id", r.stream_id}};
  if (!r.error.empty()) j["error"] = r.error;
  return encode_binary_frame(j, r.error.empty() ? std::string_view(r.tensors) : std::string_view());
}

Result<StreamReply> decode_stream_reply(std::string_view frame, bool binary, uint64_t max_frame_bytes) {
  if (frame.size() > max_frame_bytes) {
    return Status(StatusCode::kResourceExhausted, "the frame is " + std::to_string(frame.size()) +
                                                      " bytes, over the limit of " + std::to_string(max_frame_bytes));
  }
  json j;
  std::string body;
  if (binary) {
    LOOM_ASSIGN_OR_RETURN(auto parts, split_binary_frame(frame));
    j = std::move(parts.first);
    body = std::move(parts.second);
  } else {
    j = json::parse(frame, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) return invalid_argument("the frame is not a JSON object");
  }
  // Any JSON may arrive here: the type is read without assuming its shape.
  if (event_type_of(j) != EventType::kStreamReply) {
    const json* type = j.contains("type") ? &j["type"] : nullptr;
    return invalid_argument("clients may only send STREAM_REPLY frames, not " +
                            (type == nullptr ? std::string("a frame without \"type\"")
                                             : "type " + internal::printable(type->dump(-1, ' ', false,
                                                                                          json::error_handler_t::replace),
                                                                              80)));
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
  if (!binary) {
    LOOM_ASSIGN_OR_RETURN(r.tensors, tensors_of(j, what));
  } else if (body.empty()) {
    return invalid_argument("STREAM_REPLY has neither \"error\" nor tensors after its header");
  } else {
    r.tensors = std::move(body);
  }
  return r;
}

std::string encode_rejected(uint64_t stream_id, const std::string& message) {
  return json{{"type", event_type_name(EventType::kRejected)}, {"stream_id", stream_id}, {"message", message}}.dump(
      -1, ' ', false, json::error_handler_t::replace);
}

}  // namespace loom::transport
