#include "transport/websocket.h"

#include <boost/asio/post.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <websocketpp/client.hpp>
#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/config/asio_no_tls_client.hpp>
#include <websocketpp/config/asio.hpp>
#include <websocketpp/config/asio_client.hpp>
#include <websocketpp/server.hpp>

#include <iostream>
#include <type_traits>
#include <map>
#include <thread>

#include "transport/wire.h"

namespace loom::transport {

namespace {
using Hdl = websocketpp::connection_hdl;
using WsServer = websocketpp::server<websocketpp::config::asio>;
// After a close handshake websocketpp waits up to 5 s for the peer's TLS
// close_notify (zaphoyd/websocketpp#726), which neither side sends: every
// wss:// close would take 5 s (a client's wait() for a finished job
// included). Each side waits 200 ms at most instead.
struct TlsServerConfig : websocketpp::config::asio_tls {
  typedef TlsServerConfig type;
  struct transport_config : websocketpp::config::asio_tls::transport_config {
    static const long timeout_socket_shutdown = 200;
  };
  typedef websocketpp::transport::asio::endpoint<transport_config> transport_type;
};
struct TlsClientConfig : websocketpp::config::asio_tls_client {
  typedef TlsClientConfig type;
  struct transport_config : websocketpp::config::asio_tls_client::transport_config {
    static const long timeout_socket_shutdown = 200;
  };
  typedef websocketpp::transport::asio::endpoint<transport_config> transport_type;
};
using WssServer = websocketpp::server<TlsServerConfig>;
using WsClient = websocketpp::client<websocketpp::config::asio_client>;
using WssClient = websocketpp::client<TlsClientConfig>;

websocketpp::frame::opcode::value opcode(bool binary) {
  return binary ? websocketpp::frame::opcode::binary : websocketpp::frame::opcode::text;
}
}  // namespace

// ---------------------------------------------------------------- server

// The socket server behind WebSocketServer, for websocketpp's plain or TLS
// config (WsServer or WssServer).
struct WebSocketServer::Impl {
  virtual ~Impl() = default;
  virtual Status listen(const std::string& host, uint16_t port) = 0;
  virtual uint16_t port() const = 0;
  virtual void stop_listening() = 0;
  virtual void send(ConnectionId id, std::string_view payload, bool binary) = 0;
  virtual void close(ConnectionId id, CloseCode code, const std::string& reason) = 0;
  virtual std::vector<ConnectionId> connections() const = 0;
};

namespace {

template <class WsServer>
struct ServerCore final : WebSocketServer::Impl, std::enable_shared_from_this<ServerCore<WsServer>> {
  using Handlers = WebSocketServer::Handlers;
  using Limits = WebSocketServer::Limits;
  using Handshake = WebSocketServer::Handshake;
  using Refusal = WebSocketServer::Refusal;
  using ConnectionId = WebSocketServer::ConnectionId;

  ServerCore(boost::asio::io_context& io_, Handlers h, Limits l, std::shared_ptr<boost::asio::ssl::context> t)
      : io(io_), handlers(std::move(h)), limits(l), tls(std::move(t)), ping_timer(io_), accept_backoff(io_) {}

  boost::asio::io_context& io;
  Handlers handlers;
  Limits limits;
  std::shared_ptr<boost::asio::ssl::context> tls;
  boost::asio::steady_timer ping_timer;
  boost::asio::steady_timer accept_backoff;
  bool stopped = false;
  mutable WsServer server;  // port() asks it from a const method
  ConnectionId next_id = 1;
  std::map<Hdl, ConnectionId, std::owner_less<Hdl>> ids;
  std::map<ConnectionId, Hdl> hdls;

  // Our own accept loop, not websocketpp's start_accept(): that one accepts
  // again at once after a failure, which out of descriptors (EMFILE) fails
  // again at once and spins a core. Here a failure waits 100 ms.
  void accept_next() {
    if (stopped || !server.is_listening()) return;
    typename WsServer::connection_ptr con = server.get_connection();
    if (!con) return backoff();
    websocketpp::lib::error_code ec;
    std::weak_ptr<ServerCore> weak = this->shared_from_this();
    server.async_accept(
        con,
        [weak, con](websocketpp::lib::error_code const& e) {
          auto self = weak.lock();
          if (!self) return;
          if (e) {
            con->terminate(e);
            return self->backoff();
          }
          con->start();
          self->accept_next();
        },
        ec);
    if (ec) {
      con->terminate(ec);
      backoff();
    }
  }
  void backoff() {
    if (stopped) return;
    accept_backoff.expires_after(std::chrono::milliseconds(100));
    std::weak_ptr<ServerCore> weak = this->shared_from_this();
    accept_backoff.async_wait([weak](boost::system::error_code e) {
      if (auto self = weak.lock(); self && !e) self->accept_next();
    });
  }

