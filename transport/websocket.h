// The WebSocket wrapper shared by both ends: loom-server's event sockets
// (WebSocketServer) and the client's event stream (WebSocketClient).
// websocketpp 0.8.2 has seen no release since 2020; it is included by
// transport/websocket.cc alone, so replacing it touches one file.
//
// Every handler a caller installs runs inside one catch: an exception from
// it is reported (the server closes that socket with 1011, a failed
// handshake check answers 500) and never reaches websocketpp or Asio.
#pragma once

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "graph/status.h"

namespace boost::asio::ssl {
class context;
}  // namespace boost::asio::ssl

namespace loom::transport {

enum class CloseCode : uint16_t {
  kNormal = 1000,
  kGoingAway = 1001,
  kPolicyViolation = 1008,
  kTooBig = 1009,
  kInternalError = 1011,
  kTryAgainLater = 1013,
};

// Accepts WebSocket connections on a port, on an io_context the caller runs
// (the server's I/O thread). Connections are named by ids, never reused.
// Thread safety: every method and every handler runs on the io_context's
// thread; other threads post to it.
class WebSocketServer {
 public:
  using ConnectionId = uint64_t;
  // The upgrade request, for the validate handler.
  struct Handshake {
    std::string resource;  // path and query: "/v1/jobs/ab12/events?after=3"
    std::function<std::string(const std::string& name)> header;  // "" when absent (or empty)
  };
  // What a refused handshake is answered with (a JSON error body).
  struct Refusal {
    int http_status = 400;
    std::string body;
  };
  struct Handlers {
    // Before the upgrade: nullopt accepts, a Refusal answers with it.
    std::function<std::optional<Refusal>(ConnectionId, const Handshake&)> validate;
    std::function<void(ConnectionId)> on_open;
    // The payload is the handler's to keep (moved out of the frame).
    std::function<void(ConnectionId, std::string payload, bool binary)> on_message;
    // Once per validated connection: closed, failed, or refused.
    std::function<void(ConnectionId)> on_close;
  };

  struct Limits {
    uint64_t max_message_bytes = 96ull << 20;  // a frame from a client; larger closes with 1009
    // Bytes queued for one connection and not yet taken by the kernel: a
    // client that stops reading is closed (1008) instead of growing the
    // server's memory without bound.
    uint64_t max_outbound_bytes = 256ull << 20;
    // Every connection is pinged this often; one that does not answer within
    // pong_timeout is dropped: a vanished client does not hold its socket,
    // subscription and buffers until TCP notices. 0: no pings. A ping
    // restarts websocketpp's pong timer, so the timeout must be shorter than
    // the interval (it is capped at half of it).
    std::chrono::milliseconds ping_interval{30000};
    std::chrono::milliseconds pong_timeout{10000};
  };

  // `tls`: serve wss:// with this context; nullptr: plain ws://.
  WebSocketServer(boost::asio::io_context& io, Handlers handlers, Limits limits,
                  std::shared_ptr<boost::asio::ssl::context> tls = nullptr);
  ~WebSocketServer();
  WebSocketServer(const WebSocketServer&) = delete;
  WebSocketServer& operator=(const WebSocketServer&) = delete;

  Status listen(const std::string& host, uint16_t port);
  uint16_t port() const;
  void stop_listening();
  // Dropped when the connection is gone (its on_close has run or will); a
  // connection whose queue would pass max_outbound_bytes is closed (1008).
  void send(ConnectionId id, std::string_view payload, bool binary);
  void close(ConnectionId id, CloseCode code, const std::string& reason);
  std::vector<ConnectionId> connections() const;

  struct Impl;  // the plain or TLS socket server (websocket.cc)

 private:
  std::shared_ptr<Impl> impl_;
};

// One client connection at a time, driven by a background thread that runs
// its own io_context. The owner starts it, then does everything else on
// that thread through post() (connect, send, close, timers).
// Thread safety: start(), post() and stop() from the owner's thread; the
// rest from the socket thread (inside post()ed work or a handler).
class WebSocketClient {
 public:
  struct Options {
    // A server that accepts TCP but never answers the handshake.
    std::chrono::milliseconds handshake_timeout{10000};
    std::chrono::milliseconds close_timeout{1000};
    uint64_t max_message_bytes = 32ull << 20;
    // wss://: the server's certificate and host name are verified against
    // the system's trust store, or against ca_file (PEM) when given.
    bool tls = false;
    std::string ca_file;
    std::string host;  // the name the certificate must carry (DNS name or IP)
  };
  struct Handlers {
    std::function<void()> on_open;
    std::function<void(const std::string& payload, bool binary)> on_message;
    // The connection or handshake failed: the HTTP status of a refusal (0
    // when there was none) and what went wrong.
    std::function<void(int http_status, const std::string& reason)> on_fail;
    // An open connection ended: the close code the server sent (0: none).
    std::function<void(int close_code)> on_close;
    // A handler threw: what it said. The socket is closed after.
    std::function<void(const std::string& what)> on_error;
  };

  explicit WebSocketClient(Options options);
  ~WebSocketClient();  // stop()s
  WebSocketClient(const WebSocketClient&) = delete;
  WebSocketClient& operator=(const WebSocketClient&) = delete;

  // INTERNAL when the event loop cannot be set up.
  Status start();
  void post(std::function<void()> work);
  // Closes the connection and joins the thread. Idempotent.
  void stop();

  // Socket thread only. Replaces any earlier connection. `uri` is
  // ws://HOST:PORT/PATH; a malformed one gives INVALID_ARGUMENT.
  Status connect(const std::string& uri, const std::vector<std::pair<std::string, std::string>>& headers,
                 Handlers handlers);
  bool is_open() const;
  // False (and nothing sent) when the connection is not open.
  bool send(std::string_view payload, bool binary);
  void close(CloseCode code, const std::string& reason);
  // Runs `work` after `delay` unless cancel_timer() or stop() comes first.
  void set_timer(std::chrono::milliseconds delay, std::function<void()> work);
  void cancel_timer();

  struct Impl;  // the plain or TLS client (websocket.cc)

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace loom::transport
