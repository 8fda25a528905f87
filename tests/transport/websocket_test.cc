// transport's WebSocket wrapper, both ends on loopback: frames both ways,
// refusals with their status, and handlers that throw contained.
#include "transport/websocket.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include <condition_variable>
#include <future>
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
      if (payload == "flood") {  // far more than the outbound limit, at once
        const std::string chunk(64 << 10, 'x');
        for (int i = 0; i < 256; ++i) server_->send(id, chunk, true);
        return;
      }
      server_->send(id, "echo:" + payload, binary);
    };
    WebSocketServer::Limits limits;
    limits.max_message_bytes = 1 << 20;
    limits.max_outbound_bytes = 1 << 20;
    limits.ping_interval = 100ms;
    limits.pong_timeout = 50ms;
    server_ = std::make_unique<WebSocketServer>(io_, std::move(h), limits);
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
  // Open connections, read on the server's thread.
  size_t connections() {
    std::promise<size_t> n;
    boost::asio::post(io_, [&] { n.set_value(server_->connections().size()); });
    return n.get_future().get();
  }

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

TEST(WebSocket, AClientThatDoesNotKeepUpIsClosedInsteadOfQueuedWithoutBound) {
  EchoServer server;
  WebSocketClient client({});
  ASSERT_TRUE(client.start().ok());
  Seen seen;
  client.post([&] { (void)client.connect(uri(server.port(), "/echo"), {{"X-Token", "t"}}, record(seen)); });
  ASSERT_TRUE(seen.wait([&] { return seen.opened; }));
  // 16 MiB sent at once cannot all be taken by the socket: past 1 MiB queued
  // the server closes with 1008 and the rest is not queued.
  client.post([&] { client.send("flood", false); });
  ASSERT_TRUE(seen.wait([&] { return seen.close_code >= 0; }));
  EXPECT_EQ(seen.close_code, 1008);
  EXPECT_LT(seen.messages.size(), 256u);
  client.stop();
}

TEST(WebSocket, AClientThatStopsAnsweringPingsIsClosed) {
  EchoServer server;
  // A hand-made client: it completes the handshake, then never reads or
  // answers anything, like a peer that vanished without a FIN.
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket s(io);
  s.connect({boost::asio::ip::address_v4::loopback(), server.port()});
  const std::string upgrade =
      "GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Token: t\r\n\r\n";
  boost::asio::write(s, boost::asio::buffer(upgrade));
  boost::asio::streambuf response;
  boost::asio::read_until(s, response, "\r\n\r\n");
  std::string head(boost::asio::buffers_begin(response.data()), boost::asio::buffers_end(response.data()));
  ASSERT_NE(head.find("101"), std::string::npos) << head;
  EXPECT_EQ(server.connections(), 1u);
  // Pinged every 100 ms, no pong within 50 ms: closed well within 5 s.
  for (int i = 0; i < 250 && server.connections() > 0; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(server.connections(), 0u) << "the silent client still holds its connection";
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