  void init(uint64_t max_message_bytes) {
    server.clear_access_channels(websocketpp::log::alevel::all);
    server.clear_error_channels(websocketpp::log::elevel::all);
    server.init_asio(&io);
    if constexpr (std::is_same_v<WsServer, WssServer>) {
      server.set_tls_init_handler([ctx = tls](Hdl) { return ctx; });
    }
    server.set_reuse_addr(true);
    server.set_max_message_size(static_cast<size_t>(max_message_bytes));
    const auto pong = limits.ping_interval.count() > 0 ? std::min(limits.pong_timeout, limits.ping_interval / 2)
                                                       : limits.pong_timeout;
    server.set_pong_timeout(static_cast<long>(pong.count()));
    std::weak_ptr<ServerCore> weak = this->shared_from_this();
    server.set_pong_timeout_handler([weak](Hdl h, std::string) {
      auto self = weak.lock();
      if (!self) return;
      // No close handshake with a peer that answers nothing: drop it now.
      websocketpp::lib::error_code ec;
      typename WsServer::connection_ptr con = self->server.get_con_from_hdl(h, ec);
      if (!ec && con) con->terminate(ec);
    });
    server.set_validate_handler([weak](Hdl h) {
      auto self = weak.lock();
      return self && self->validate(h);
    });
    server.set_open_handler([weak](Hdl h) {
      if (auto self = weak.lock()) self->guarded(h, "opening", [&](ConnectionId id) {
        if (self->handlers.on_open) self->handlers.on_open(id);
      });
    });
    server.set_close_handler([weak](Hdl h) {
      if (auto self = weak.lock()) self->forget(h);
    });
    server.set_fail_handler([weak](Hdl h) {
      if (auto self = weak.lock()) self->forget(h);
    });
    server.set_message_handler([weak](Hdl h, typename WsServer::message_ptr msg) {
      if (auto self = weak.lock()) self->guarded(h, "handling a frame", [&](ConnectionId id) {
        if (self->handlers.on_message) {
          const bool binary = msg->get_opcode() == websocketpp::frame::opcode::binary;
          self->handlers.on_message(id, std::move(msg->get_raw_payload()), binary);
        }
      });
    });
  }

  // Runs `fn` for the connection behind `h`; what it throws closes the
  // socket with 1011 instead of reaching websocketpp.
  template <class Fn>
  void guarded(Hdl h, const char* what, Fn&& fn) {
    auto it = ids.find(h);
    if (it == ids.end()) return;
    try {
      fn(it->second);
    } catch (const std::exception& e) {
      std::cerr << "loom: WebSocket connection " << it->second << ": " << what << ": " << e.what() << "\n";
      websocketpp::lib::error_code ec;
      server.close(h, websocketpp::close::status::internal_endpoint_error, "internal error", ec);
    }
  }

  bool validate(Hdl h) {
    typename WsServer::connection_ptr con;
    try {
      con = server.get_con_from_hdl(h);
    } catch (const std::exception&) {
      return false;
    }
    const ConnectionId id = next_id++;
    ids[h] = id;
    hdls[id] = h;
    std::optional<Refusal> refusal;
    try {
      Handshake hs;
      hs.resource = con->get_resource();
      hs.header = [con](const std::string& name) { return con->get_request_header(name); };
      if (handlers.validate) refusal = handlers.validate(id, hs);
    } catch (const std::exception& e) {
      refusal = Refusal{500, error_body_text(internal_error(std::string("checking the handshake: ") + e.what()))};
    }
    if (!refusal) return true;
    con->set_status(static_cast<websocketpp::http::status_code::value>(refusal->http_status));
    con->set_body(refusal->body);
    con->replace_header("Content-Type", "application/json");
    return false;
  }

