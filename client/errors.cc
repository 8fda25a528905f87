#include "client/errors.h"

#include <algorithm>
#include <cctype>

#include "transport/wire.h"

namespace loom::client {

RemoteError::RemoteError(StatusCode code, const std::string& job_id, const std::string& remote_message)
    : ExecutionError(code, "job " + job_id + " failed on the server: " + status_code_name(code) + ": " +
                               remote_message),
      job_id_(job_id),
      remote_message_(remote_message) {}

StatusCode parse_status_code(std::string_view name) {
  return transport::parse_status_code(name).value_or(StatusCode::kInternal);
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

}  // namespace

void throw_status(const Status& status) {
  if (status.ok()) throw LoomError(StatusCode::kInternal, "throw_status called with an ok Status");
  throw_code(status.code(), status.message());
}

void throw_http_error(const HttpErrorAnswer& answer) {
  StatusCode code = transport::status_code_for_http(answer.http_status);
  if (code == StatusCode::kOk) code = StatusCode::kInternal;  // a 2xx handed over as an error
  std::string server_message;
  const std::optional<Status> body = transport::parse_error_body(answer.body);
  const bool from_json = body.has_value();
  if (body) {
    code = body->code();
    server_message = body->message();
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
