// Minimal wire-level peers of loom-server for the integration tests, kept
// apart from loom::client so the tests see exactly what goes on the wire:
//   http_request()       one HTTP/1.1 exchange on a fresh connection (transport's HttpClient);
//   follow_job_events()  one WebSocket session on /v1/jobs/ID/events (transport's WebSocketClient);
//   WebhookReceiver      an HTTP server on 127.0.0.1:0 that records webhook POSTs.
// Every wait is bounded, so a hung server fails a test instead of hanging it.
// Thread safety: the functions are self-contained; a WebhookReceiver serves on
// its own thread and its accessors lock.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "transport/http_client.h"
#include "transport/websocket.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace loom::testing {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpResponse {
  int status = 0;                              // 0: no answer (see error)
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;
  std::string error;  // transport failure, if any

  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
  // The body as JSON; a discarded (is_discarded()) value when it is not JSON.
  nlohmann::json json() const { return nlohmann::json::parse(body, nullptr, false); }
  // For assertion messages.
  std::string describe() const {
    return "HTTP " + std::to_string(status) + (error.empty() ? "" : " (" + error + ")") + ": " + body.substr(0, 2000);
  }
};

inline std::string lowercase(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// One request to 127.0.0.1:port on a fresh connection, through the
// project's one HTTP client (transport/http_client.h). If writing the body
// fails (a server that refuses a large body early), the answer is still read.
inline HttpResponse http_request(uint16_t port, const std::string& method, const std::string& target,
                                 const Headers& headers = {}, const std::string& body = "",
                                 std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  transport::HttpClientOptions options;
  options.connect_timeout = timeout;
  options.io_timeout = timeout;
  options.max_body_bytes = 1ull << 30;
  transport::HttpClient client(transport::HttpEndpoint{"127.0.0.1", port}, options);
  transport::HttpRequest req;
  req.method = method;
  req.target = target;
  req.headers = headers;
  req.body = body;
  HttpResponse out;
  try {
    transport::HttpResponse res = client.request(req);
    out.status = res.status;
    for (const auto& [k, v] : res.headers) out.headers[lowercase(k)] = v;
    out.body = std::move(res.body);
  } catch (const transport::HttpError& e) {
    out.error = e.status().message();
  }
  return out;
}

// Authorization and protocol headers for `key`.
inline Headers loom_headers(const std::string& key) {
  return {{"Authorization", "Bearer " + key}, {"X-Loom-Protocol", "1"}};
}

struct EventStreamOutcome {
  int handshake_status = 0;            // 101 when the socket opened, else the refusal's status
  std::vector<nlohmann::json> events;  // in arrival order
  bool closed = false;                 // the session ended with a close handshake
  int close_code = 0;                  // the code the server sent
  bool timed_out = false;
  std::string error;
};

// Follows ws://127.0.0.1:port/v1/jobs/JOB/events?after=AFTER until the server
// closes the socket or `timeout` passes, through transport's WebSocketClient.
inline EventStreamOutcome follow_job_events(uint16_t port, const std::string& key, const std::string& job_id,
                                            uint64_t after,
                                            std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  EventStreamOutcome out;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  auto end = [&] {
    std::lock_guard<std::mutex> lock(mu);
    done = true;
    cv.notify_all();
  };
  transport::WebSocketClient client({});
  loom::Status up = client.start();
  if (!up.ok()) {
    out.error = up.message();
    return out;
  }
  const std::string uri = "ws://127.0.0.1:" + std::to_string(port) + "/v1/jobs/" + job_id +
                          "/events?after=" + std::to_string(after);
  client.post([&] {
    transport::WebSocketClient::Handlers h;
    h.on_open = [&] {
      std::lock_guard<std::mutex> lock(mu);
      out.handshake_status = 101;
    };
    h.on_message = [&](const std::string& payload, bool) {
      std::lock_guard<std::mutex> lock(mu);
      out.events.push_back(nlohmann::json::parse(payload, nullptr, false));
    };
    h.on_fail = [&](int status, const std::string& reason) {
      {
        std::lock_guard<std::mutex> lock(mu);
        out.handshake_status = status;
        out.error = "handshake failed: " + reason;
      }
      end();
    };
    h.on_close = [&](int code) {
      {
        std::lock_guard<std::mutex> lock(mu);
        out.closed = true;
        out.close_code = code;
      }
      end();
    };
    std::vector<std::pair<std::string, std::string>> headers;
    for (const auto& kv : loom_headers(key)) headers.push_back(kv);
    loom::Status s = client.connect(uri, headers, std::move(h));
    if (!s.ok()) {
      {
        std::lock_guard<std::mutex> lock(mu);
        out.error = s.message();
      }
      end();
    }
  });
  {
    std::unique_lock<std::mutex> lock(mu);
    if (!cv.wait_for(lock, timeout, [&] { return done; })) out.timed_out = true;
  }
  client.stop();
  return out;
}

// An HTTP server on 127.0.0.1:0 (its own thread) recording every request.
// The n-th request is answered with statuses[n] (the last one repeats); a 3xx
// answer carries `Location: location`.
class WebhookReceiver {
 public:
  struct Request {
    std::string method, target, body;
    std::map<std::string, std::string> headers;  // names lowercased
    std::chrono::steady_clock::time_point at;    // when it arrived
  };

  // `port` 0 picks a free one; another is taken as is (a receiver that comes back).
  explicit WebhookReceiver(std::vector<int> statuses = {200}, std::string location = "", uint16_t port = 0)
      : statuses_(std::move(statuses)), location_(std::move(location)), acceptor_(io_) {
    using tcp = boost::asio::ip::tcp;
    tcp::endpoint ep(boost::asio::ip::address_v4::loopback(), port);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~WebhookReceiver() {
    io_.stop();
    thread_.join();
  }
  WebhookReceiver(const WebhookReceiver&) = delete;
  WebhookReceiver& operator=(const WebhookReceiver&) = delete;

  uint16_t port() const { return port_; }
  std::string url(const std::string& path = "/hook") const { return "http://127.0.0.1:" + std::to_string(port_) + path; }

  std::vector<Request> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  // Waits until at least `n` requests arrived; false on timeout.
  bool wait_for(size_t n, std::chrono::milliseconds timeout) const {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return requests_.size() >= n; });
  }

 private:
  struct Session : std::enable_shared_from_this<Session> {
    WebhookReceiver* owner;
    boost::beast::tcp_stream stream;
    boost::beast::flat_buffer buffer;
    boost::beast::http::request<boost::beast::http::string_body> req;
    boost::beast::http::response<boost::beast::http::string_body> res;
    Session(WebhookReceiver* o, boost::asio::ip::tcp::socket s) : owner(o), stream(std::move(s)) {}

    void start() {
      stream.expires_after(std::chrono::seconds(10));
      boost::beast::http::async_read(stream, buffer, req, [self = shared_from_this()](boost::beast::error_code ec, size_t) {
        if (ec) return;
        self->answer();
      });
    }
    void answer() {
      int status = owner->record(req);
      res = {static_cast<boost::beast::http::status>(status), req.version()};
      if (status >= 300 && status < 400) res.set(boost::beast::http::field::location, owner->location_);
      res.keep_alive(false);
      res.body() = status < 300 ? "thanks" : "no";
      res.prepare_payload();
      boost::beast::http::async_write(stream, res, [self = shared_from_this()](boost::beast::error_code, size_t) {
        boost::beast::error_code ec;
        self->stream.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
      });
    }
  };

  void accept() {
    acceptor_.async_accept([this](boost::beast::error_code ec, boost::asio::ip::tcp::socket s) {
      if (ec) return;
      std::make_shared<Session>(this, std::move(s))->start();
      accept();
    });
  }

  // Stores the request; returns the status to answer it with.
  int record(const boost::beast::http::request<boost::beast::http::string_body>& req) {
    Request r{std::string(req.method_string()), std::string(req.target()), req.body(), {},
              std::chrono::steady_clock::now()};
    for (const auto& f : req) r.headers[lowercase(std::string(f.name_string()))] = std::string(f.value());
    int status;
    {
      std::lock_guard<std::mutex> lock(mu_);
      status = statuses_[std::min(requests_.size(), statuses_.size() - 1)];
      requests_.push_back(std::move(r));
    }
    cv_.notify_all();
    return status;
  }

  std::vector<int> statuses_;
  std::string location_;
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::thread thread_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<Request> requests_;
};

}  // namespace loom::testing
