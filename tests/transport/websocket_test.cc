// transport's WebSocket wrapper, both ends on loopback: frames both ways,
// refusals with their status, and handlers that throw contained.
#include "transport/websocket.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "transport/wire.h"

namespace loom::transport {
namespace {

using namespace std::chrono_literals;

// A WebSocketServer on 127.0.0.1:0 run by its own thread; each text frame
// is echoed, "throw" makes the handler throw.
class EchoServer {
 public:
  EchoServer() {
    WebSocketServer::Handlers h;
    h.validate = [](WebSocketServer::ConnectionId, const WebSocketServer::Handshake& hs)
        -> std::optional<WebSocketServer::Refusal> {
      if (hs.resource == "/boom") throw std::runtime_error("validate exploded");
      if (hs.resource != "/echo") return WebSocketServer::Refusal{404, error_body_text(not_found("no " + hs.resource))};
      if (hs.header("X-Token") != "t") return WebSocketServer::Refusal{401, error_body_text(Status(StatusCode::kUnauthenticated, "token"))};
      return std::nullopt;
    };
    h.on_message = [this](WebSocketServer::ConnectionId id, const std::string& payload, bool binary) {
      if (payload == "throw") throw std::runtime_error("handler exploded");
      server_->send(id, "echo:" + payload, binary);
    };
    server_ = std::make_unique<WebSocketServer>(io_, std::move(h), 1 << 20);
    EXPECT_TRUE(server_->listen("127.0.0.1", 0).ok());
    guard_.emplace(io_.get_executor());
    thread_ = std::thread([this] { io_.run(); });
  }
  ~EchoServer() {
    boost::asio::post(io_, [this] { server_->stop_listening(); });
    guard_.reset();
    io_.stop();
    thread_.join();
  }
  uint16_t port() const { return server_->port(); }

 private:
  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guard_;
  std::unique_ptr<WebSocketServer> server_;
  std::thread thread_;
};

// One client session: what it saw, waited for with a bound.
struct Seen {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<std::string, bool>> messages;
  int fail_status = -1;
  int close_code = -1;
  bool opened = false;

  template <class Pred>
  bool wait(Pred pred) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, 10s, pred);
  }
};

WebSocketClient::Handlers record(Seen& seen) {
  WebSocketClient::Handlers h;
  auto update = [&seen](auto fn) {
    std::lock_guard<std::mutex> lock(seen.mu);
    fn();
    seen.cv.notify_all();
  };
  h.on_open = [&seen, update] { update([&] { seen.opened = true; }); };
  h.on_message = [&seen, update](const std::string& p, bool b) { update([&] { seen.messages.emplace_back(p, b); }); };
  h.on_fail = [&seen, update](int status, const std::string&) { update([&] { seen.fail_status = status; }); };
  h.on_close = [&seen, update](int code) { update([&] { seen.close_code = code; }); };
  return h;
}

std::string uri(uint16_t port, const std::string& path) { return "ws://127.0.0.1:" + std::to_string(port) + path; }

TEST(WebSocket, CarriesTextAndBinaryFramesBothWays) {
  EchoServer server;
  WebSocketClient client({});
  ASSERT_TRUE(client.start().ok());
  Seen seen;
  client.post([&] { ASSERT_TRUE(client.connect(uri(server.port(), "/echo"), {{"X-Token", "t"}}, record(seen)).ok()); });
  ASSERT_TRUE(seen.wait([&] { return seen.opened; }));
  client.post([&] {
    EXPECT_TRUE(client.send("hello", false));
    EXPECT_TRUE(client.send(std::string("\x00\x01\xff", 3), true));
  });
  ASSERT_TRUE(seen.wait([&] { return seen.messages.size() == 2; }));
  EXPECT_EQ(seen.messages[0], std::make_pair(std::string("echo:hello"), false));
  EXPECT_EQ(seen.messages[1], std::make_pair(std::string("echo:") + std::string("\x00\x01\xff", 3), true));
  client.stop();
}

TEST(WebSocket, RefusedHandshakesCarryTheirStatus) {
  EchoServer server;
  for (auto [path, token, status] : {std::tuple{"/nowhere", "t", 404}, std::tuple{"/echo", "wrong", 401},
                                     std::tuple{"/boom", "t", 500}}) {
    WebSocketClient client({});
    ASSERT_TRUE(client.start().ok());
    Seen seen;
    client.post([&] { (void)client.connect(uri(server.port(), path), {{"X-Token", token}}, record(seen)); });
    ASSERT_TRUE(seen.wait([&] { return seen.fail_status >= 0; })) << path;
    EXPECT_EQ(seen.fail_status, status) << path;
    EXPECT_FALSE(seen.opened);
    client.stop();
  }
}

TEST(WebSocket, AThrowingHandlerClosesItsSocketWith1011AndTheServerGoesOn) {
  EchoServer server;
  WebSocketClient client({});
  ASSERT_TRUE(client.start().ok());
  Seen seen;
  client.post([&] { (void)client.connect(uri(server.port(), "/echo"), {{"X-Token", "t"}}, record(seen)); });
  ASSERT_TRUE(seen.wait([&] { return seen.opened; }));
  client.post([&] { client.send("throw", false); });
  ASSERT_TRUE(seen.wait([&] { return seen.close_code >= 0; }));
  EXPECT_EQ(seen.close_code, 1011);
  client.stop();

  WebSocketClient again({});
  ASSERT_TRUE(again.start().ok());
  Seen seen2;
  again.post([&] { (void)again.connect(uri(server.port(), "/echo"), {{"X-Token", "t"}}, record(seen2)); });
  ASSERT_TRUE(seen2.wait([&] { return seen2.opened; }));
  again.post([&] { again.send("still there?", false); });
  ASSERT_TRUE(seen2.wait([&] { return !seen2.messages.empty(); }));
  EXPECT_EQ(seen2.messages[0].first, "echo:still there?");
  again.stop();
}

TEST(WebSocket, AMalformedAddressIsAnErrorNotACrash) {
  WebSocketClient client({});
  ASSERT_TRUE(client.start().ok());
  std::mutex mu;
  std::condition_variable cv;
  std::optional<Status> got;
  client.post([&] {
    Status s = client.connect("not a uri", {}, {});
    std::lock_guard<std::mutex> lock(mu);
    got = s;
    cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, 5s, [&] { return got.has_value(); }));
  EXPECT_EQ(got->code(), StatusCode::kInvalidArgument);
  lock.unlock();
  client.stop();
}

}  // namespace
}  // namespace loom::transport
