#include "remote/event_stream.h"

#include <websocketpp/client.hpp>
#include <websocketpp/config/asio_no_tls_client.hpp>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "transport/request.h"
#include "transport/stream_frames.h"

namespace loom::client {

namespace {
using WsClient = websocketpp::client<websocketpp::config::asio_client>;
}  // namespace

bool EventStream::is_terminal_type(const std::string& type) {
  return type == "COMPLETED" || type == "ERROR" || type == "CANCELLED";
}

struct EventStream::Impl {
  explicit Impl(EventStreamOptions o) : options(std::move(o)), last_received_seq(options.after_seq) {}

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
  WsClient ws;
  WsClient::connection_ptr connection;
  WsClient::timer_ptr retry_timer;
  uint64_t last_received_seq;
  int attempts_since_event = 0;
  bool saw_terminal = false;
  bool stopping = false;
  std::thread thread;
  bool started = false;

  std::string uri() const {
    bool v6 = options.endpoint.host.find(':') != std::string::npos;
    std::string host = v6 ? "[" + options.endpoint.host + "]" : options.endpoint.host;
    return "ws://" + host + ":" + std::to_string(options.endpoint.port) + "/v1/jobs/" + options.job_id +
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
    ws.stop_perpetual();
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
    if (!event.is_object() || event.contains("seq") || !event.contains("type") || !event["type"].is_string()) {
      return false;
    }
    const auto& type = event["type"].get_ref<const std::string&>();
    return type == "STREAM" || type == "REJECTED";
  }

  // --- socket thread ---

  void open() {
    if (stopping) return;
    websocketpp::lib::error_code ec;
    WsClient::connection_ptr con = ws.get_connection(uri(), ec);
    if (ec) {
      finish(Status(StatusCode::kInvalidArgument, "bad event stream address " + uri() + ": " + ec.message()));
      return;
    }
    con->append_header("Authorization", "Bearer " + options.api_key);
    con->append_header("X-Loom-Protocol", std::to_string(transport::kProtocolVersion));
    con->set_message_handler([this](websocketpp::connection_hdl, WsClient::message_ptr msg) {
      try {
        if (msg->get_opcode() == websocketpp::frame::opcode::binary) {
          on_binary(msg->get_payload());
        } else {
          on_message(msg->get_payload());
        }
      } catch (const std::exception& e) {
        finish(Status(StatusCode::kInternal, std::string("handling an event: ") + e.what()));
      }
    });
    con->set_fail_handler([this](websocketpp::connection_hdl hdl) { on_fail(hdl); });
    con->set_close_handler([this](websocketpp::connection_hdl hdl) { on_close(hdl); });
    connection = con;
    ws.connect(con);
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
    bool terminal = is_terminal_type(event["type"].get<std::string>());
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

  void on_fail(websocketpp::connection_hdl hdl) {
    if (stopping || saw_terminal || is_ended()) return;
    int http_status = 0;
    std::string reason;
    try {
      auto con = ws.get_con_from_hdl(hdl);
      http_status = static_cast<int>(con->get_response_code());
      reason = con->get_ec().message();
    } catch (const std::exception& e) {
      reason = e.what();
    }
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

  void on_close(websocketpp::connection_hdl) {
    if (stopping || saw_terminal || is_ended()) return;
    retry("event stream of job " + options.job_id + " closed before the job ended");
  }

  void retry(const std::string& why) {
    connection.reset();
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
    retry_timer = ws.set_timer(static_cast<long>(backoff.count()), [this](const websocketpp::lib::error_code& ec) {
      if (ec || stopping) return;
      try {
        open();
      } catch (const std::exception& e) {
        finish(Status(StatusCode::kInternal, std::string("reopening the event stream: ") + e.what()));
      }
    });
  }

  void close_socket() {
    if (!connection) return;
    websocketpp::lib::error_code ec;
    if (connection->get_state() == websocketpp::session::state::open) {
      connection->close(websocketpp::close::status::going_away, "client done", ec);
    } else {
      connection->terminate(ec);
    }
  }
};

EventStream::EventStream(EventStreamOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  Impl& s = *impl_;
  s.last_delivered_seq = s.options.after_seq;
  s.ws.clear_access_channels(websocketpp::log::alevel::all);
  s.ws.clear_error_channels(websocketpp::log::elevel::all);
  websocketpp::lib::error_code ec;
  s.ws.init_asio(ec);
  if (ec) {
    s.ended = true;
    s.end_status = Status(StatusCode::kInternal, "initializing the WebSocket client: " + ec.message());
  }
  s.ws.set_open_handshake_timeout(static_cast<long>(s.options.handshake_timeout.count()));
  s.ws.set_close_handshake_timeout(1000);
  s.ws.set_max_message_size(static_cast<size_t>(s.options.max_message_bytes));
}

EventStream::~EventStream() { stop(); }

void EventStream::start() {
  Impl& s = *impl_;
  if (s.started || s.ended) return;
  s.started = true;
  s.ws.start_perpetual();
  // open() runs on the socket thread like every other step.
  boost::asio::post(s.ws.get_io_service(), [&s] {
    try {
      s.open();
    } catch (const std::exception& e) {
      s.finish(Status(StatusCode::kInternal, std::string("opening the event stream: ") + e.what()));
    }
  });
  s.thread = std::thread([&s] {
    try {
      s.ws.run();
    } catch (const std::exception& e) {
      s.finish(Status(StatusCode::kInternal, std::string("event stream thread: ") + e.what()));
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
  boost::asio::post(s.ws.get_io_service(), [&s, binary, frame = std::move(frame)] {
    if (s.stopping || !s.connection || s.connection->get_state() != websocketpp::session::state::open) return;
    // Lost with the socket: the server resends its request on reattach.
    (void)s.connection->send(frame, binary ? websocketpp::frame::opcode::binary : websocketpp::frame::opcode::text);
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
  boost::asio::post(s.ws.get_io_service(), [&s] {
    s.stopping = true;
    if (s.retry_timer) s.retry_timer->cancel();
    s.close_socket();
    s.ws.stop_perpetual();
  });
  if (s.thread.joinable()) s.thread.join();
  {
    std::lock_guard<std::mutex> lock(s.mu);
    if (!s.ended) {
      s.ended = true;
      s.end_status = Status(StatusCode::kCancelled, "event stream stopped by the client");
    }
  }
}

}  // namespace loom::client
