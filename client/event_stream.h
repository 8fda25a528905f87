// Follows a job's events over WebSocket
// (ws://HOST:WEBSOCKET_PORT/v1/jobs/{id}/events?after=SEQ, transport/PROTOCOL.md).
//
// The socket runs on a background thread with its own io_context
// (websocketpp's asio client); parsed events go into a queue that the
// caller's thread drains with next(), so the caller keeps control (it
// refreshes a status line between events, enforces its own timeout).
//
// No event is lost or repeated: every event carries a sequence number; a
// socket that drops before the job's terminal event is reopened with
// `after=<last seq seen>` (the server replays what was missed), with
// exponential backoff and a bounded number of attempts; duplicates
// (seq <= last seen) are dropped. A refused handshake (bad key, foreign or
// unknown job) ends the stream at once with the matching Status. After the
// terminal event (COMPLETED, ERROR, CANCELLED) the stream ends with OK.
// STREAM requests (binary frames, delivered as their JSON header with the
// tensor bytes as a binary "tensors" value) and REJECTED answers carry no
// seq: they are handed over as they come.
//
// Thread safety: start(), next(), stop() and the accessors are called from
// one caller thread; the socket's handlers run on the stream's own thread
// and touch only the queue (under its mutex) and state posted to that
// thread. No exception escapes a handler.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "transport/http_client.h"
#include "graph/status.h"

namespace loom::client {

struct EventStreamOptions {
  transport::HttpEndpoint endpoint;  // the server's host and its websocket_port (from GET /v1/env)
  std::string api_key;
  std::string ca_file;  // for wss:// (endpoint.tls): as ClientOptions::ca_file
  std::string job_id;
  uint64_t after_seq = 0;  // events with seq <= this are not wanted
  // Reconnection after a dropped socket: attempts since the last event
  // received, and the backoff between them (doubling from initial to max).
  int max_reconnects = 8;
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{4000};
  // Opening handshake: a server that accepts TCP but never answers.
  std::chrono::milliseconds handshake_timeout{10000};
  // One frame: events are small, except COMPLETED with an inline result
  // (base64 of at most the server's --inline-max, 64 KiB by default).
  uint64_t max_message_bytes = 32ull << 20;
};

class EventStream {
 public:
  explicit EventStream(EventStreamOptions options);
  ~EventStream();  // stop()s
  EventStream(const EventStream&) = delete;
  EventStream& operator=(const EventStream&) = delete;

  // Opens the socket on the background thread.
  void start();

  enum class Next { kEvent, kTimeout, kEnded };
  // Waits at most `timeout` for the next event (in seq order). kEnded once
  // the queue is drained and the stream is over: see end_status().
  Next next(nlohmann::json& event, std::chrono::milliseconds timeout);

  // OK after the terminal event; otherwise why the stream gave up:
  // UNAUTHENTICATED / NOT_FOUND (handshake refused), FAILED_PRECONDITION
  // (protocol version), UNAVAILABLE (reconnects exhausted), INTERNAL
  // (a frame that is not a JSON event).
  Status end_status() const;
  uint64_t last_seq() const;  // the highest seq handed to next()
  int reconnects() const;     // socket reopenings so far

  // Sends a frame (a STREAM_REPLY: binary, or JSON text) on the open socket. A frame sent
  // while the socket is down is dropped: the server sends its pending
  // STREAM again on reattach, and the caller answers it again.
  void send(std::string frame, bool binary);

  // Closes the socket and joins the thread. Idempotent.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace loom::client
