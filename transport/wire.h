// The wire vocabulary of the loom remote protocol (transport/PROTOCOL.md),
// defined once for both ends: the protocol version and its header, job
// states, event types and which of them end a job, the JSON error body, and
// the StatusCode <-> HTTP status table. The server and the client both call
// these; neither spells a state name, an event type or a status number of
// its own.
// Thread safety: constants and pure functions.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "graph/status.h"

namespace loom::transport {

// The one protocol version this build speaks; there is no negotiation.
constexpr uint32_t kProtocolVersion = 1;
// Optional on requests: absent means "the server's current version" (so
// curl needs only the key); present and different is refused.
constexpr const char* kProtocolHeader = "X-Loom-Protocol";

// OK when `header` (the X-Loom-Protocol value, nullopt when absent) allows
// this version; FAILED_PRECONDITION naming both versions otherwise. Any
// bytes are accepted as input (quoted escaped).
Status check_protocol_header(std::optional<std::string_view> header);

// RECEIVED -> QUEUED -> DISPATCHED [-> LOADING] -> RUNNING -> COMPLETED | ERROR | CANCELLED.
// LOADING: the job's model was not on its device (its tier) and is being
// loaded for it; its STATUS events carry "progress" (0..1).
// kUnknown is what a peer's name this build does not know parses to (a newer
// server may add states); it is never stored or sent.
enum class JobState { kReceived, kQueued, kDispatched, kLoading, kRunning, kCompleted, kError, kCancelled, kUnknown };
const char* job_state_name(JobState state);        // "QUEUED"; "UNKNOWN" for kUnknown
JobState parse_job_state(std::string_view name);   // exact names; kUnknown otherwise
bool is_terminal(JobState state);                  // COMPLETED, ERROR, CANCELLED

// The "type" of an event on the job's WebSocket. STATUS events carry a
// non-terminal "state"; the terminal states are event types of their own.
enum class EventType {
  kStatus,       // {"type":"STATUS","state":"QUEUED",...}
  kLog,          // a LOG node's text and value summary
  kCompleted,    // terminal
  kError,        // terminal
  kCancelled,    // terminal
  kStream,       // server -> client request (binary frame, no seq)
  kStreamReply,  // client -> server answer
  kRejected,     // server -> client: a frame it could not place (no seq)
  kToken,        // a generation step: {"step", "tokens" (one per row), "elapsed_ms"}
  kUnknown,
};
const char* event_type_name(EventType type);
EventType parse_event_type(std::string_view name);
bool is_terminal(EventType type);
// The event type of a terminal job state (kUnknown for a non-terminal one).
EventType terminal_event_type(JobState state);
// The type of a JSON event as text; kUnknown when it is not an object with
// a string "type" (any JSON value, of any shape, is a valid argument).
EventType event_type_of(const nlohmann::json& event);
EventType event_type_of_text(std::string_view event_json);

// The body of every non-2xx answer: {"error":{"code":"NOT_FOUND","message":"..."}}.
// The message is made valid UTF-8 first, so dumping it can never throw.
nlohmann::json error_body(const Status& status);
std::string error_body_text(const Status& status);
// Reads an error body back; nullopt when `body` is not one (a proxy's page).
std::optional<Status> parse_error_body(std::string_view body);

// "INVALID_ARGUMENT" -> kInvalidArgument; nullopt for a name that is none.
std::optional<StatusCode> parse_status_code(std::string_view name);

// The HTTP status a code is answered with. One table for both ends:
//   INVALID_ARGUMENT, FAILED_PRECONDITION 400  UNAUTHENTICATED 401
//   PERMISSION_DENIED 403   NOT_FOUND 404      CANCELLED 409
//   RESOURCE_EXHAUSTED 413  INTERNAL 500       UNAVAILABLE 503
//   DEADLINE_EXCEEDED 504
// (A limit a retry soon may pass, a full queue, is sent as 429 with
// Retry-After: the HTTP layer picks it, because admission says so.)
int http_status_for(StatusCode code);
// The reverse, for answers without a loom error body: the code whose row
// the status is in (400 -> INVALID_ARGUMENT), 429 -> RESOURCE_EXHAUSTED,
// 502 -> UNAVAILABLE, anything else INTERNAL.
StatusCode status_code_for_http(int http_status);

// Replaces every byte sequence that is not valid UTF-8 with U+FFFD, so the
// text can go into JSON. Valid text comes back unchanged.
std::string valid_utf8(std::string_view text);

}  // namespace loom::transport
