#include "client/event_stream.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "transport/request.h"
#include "transport/stream_frames.h"
#include "transport/websocket.h"

namespace loom::client {

struct EventStream::Impl {
  explicit Impl(EventStreamOptions o)
      : options(std::move(o)), ws(socket_options(options)), last_received_seq(options.after_seq) {}

  static transport::WebSocketClient::Options socket_options(const EventStreamOptions& o) {
    transport::WebSocketClient::Options w;
    w.handshake_timeout = o.handshake_timeout;
    w.max_message_bytes = o.max_message_bytes;
    w.tls = o.endpoint.tls;
    w.ca_file = o.ca_file;
    w.host = o.endpoint.host;
    return w;
  }

  EventStreamOptions options;

  // Shared between the caller's thread and the socket thread: under mu.
  mutable std::mutex mu;
  std::condition_variable cv;
  std::deque<nlohmann::json> queue;
  bool ended = false;
  Status end_status;
  uint64_t last_delivered_seq = 0;  // caller's thread only
  int reconnect_count = 0;

  // Socket thread only (after start()).
  transport::WebSocketClient ws;
  uint64_t last_received_seq;
  int attempts_since_event = 0;
  bool saw_terminal = false;
  bool stopping = false;
  bool started = false;

  std::string uri() const {
    bool v6 = options.endpoint.host.find(':') != std::string::npos;
    std::string host = v6 ? "[" + options.endpoint.host + "]" : options.endpoint.host;
    return std::string(options.endpoint.tls ? "wss://" : "ws://") + host + ":" +
           std::to_string(options.endpoint.port) + "/v1/jobs/" + options.job_id +
           "/events?after=" + std::to_string(last_received_seq);
  }

  void finish(Status status) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (ended) return;
      ended = true;
      end_status = std::move(status);
    }
    cv.notify_all();
  }

  void push(nlohmann::json event) {
    {
      std::lock_guard<std::mutex> lock(mu);
      queue.push_back(std::move(event));
    }
    cv.notify_all();
  }

  // STREAM requests and REJECTED answers are live only: no seq, no replay
  // (a pending STREAM is sent again on reattach).
  static bool is_unsequenced(const nlohmann::json& event) {
    if (!event.is_object() || event.contains("seq")) return false;
    const transport::EventType type = transport::event_type_of(event);
    return type == transport::EventType::kStream || type == transport::EventType::kRejected;
  }

  // --- socket thread ---

  void open() {
    if (stopping) return;
    transport::WebSocketClient::Handlers h;
    h.on_message = [this](const std::string& payload, bool binary) {
      if (binary) {
        on_binary(payload);
      } else {
        on_message(payload);
      }
    };
    h.on_error = [this](const std::string& what) {
      finish(Status(StatusCode::kInternal, "handling an event: " + what));
    };
    h.on_fail = [this](int http_status, const std::string& reason) { on_fail(http_status, reason); };
    h.on_close = [this](int) { on_close(); };
    Status s = ws.connect(uri(),
                          {{"Authorization", "Bearer " + options.api_key},
                           {transport::kProtocolHeader, std::to_string(transport::kProtocolVersion)}},
                          std::move(h));
    if (!s.ok()) finish(s);
  }

  void on_message(const std::string& payload) {
    auto event = nlohmann::json::parse(payload, nullptr, /*allow_exceptions=*/false);
    if (is_unsequenced(event)) {
      attempts_since_event = 0;
      push(std::move(event));
      return;
    }
    if (!event.is_object() || !event.contains("seq") || !event["seq"].is_number_unsigned() ||
        !event.contains("type") || !event["type"].is_string()) {
      finish(Status(StatusCode::kInternal, "job " + options.job_id +
                                               ": the server sent an event frame that is not a JSON event with "
                                               "\"seq\" and \"type\": " + payload.substr(0, 200)));
      close_socket();
      return;
    }
    uint64_t seq = event["seq"].get<uint64_t>();
    if (seq <= last_received_seq) return;  // replayed after a reconnect: already delivered
    last_received_seq = seq;
    attempts_since_event = 0;
    bool terminal = transport::is_terminal(transport::event_type_of(event));
    push(std::move(event));
    if (terminal) {
      saw_terminal = true;
      finish(Status());
    }
  }

  // Binary frames carry a STREAM request: a JSON header, then tensor bytes
  // (transport/stream_frames.h), handed over as the header with "tensors".
  void on_binary(const std::string& payload) {
    auto parts = transport::split_binary_frame(payload);
    if (!parts.ok() || !is_unsequenced(parts->first)) {
      finish(Status(StatusCode::kInternal, "job " + options.job_id + ": the server sent a binary frame that is not a "
                                               "STREAM request" + (parts.ok() ? "" : ": " + parts.status().message())));
      close_socket();
      return;
    }
    nlohmann::json event = std::move(parts->first);
    event["tensors"] = nlohmann::json::binary(std::vector<uint8_t>(parts->second.begin(), parts->second.end()));
    attempts_since_event = 0;
    push(std::move(event));
  }

  bool is_ended() {
    std::lock_guard<std::mutex> lock(mu);
    return ended;
  }

  void on_fail(int http_status, const std::string& reason) {
    if (stopping || saw_terminal || is_ended()) return;
    std::string where = "event stream of job " + options.job_id + " at " + uri();
    switch (http_status) {
      case 401:
        finish(Status(StatusCode::kUnauthenticated, where + ": the server refused the API key (set LOOM_API_KEY)"));
        return;
      case 403:
        finish(Status(StatusCode::kPermissionDenied, where + ": permission denied"));
        return;
      case 404:
        finish(Status(StatusCode::kNotFound, where + ": no such job for this key"));
        return;
      case 400:
        finish(Status(StatusCode::kFailedPrecondition,
                      where + ": handshake refused with 400 (protocol version " +
                          std::to_string(transport::kProtocolVersion) + " not accepted?)"));
        return;
      default: break;
    }
    retry(where + ": " + (http_status != 0 ? "HTTP " + std::to_string(http_status) : reason));
  }

  void on_close() {
    if (stopping || saw_terminal || is_ended()) return;
    retry("event stream of job " + options.job_id + " closed before the job ended");
  }

  void retry(const std::string& why) {
    if (attempts_since_event >= options.max_reconnects) {
      finish(Status(StatusCode::kUnavailable, why + "; gave up after " + std::to_string(options.max_reconnects) +
                                                  " reconnection attempts"));
      return;
    }
    auto backoff = options.initial_backoff * (1LL << std::min(attempts_since_event, 20));
    backoff = std::min<std::chrono::milliseconds>(backoff, options.max_backoff);
    ++attempts_since_event;
    {
      std::lock_guard<std::mutex> lock(mu);
      ++reconnect_count;
    }
    ws.set_timer(backoff, [this] {
      if (stopping) return;
      try {
        open();
      } catch (const std::exception& e) {
        finish(Status(StatusCode::kInternal, std::string("reopening the event stream: ") + e.what()));
      }
    });
  }

  void close_socket() { ws.close(transport::CloseCode::kGoingAway, "client done"); }
};