  // Pings every open connection, then again after the interval.
  void schedule_pings() {
    if (limits.ping_interval.count() <= 0 || stopped) return;
    ping_timer.expires_after(limits.ping_interval);
    std::weak_ptr<ServerCore> weak = this->shared_from_this();
    ping_timer.async_wait([weak](const boost::system::error_code& e) {
      auto self = weak.lock();
      if (e || !self || self->stopped) return;
      for (const auto& [id, h] : self->hdls) {
        websocketpp::lib::error_code ec;
        self->server.ping(h, "", ec);  // fails for a connection not open yet: fine
      }
      self->schedule_pings();
    });
  }

  void forget(Hdl h) {
    auto it = ids.find(h);
    if (it == ids.end()) return;
    const ConnectionId id = it->second;
    ids.erase(it);
    hdls.erase(id);
    try {
      if (handlers.on_close) handlers.on_close(id);
    } catch (const std::exception& e) {
      std::cerr << "loom: WebSocket connection " << id << ": closing: " << e.what() << "\n";
    }
  }
  Status listen(const std::string& host, uint16_t port) override {
    boost::system::error_code bec;
    auto addr = boost::asio::ip::make_address(host, bec);
    if (bec) return invalid_argument("bad listen address \"" + host + "\"");
    websocketpp::lib::error_code ec;
    server.listen(boost::asio::ip::tcp::endpoint(addr, port), ec);
    if (ec) return Status(StatusCode::kUnavailable, "WebSocket listener: " + ec.message());
    accept_next();
    schedule_pings();
    return Status();
  }

  uint16_t port() const override {
    boost::system::error_code ec;
    return server.get_local_endpoint(ec).port();
  }

  void stop_listening() override {
    stopped = true;
    ping_timer.cancel();
    accept_backoff.cancel();
    websocketpp::lib::error_code ec;
    if (server.is_listening()) server.stop_listening(ec);
  }

  void send(ConnectionId id, std::string_view payload, bool binary) override {
    auto it = hdls.find(id);
    if (it == hdls.end()) return;
    websocketpp::lib::error_code ec;
    typename WsServer::connection_ptr con = server.get_con_from_hdl(it->second, ec);
    if (ec || !con) return;
    if (con->get_buffered_amount() + payload.size() > limits.max_outbound_bytes) {
      con->close(websocketpp::close::status::policy_violation, "the client reads too slowly", ec);
      return;
    }
    ec = con->send(payload.data(), payload.size(), opcode(binary));
  }

  void close(ConnectionId id, CloseCode code, const std::string& reason) override {
    auto it = hdls.find(id);
    if (it == hdls.end()) return;
    websocketpp::lib::error_code ec;
    server.close(it->second, static_cast<websocketpp::close::status::value>(code), reason, ec);
  }

  std::vector<ConnectionId> connections() const override {
    std::vector<ConnectionId> out;
    for (const auto& [id, h] : hdls) out.push_back(id);
    return out;
  }
};

}  // namespace

WebSocketServer::WebSocketServer(boost::asio::io_context& io, Handlers handlers, Limits limits,
                                 std::shared_ptr<boost::asio::ssl::context> tls) {
  if (tls) {
    auto core = std::make_shared<ServerCore<WssServer>>(io, std::move(handlers), limits, std::move(tls));
    core->init(limits.max_message_bytes);
    impl_ = core;
  } else {
    auto core = std::make_shared<ServerCore<WsServer>>(io, std::move(handlers), limits, nullptr);
    core->init(limits.max_message_bytes);
    impl_ = core;
  }
}

WebSocketServer::~WebSocketServer() { stop_listening(); }

Status WebSocketServer::listen(const std::string& host, uint16_t port) { return impl_->listen(host, port); }
uint16_t WebSocketServer::port() const { return impl_->port(); }
void WebSocketServer::stop_listening() { impl_->stop_listening(); }
void WebSocketServer::send(ConnectionId id, std::string_view payload, bool binary) { impl_->send(id, payload, binary); }
void WebSocketServer::close(ConnectionId id, CloseCode code, const std::string& reason) { impl_->close(id, code, reason); }
std::vector<WebSocketServer::ConnectionId> WebSocketServer::connections() const { return impl_->connections(); }

// ---------------------------------------------------------------- client

struct WebSocketClient::Impl {
  virtual ~Impl() = default;
  virtual Status start() = 0;
  virtual void post(std::function<void()> work) = 0;
  virtual void stop() = 0;
  virtual Status connect(const std::string& uri, const std::vector<std::pair<std::string, std::string>>& headers,
                         Handlers handlers) = 0;
  virtual bool is_open() const = 0;
  virtual bool send(std::string_view payload, bool binary) = 0;
  virtual void close(CloseCode code, const std::string& reason) = 0;
  virtual void set_timer(std::chrono::milliseconds delay, std::function<void()> work) = 0;
  virtual void cancel_timer() = 0;
};

namespace {

// The client behind WebSocketClient, for websocketpp's plain or TLS config.
template <class WsClient>
struct ClientCore final : WebSocketClient::Impl {
  using Options = WebSocketClient::Options;
  using Handlers = WebSocketClient::Handlers;
  explicit ClientCore(Options o) : options(o) {}

