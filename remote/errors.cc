#include "remote/errors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

namespace loom::client {

RemoteError::RemoteError(StatusCode code, const std::string& job_id, const std::string& remote_message)
    : ExecutionError(code, "job " + job_id + " failed on the server: " + status_code_name(code) + ": " +
                               remote_message),
      job_id_(job_id),
      remote_message_(remote_message) {}

StatusCode parse_status_code(std::string_view name) {
  for (StatusCode c : {StatusCode::kOk, StatusCode::kInvalidArgument, StatusCode::kNotFound,
                       StatusCode::kFailedPrecondition, StatusCode::kResourceExhausted, StatusCode::kUnavailable,
                       StatusCode::kDeadlineExceeded, StatusCode::kCancelled, StatusCode::kUnauthenticated,
                       StatusCode::kPermissionDenied, StatusCode::kInternal}) {
    if (name == status_code_name(c)) return c;
  }
  return StatusCode::kInternal;
}

namespace {

[[noreturn]] void throw_code(StatusCode code, const std::string& message, int64_t retry_after = -1) {
  switch (code) {
    case StatusCode::kInvalidArgument: throw ValidationError(message);
    case StatusCode::kNotFound: throw NotFoundError(message);
    case StatusCode::kResourceExhausted: throw QuotaError(message, retry_after);
    case StatusCode::kUnavailable: throw ConnectionError(message);
    case StatusCode::kDeadlineExceeded: throw TimeoutError(message);
    case StatusCode::kCancelled: throw CancelledError(message);
    case StatusCode::kUnauthenticated: throw AuthError(message, code);
    case StatusCode::kPermissionDenied: throw AuthError(message, code);
    case StatusCode::kFailedPrecondition:
    case StatusCode::kInternal:
    case StatusCode::kOk: break;
  }
  throw LoomError(code == StatusCode::kOk ? StatusCode::kInternal : code, message);
}

bool mentions_protocol_version(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text.find("x-loom-protocol") != std::string::npos || text.find("protocol version") != std::string::npos;
}

StatusCode code_for_http_status(int http_status) {
  switch (http_status) {
    case 400: return StatusCode::kInvalidArgument;
    case 401: return StatusCode::kUnauthenticated;
    case 403: return StatusCode::kPermissionDenied;
    case 404: return StatusCode::kNotFound;
    case 408: return StatusCode::kDeadlineExceeded;
    case 409: return StatusCode::kFailedPrecondition;
    case 413: return StatusCode::kResourceExhausted;
    case 429: return StatusCode::kResourceExhausted;
    case 502: case 503: case 504: return StatusCode::kUnavailable;
    default: return StatusCode::kInternal;
  }
}

}  // namespace

void throw_status(const Status& status) {
  if (status.ok()) throw LoomError(StatusCode::kInternal, "throw_status called with an ok Status");
  throw_code(status.code(), status.message());
}

void throw_http_error(const HttpErrorAnswer& answer) {
  StatusCode code = code_for_http_status(answer.http_status);
  std::string server_message;
  bool from_json = false;
  auto body = nlohmann::json::parse(answer.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_object() && body.contains("error") && body["error"].is_object()) {
    const auto& e = body["error"];
    if (e.contains("code") && e["code"].is_string()) {
      code = parse_status_code(e["code"].get<std::string>());
      from_json = true;
    }
    if (e.contains("message") && e["message"].is_string()) server_message = e["message"].get<std::string>();
  }
  if (server_message.empty()) {
    // Not loom's JSON (a proxy in between, an empty body): keep a short, printable excerpt.
    std::string excerpt = answer.body.substr(0, 200);
    for (char& c : excerpt) {
      if (!std::isprint(static_cast<unsigned char>(c))) c = ' ';
    }
    server_message = "HTTP " + std::to_string(answer.http_status) + (excerpt.empty() ? "" : ": " + excerpt);
  }
  std::string message = answer.context.empty() ? server_message : answer.context + ": " + server_message;

  if (answer.http_status == 400 && mentions_protocol_version(server_message)) throw VersionError(message);
  if (!from_json && code == StatusCode::kInternal && answer.http_status >= 500) {
    message += " (server error: retry later, or report it if it persists)";
  }
  int64_t retry_after = -1;
  if (!answer.retry_after.empty()) {
    try {
      retry_after = std::stoll(answer.retry_after);
    } catch (const std::exception&) {
      retry_after = -1;  // an HTTP date instead of seconds: not worth parsing
    }
    if (retry_after >= 0) message += " (retry after " + std::to_string(retry_after) + " s)";
  }
  throw_code(code, message, retry_after);
}

}  // namespace loom::client