EventStream::EventStream(EventStreamOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  impl_->last_delivered_seq = impl_->options.after_seq;
}

EventStream::~EventStream() { stop(); }

void EventStream::start() {
  Impl& s = *impl_;
  if (s.started || s.ended) return;
  Status up = s.ws.start();
  if (!up.ok()) {
    s.finish(up);
    return;
  }
  s.started = true;
  // open() runs on the socket thread like every other step.
  s.ws.post([&s] {
    try {
      s.open();
    } catch (const std::exception& e) {
      s.finish(Status(StatusCode::kInternal, std::string("opening the event stream: ") + e.what()));
    }
  });
}

EventStream::Next EventStream::next(nlohmann::json& event, std::chrono::milliseconds timeout) {
  Impl& s = *impl_;
  std::unique_lock<std::mutex> lock(s.mu);
  s.cv.wait_for(lock, timeout, [&s] { return !s.queue.empty() || s.ended; });
  if (!s.queue.empty()) {
    event = std::move(s.queue.front());
    s.queue.pop_front();
    if (event.contains("seq")) s.last_delivered_seq = event["seq"].get<uint64_t>();
    return Next::kEvent;
  }
  return s.ended ? Next::kEnded : Next::kTimeout;
}

void EventStream::send(std::string frame, bool binary) {
  Impl& s = *impl_;
  if (!s.started) return;
  s.ws.post([&s, binary, frame = std::move(frame)] {
    // Lost with the socket when it is down: the server resends its request on reattach.
    if (!s.stopping) (void)s.ws.send(frame, binary);
  });
}

Status EventStream::end_status() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->end_status;
}

uint64_t EventStream::last_seq() const { return impl_->last_delivered_seq; }

int EventStream::reconnects() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->reconnect_count;
}

void EventStream::stop() {
  Impl& s = *impl_;
  if (!s.started) return;
  s.started = false;
  s.ws.post([&s] { s.stopping = true; });
  s.ws.stop();
  {
    std::lock_guard<std::mutex> lock(s.mu);
    if (!s.ended) {
      s.ended = true;
      s.end_status = Status(StatusCode::kCancelled, "event stream stopped by the client");
    }
  }
}

}  // namespace loom::client
