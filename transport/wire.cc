#include "transport/wire.h"

#include <nlohmann/json.hpp>

#include "transport/internal/printable.h"

namespace loom::transport {

using json = nlohmann::json;

Status check_protocol_header(std::optional<std::string_view> header) {
  if (!header) return Status();
  const std::string want = std::to_string(kProtocolVersion);
  if (*header == want) return Status();
  return failed_precondition("protocol version " + internal::printable(*header, 40) +
                             " is not supported: this server speaks version " + want +
                             "; use a client and server of the same protocol version (or leave out the " +
                             kProtocolHeader + " header)");
}

namespace {
constexpr JobState kStates[] = {JobState::kReceived, JobState::kQueued,    JobState::kDispatched,
                                JobState::kLoading,  JobState::kRunning,   JobState::kCompleted,
                                JobState::kError,    JobState::kCancelled};
constexpr EventType kEventTypes[] = {EventType::kStatus,    EventType::kLog,    EventType::kCompleted,
                                     EventType::kError,     EventType::kCancelled, EventType::kStream,
                                     EventType::kStreamReply, EventType::kRejected, EventType::kToken};
constexpr StatusCode kCodes[] = {StatusCode::kOk,
                                 StatusCode::kInvalidArgument,
                                 StatusCode::kNotFound,
                                 StatusCode::kFailedPrecondition,
                                 StatusCode::kResourceExhausted,
                                 StatusCode::kUnavailable,
                                 StatusCode::kDeadlineExceeded,
                                 StatusCode::kCancelled,
                                 StatusCode::kUnauthenticated,
                                 StatusCode::kPermissionDenied,
                                 StatusCode::kInternal};
}  // namespace

const char* job_state_name(JobState state) {
  switch (state) {
    case JobState::kReceived: return "RECEIVED";
    case JobState::kQueued: return "QUEUED";
    case JobState::kDispatched: return "DISPATCHED";
    case JobState::kLoading: return "LOADING";
    case JobState::kRunning: return "RUNNING";
    case JobState::kCompleted: return "COMPLETED";
    case JobState::kError: return "ERROR";
    case JobState::kCancelled: return "CANCELLED";
    case JobState::kUnknown: break;
  }
  return "UNKNOWN";
}

JobState parse_job_state(std::string_view name) {
  for (JobState s : kStates) {
    if (name == job_state_name(s)) return s;
  }
  return JobState::kUnknown;
}

bool is_terminal(JobState state) {
  return state == JobState::kCompleted || state == JobState::kError || state == JobState::kCancelled;
}

const char* event_type_name(EventType type) {
  switch (type) {
    case EventType::kStatus: return "STATUS";
    case EventType::kLog: return "LOG";
    case EventType::kCompleted: return "COMPLETED";
    case EventType::kError: return "ERROR";
    case EventType::kCancelled: return "CANCELLED";
    case EventType::kStream: return "STREAM";
    case EventType::kStreamReply: return "STREAM_REPLY";
    case EventType::kRejected: return "REJECTED";
    case EventType::kToken: return "TOKEN";
    case EventType::kUnknown: break;
  }
  return "UNKNOWN";
}

EventType parse_event_type(std::string_view name) {
  for (EventType t : kEventTypes) {
    if (name == event_type_name(t)) return t;
  }
  return EventType::kUnknown;
}

bool is_terminal(EventType type) {
  return type == EventType::kCompleted || type == EventType::kError || type == EventType::kCancelled;
}

EventType terminal_event_type(JobState state) {
  switch (state) {
    case JobState::kCompleted: return EventType::kCompleted;
    case JobState::kError: return EventType::kError;
    case JobState::kCancelled: return EventType::kCancelled;
    default: return EventType::kUnknown;
  }
}

EventType event_type_of(const json& event) {
  if (!event.is_object()) return EventType::kUnknown;
  auto it = event.find("type");
  if (it == event.end() || !it->is_string()) return EventType::kUnknown;
  return parse_event_type(it->get_ref<const std::string&>());
}

EventType event_type_of_text(std::string_view event_json) {
  return event_type_of(json::parse(event_json.begin(), event_json.end(), nullptr, /*allow_exceptions=*/false));
}

json error_body(const Status& status) {
  return {{"error", {{"code", status_code_name(status.code())}, {"message", valid_utf8(status.message())}}}};
}

std::string error_body_text(const Status& status) { return error_body(status).dump(); }

std::optional<Status> parse_error_body(std::string_view body) {
  json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  auto e = j.find("error");
  if (e == j.end() || !e->is_object()) return std::nullopt;
  auto code = e->find("code");
  if (code == e->end() || !code->is_string()) return std::nullopt;
  auto parsed = parse_status_code(code->get_ref<const std::string&>());
  if (!parsed || *parsed == StatusCode::kOk) return std::nullopt;
  std::string message;
  auto m = e->find("message");
  if (m != e->end() && m->is_string()) message = m->get<std::string>();
  return Status(*parsed, std::move(message));
}

std::optional<StatusCode> parse_status_code(std::string_view name) {
  for (StatusCode c : kCodes) {
    if (name == status_code_name(c)) return c;
  }
  return std::nullopt;
}

int http_status_for(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return 200;
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kFailedPrecondition: return 400;
    case StatusCode::kUnauthenticated: return 401;
    case StatusCode::kPermissionDenied: return 403;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kCancelled: return 409;
    case StatusCode::kResourceExhausted: return 413;
    case StatusCode::kInternal: return 500;
    case StatusCode::kUnavailable: return 503;
    case StatusCode::kDeadlineExceeded: return 504;
  }
  return 500;
}

StatusCode status_code_for_http(int http_status) {
  if (http_status >= 200 && http_status < 300) return StatusCode::kOk;
  switch (http_status) {
    case 408: return StatusCode::kDeadlineExceeded;
    case 429: return StatusCode::kResourceExhausted;
    case 502: return StatusCode::kUnavailable;
    default: break;
  }
  // The first code whose row in the table is this status.
  for (StatusCode c : kCodes) {
    if (c != StatusCode::kOk && http_status_for(c) == http_status) return c;
  }
  return StatusCode::kInternal;
}

std::string valid_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    auto c = static_cast<unsigned char>(text[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    bool ok = len > 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(text[i + k]) & 0xc0) == 0x80;
    if (ok && len > 1) {
      // Overlong forms, surrogates and code points past U+10FFFF are invalid too.
      uint32_t cp = c & (0x7f >> len);
      for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3f);
      static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
      ok = cp >= kMin[len] && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
    }
    if (ok) {
      out.append(text.substr(i, len));
      i += len;
    } else {
      out += "\xef\xbf\xbd";
      ++i;
    }
  }
  return out;
}

}  // namespace loom::transport