  Options options;
  WsClient ws;
  typename WsClient::connection_ptr connection;
  typename WsClient::timer_ptr timer;
  uint64_t generation = 0;  // handlers of a replaced connection stay quiet
  std::thread thread;
  bool started = false;

  // Runs a caller's handler of connection `gen`; what it throws goes to
  // on_error and ends the connection.
  template <class Fn>
  void guarded(uint64_t gen, const Handlers& h, Fn&& fn) {
    if (gen != generation) return;
    try {
      fn();
    } catch (const std::exception& e) {
      try {
        if (h.on_error) h.on_error(e.what());
      } catch (const std::exception&) {
      }
      drop();
    }
  }

  void drop() {
    if (!connection) return;
    websocketpp::lib::error_code ec;
    if (connection->get_state() == websocketpp::session::state::open) {
      connection->close(websocketpp::close::status::going_away, "client done", ec);
    } else {
      connection->terminate(ec);
    }
  }
  Status start() override {
    ClientCore& s = *this;
    if (s.started) return Status();
    s.ws.clear_access_channels(websocketpp::log::alevel::all);
    s.ws.clear_error_channels(websocketpp::log::elevel::all);
    websocketpp::lib::error_code ec;
    s.ws.init_asio(ec);
    if constexpr (std::is_same_v<WsClient, WssClient>) {
      s.ws.set_tls_init_handler([o = s.options](Hdl) {
        auto ctx = std::make_shared<boost::asio::ssl::context>(boost::asio::ssl::context::tls_client);
        boost::system::error_code e;
        if (o.ca_file.empty()) {
          ctx->set_default_verify_paths(e);
        } else {
          ctx->load_verify_file(o.ca_file, e);
        }
        ctx->set_verify_mode(boost::asio::ssl::verify_peer);
        ctx->set_verify_callback(boost::asio::ssl::host_name_verification(o.host));
        return ctx;
      });
    }
    if (ec) return internal_error("initializing the WebSocket client: " + ec.message());
    s.ws.set_open_handshake_timeout(static_cast<long>(s.options.handshake_timeout.count()));
    s.ws.set_close_handshake_timeout(static_cast<long>(s.options.close_timeout.count()));
    s.ws.set_max_message_size(static_cast<size_t>(s.options.max_message_bytes));
    s.ws.start_perpetual();
    s.started = true;
    s.thread = std::thread([&s] {
      // Every handler is guarded; this catch is for websocketpp itself.
      for (;;) {
        try {
          s.ws.run();
          return;
        } catch (const std::exception& e) {
          std::cerr << "loom: WebSocket client loop: " << e.what() << "\n";
        }
      }
    });
    return Status();
  }

  void post(std::function<void()> work) override {
    ClientCore& s = *this;
    if (!s.started) return;
    boost::asio::post(s.ws.get_io_service(), [work = std::move(work)] {
      try {
        work();
      } catch (const std::exception& e) {
        std::cerr << "loom: WebSocket client task: " << e.what() << "\n";
      }
    });
  }

  void stop() override {
    ClientCore& s = *this;
    if (!s.started) return;
    s.started = false;
    boost::asio::post(s.ws.get_io_service(), [&s] {
      ++s.generation;
      if (s.timer) s.timer->cancel();
      s.drop();
      s.ws.stop_perpetual();
    });
    if (s.thread.joinable()) s.thread.join();
  }

