// The client's typed exceptions. Each class says what the caller should do:
//
//   ConnectionError  the server cannot be reached (or LOOM_HOST is unset):
//                    check the address, retry later            UNAVAILABLE
//   AuthError        no, unknown or refused API key             UNAUTHENTICATED /
//                                                               PERMISSION_DENIED
//   VersionError     client and server speak different protocol
//                    versions: upgrade one of them              FAILED_PRECONDITION
//   ValidationError  the request is wrong (a module path the
//                    model lacks, a bad argument): fix it        INVALID_ARGUMENT
//   QuotaError       a limit was hit (queue full: retry after
//                    retry_after(); body too large)             RESOURCE_EXHAUSTED
//   NotFoundError    no such job or model (a job of another
//                    key reads as not found)                    NOT_FOUND
//   ExecutionError   the graph failed while running (local or
//                    remote); RemoteError when it ran remotely,
//                    carrying the server's code and message
//   TimeoutError     a client-side wait ran past its limit      DEADLINE_EXCEEDED
//   CancelledError   the job was cancelled                      CANCELLED
//
// Anything else (a server answer that makes no sense, a result whose
// checksum does not match) is a plain LoomError with code INTERNAL.
// Every exception carries a loom::StatusCode and a message with the values
// involved. Thread safety: plain values.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "graph/status.h"

namespace loom::client {

class LoomError : public std::runtime_error {
 public:
  LoomError(StatusCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  StatusCode code() const { return code_; }
  Status status() const { return Status(code_, what()); }

 private:
  StatusCode code_;
};

class ConnectionError : public LoomError {
 public:
  explicit ConnectionError(const std::string& m) : LoomError(StatusCode::kUnavailable, m) {}
};

class AuthError : public LoomError {
 public:
  explicit AuthError(const std::string& m, StatusCode code = StatusCode::kUnauthenticated) : LoomError(code, m) {}
};

class VersionError : public LoomError {
 public:
  explicit VersionError(const std::string& m) : LoomError(StatusCode::kFailedPrecondition, m) {}
};

class ValidationError : public LoomError {
 public:
  explicit ValidationError(const std::string& m, StatusCode code = StatusCode::kInvalidArgument)
      : LoomError(code, m) {}
};

class QuotaError : public LoomError {
 public:
  explicit QuotaError(const std::string& m, int64_t retry_after_seconds = -1)
      : LoomError(StatusCode::kResourceExhausted, m), retry_after_(retry_after_seconds) {}
  // Seconds the server asked to wait (429 Retry-After); -1 when it did not say.
  int64_t retry_after() const { return retry_after_; }

 private:
  int64_t retry_after_;
};

class NotFoundError : public LoomError {
 public:
  explicit NotFoundError(const std::string& m) : LoomError(StatusCode::kNotFound, m) {}
};

// The graph failed while running. code() is the run's own code (e.g.
// INVALID_ARGUMENT for a shape error inside ATen, RESOURCE_EXHAUSTED for a
// run limit).
class ExecutionError : public LoomError {
 public:
  ExecutionError(StatusCode code, const std::string& m) : LoomError(code, m) {}
};

// The job failed on the server. remote_message() is the server's message
// as sent; what() adds the job ID.
class RemoteError : public ExecutionError {
 public:
  RemoteError(StatusCode code, const std::string& job_id, const std::string& remote_message);
  const std::string& job_id() const { return job_id_; }
  const std::string& remote_message() const { return remote_message_; }

 private:
  std::string job_id_;
  std::string remote_message_;
};

class TimeoutError : public LoomError {
 public:
  explicit TimeoutError(const std::string& m) : LoomError(StatusCode::kDeadlineExceeded, m) {}
};

class CancelledError : public LoomError {
 public:
  explicit CancelledError(const std::string& m) : LoomError(StatusCode::kCancelled, m) {}
};

// "INVALID_ARGUMENT" -> kInvalidArgument; unknown names give kInternal.
StatusCode parse_status_code(std::string_view name);

// Throws the exception that matches a non-ok Status (by code: INVALID_ARGUMENT
// -> ValidationError, NOT_FOUND -> NotFoundError, ...). Used for errors the
// client finds itself, not for a job's run failure (see ExecutionError).
[[noreturn]] void throw_status(const Status& status);

// A non-2xx HTTP answer, as received.
struct HttpErrorAnswer {
  int http_status = 0;
  std::string body;         // JSON {"error": {"code", "message"}} per PROTOCOL.md, or anything
  std::string retry_after;  // the Retry-After header ("" when absent)
  std::string context;      // what was being done: "GET /v1/jobs/ab12"
};

// Throws the typed exception for an HTTP error answer. The JSON body's code
// decides where it is present; the HTTP status decides otherwise (a proxy's
// HTML error page, an empty body). 400 answers about the protocol version
// become VersionError. The message keeps the server's text and the context.
[[noreturn]] void throw_http_error(const HttpErrorAnswer& answer);

}  // namespace loom::client