  Status connect(const std::string& uri, const std::vector<std::pair<std::string, std::string>>& headers,
                 Handlers handlers) override {
    ClientCore& s = *this;
    websocketpp::lib::error_code ec;
    typename WsClient::connection_ptr con = s.ws.get_connection(uri, ec);
    if (ec) return invalid_argument("bad WebSocket address " + uri + ": " + ec.message());
    for (const auto& [k, v] : headers) con->append_header(k, v);
    const uint64_t gen = ++s.generation;
    auto h = std::make_shared<Handlers>(std::move(handlers));
    std::weak_ptr<typename WsClient::connection_type> weak = con;
    con->set_open_handler([&s, gen, h](Hdl) {
      s.guarded(gen, *h, [&] {
        if (h->on_open) h->on_open();
      });
    });
    con->set_message_handler([&s, gen, h](Hdl, typename WsClient::message_ptr msg) {
      s.guarded(gen, *h, [&] {
        if (h->on_message) h->on_message(msg->get_payload(), msg->get_opcode() == websocketpp::frame::opcode::binary);
      });
    });
    con->set_fail_handler([&s, gen, h, weak](Hdl) {
      s.guarded(gen, *h, [&] {
        int status = 0;
        std::string reason = "connection failed";
        if (auto c = weak.lock()) {
          status = static_cast<int>(c->get_response_code());
          reason = c->get_ec().message();
        }
        if (h->on_fail) h->on_fail(status, reason);
      });
    });
    con->set_close_handler([&s, gen, h, weak](Hdl) {
      s.guarded(gen, *h, [&] {
        auto c = weak.lock();
        if (h->on_close) h->on_close(c ? static_cast<int>(c->get_remote_close_code()) : 0);
      });
    });
    s.drop();
    s.connection = con;
    s.ws.connect(con);
    return Status();
  }

  bool is_open() const override {
    return connection && connection->get_state() == websocketpp::session::state::open;
  }

  bool send(std::string_view payload, bool binary) override {
    if (!is_open()) return false;
    return !connection->send(payload.data(), payload.size(), opcode(binary));
  }

  void close(CloseCode code, const std::string& reason) override {
    ClientCore& s = *this;
    if (!s.connection) return;
    websocketpp::lib::error_code ec;
    if (s.connection->get_state() == websocketpp::session::state::open) {
      s.connection->close(static_cast<websocketpp::close::status::value>(code), reason, ec);
    } else {
      s.connection->terminate(ec);
    }
  }

  void set_timer(std::chrono::milliseconds delay, std::function<void()> work) override {
    ClientCore& s = *this;
    if (s.timer) s.timer->cancel();
    s.timer = s.ws.set_timer(static_cast<long>(delay.count()), [work = std::move(work)](const websocketpp::lib::error_code& ec) {
      if (ec) return;
      try {
        work();
      } catch (const std::exception& e) {
        std::cerr << "loom: WebSocket client timer: " << e.what() << "\n";
      }
    });
  }

  void cancel_timer() override {
    if (timer) timer->cancel();
  }
};

}  // namespace

WebSocketClient::WebSocketClient(Options options) {
  if (options.tls) {
    impl_ = std::make_unique<ClientCore<WssClient>>(options);
  } else {
    impl_ = std::make_unique<ClientCore<WsClient>>(options);
  }
}

WebSocketClient::~WebSocketClient() { stop(); }

Status WebSocketClient::start() { return impl_->start(); }
void WebSocketClient::post(std::function<void()> work) { impl_->post(std::move(work)); }
void WebSocketClient::stop() { impl_->stop(); }
Status WebSocketClient::connect(const std::string& uri, const std::vector<std::pair<std::string, std::string>>& headers,
                                Handlers handlers) {
  return impl_->connect(uri, headers, std::move(handlers));
}
bool WebSocketClient::is_open() const { return impl_->is_open(); }
bool WebSocketClient::send(std::string_view payload, bool binary) { return impl_->send(payload, binary); }
void WebSocketClient::close(CloseCode code, const std::string& reason) { impl_->close(code, reason); }
void WebSocketClient::set_timer(std::chrono::milliseconds delay, std::function<void()> work) {
  impl_->set_timer(delay, std::move(work));
}
void WebSocketClient::cancel_timer() { impl_->cancel_timer(); }

}  // namespace loom::transport
