#include "server/http_api.h"

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include <iostream>

#include "server/internal/http_session.h"
#include "transport/wire.h"

namespace loom::server {

using json = nlohmann::json;
using namespace internal;

namespace internal {

StringResponse make_json(http::status status, const json& body, unsigned version, bool keep_alive) {
  StringResponse res{status, version};
  res.set(http::field::server, kServerVersion);
  res.set(http::field::content_type, "application/json");
  res.keep_alive(keep_alive);
  // Replace, not throw: messages quote what clients sent, which may be any bytes.
  res.body() = body.dump(-1, ' ', false, json::error_handler_t::replace);
  res.prepare_payload();
  return res;
}

StringResponse make_error(const Status& s, unsigned version, bool keep_alive, http::status status) {
  if (status == http::status::unknown) status = static_cast<http::status>(transport::http_status_for(s.code()));
  return make_json(status, transport::error_body(s), version, keep_alive);
}

namespace {
std::variant<beast::tcp_stream, beast::ssl_stream<beast::tcp_stream>> make_stream(tcp::socket socket,
                                                                                  asio::ssl::context* tls) {
  if (tls == nullptr) return std::variant<beast::tcp_stream, beast::ssl_stream<beast::tcp_stream>>(
      std::in_place_index<0>, std::move(socket));
  return std::variant<beast::tcp_stream, beast::ssl_stream<beast::tcp_stream>>(std::in_place_index<1>,
                                                                               std::move(socket), *tls);
}
}  // namespace

Session::Session(ApiContext ctx, tcp::socket socket)
    : ctx_(ctx), stream_(make_stream(std::move(socket), ctx.tls)) {
  ++*ctx_.open_sessions;
  // Beast reads at most the buffer's free capacity (512 bytes when empty):
  // reserve room so a body arrives in a few reads, not hundreds.
  buffer_.reserve(64 << 10);
}

Session::~Session() { --*ctx_.open_sessions; }

void Session::start() {
  const size_t cap = ctx_.service.options().max_http_connections;
  if (ctx_.open_sessions->load() > cap) {
    Status s(StatusCode::kUnavailable, "the server holds its limit of " + std::to_string(cap) +
                                           " open connections (--max-http-connections); retry later");
    StringResponse res = make_error(s, 11, false);
    res.set(http::field::retry_after, "1");
    return send(std::move(res), /*close_after=*/true);
  }
  if (stream_.index() == 0) return read();
  // TLS: the handshake first, under the same timeout as a request.
  tcp().expires_after(std::chrono::seconds(30));
  std::get<1>(stream_).async_handshake(asio::ssl::stream_base::server,
                                       [self = shared_from_this()](beast::error_code ec) {
                                         if (ec) return self->close();
                                         self->read();
                                       });
}

void Session::read() {
  parser_.emplace();
  parser_->body_limit(ctx_.service.options().request_limits.max_body_bytes);
  parser_->header_limit(16 * 1024);
  tcp().expires_after(std::chrono::seconds(60));
  std::visit(
      [&](auto& s) {
        http::async_read(s, buffer_, *parser_,
                         [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
      },
      stream_);
}

void Session::on_read(beast::error_code ec) {
  if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::ssl::error::stream_truncated) {
    return close();
  }
  if (ec == http::error::body_limit) {
    Status s = resource_exhausted("request body is over the limit of " +
                                  std::to_string(ctx_.service.options().request_limits.max_body_bytes) + " bytes");
    return send(make_error(s, 11, false), true);
  }
  if (ec) {
    if (ec == asio::error::operation_aborted || ec == asio::error::eof || ec == asio::error::connection_reset) {
      return close();
    }
    return send(make_error(invalid_argument(std::string("malformed HTTP request: ") + ec.message()), 11, false), true);
  }
  ctx_.metrics.http_request();
  dispatch(std::make_shared<StringRequest>(parser_->release()));
}

void Session::close() {
  // TLS too: the TCP half-close without close_notify (answers carry their
  // length, so a peer loses nothing it waits for).
  beast::error_code ec;
  tcp().socket().shutdown(tcp::socket::shutdown_send, ec);
}

void Session::dispatch(std::shared_ptr<StringRequest> request) {
  const StringRequest& req = *request;
  RouteMatch m = match_route(req.method(), std::string_view(req.target().data(), req.target().size()));
  Call call{req, std::move(m.params), std::move(m.query), ""};
  const RouteSpec* route = m.route;
  if (route == nullptr) {
    Status s = not_found("no route " + std::string(req.method_string()) + " " + m.path +
                         " (GET /v1/openapi.json lists the routes)");
    return send_error(call, s, m.path_known ? http::status::method_not_allowed : http::status::not_found);
  }
  // The protocol header is optional: absent means this server's version.
  auto proto = req.find(transport::kProtocolHeader);
  Status version = transport::check_protocol_header(
      proto == req.end() ? std::nullopt
                         : std::optional<std::string_view>(std::string_view(proto->value().data(), proto->value().size())));
  if (!version.ok()) return send_error(call, version);
  if (!route->blocking) return run_route(*route, call);
  // Off the I/O thread; the request travels with the task.
  const bool posted = ctx_.pool.try_post([self = shared_from_this(), request, route, params = call.params,
                                          query = call.query] {
    Call pooled{*request, params, query, ""};
    self->run_route(*route, pooled);
  });
  if (posted) return;
  Status busy(StatusCode::kUnavailable, "the server is busy: " + std::to_string(ctx_.service.options().max_queued_work) +
                                            " requests wait for a worker (--max-queued-work); retry shortly");
  StringResponse res = make_error(busy, call.version(), call.keep_alive());
  res.set(http::field::retry_after, "1");
  send(std::move(res));
}

void Session::run_route(const RouteSpec& route, Call& call) {
  // No exception leaves a handler: it becomes this request's 500.
  try {
    if (route.needs_key) {
      auto auth = call.req.find(http::field::authorization);
      std::string key = auth == call.req.end() ? "" : bearer_key(std::string_view(auth->value().data(), auth->value().size()));
      auto owner = ctx_.service.authenticate(key);
      if (!owner.ok()) return send_error(call, owner.status());
      call.owner = *owner;
    }
    (this->*handler_of(route.id))(call);
  } catch (const std::exception& e) {
    std::cerr << "loom-server: " << route.path << ": " << e.what() << "\n";
    send_error(call, internal_error(std::string("handling ") + route.path + ": " + e.what()));
  }
}

void Session::send_json(const Call& call, http::status status, const json& body) {
  send(make_json(status, body, call.version(), call.keep_alive()));
}

void Session::send_error(const Call& call, const Status& s, http::status status) {
  send(make_error(s, call.version(), call.keep_alive(), status));
}

void Session::send_result(const Call& call, const Result<json>& r, http::status ok) {
  if (!r.ok()) return send_error(call, r.status());
  send_json(call, ok, *r);
}

JobService::Listener Session::end_listener(const std::shared_ptr<JobEndWait>& w) {
  std::weak_ptr<Session> weak = shared_from_this();
  return [weak, w](const JobEvent& ev) {
    if (ev.seq == 0) return;  // a live STREAM frame
    const transport::EventType type = transport::event_type_of_text(ev.json);
    if (!transport::is_terminal(type)) return;
    const char* state = transport::event_type_name(type);  // a terminal type is its state's name
    asio::post(w->timer.get_executor(), [weak, w, state, ev] {
      if (auto self = weak.lock()) self->end_wait(w, state, &ev);
    });
  };
}

void Session::arm(const std::shared_ptr<JobEndWait>& w, int64_t wait_ms, bool subscribed_late) {
  // Looked at here (the work pool) before the strand takes over.
  std::optional<JobState> ended;
  if (subscribed_late) {
    auto now = ctx_.service.job_state(w->job_id);
    if (now.ok() && is_terminal(*now)) ended = *now;
  }
  // The timer's handler holds the session until the wait ends either way. A
  // listener given to submit() hears every event: its end is posted to the
  // strand too, and may come first.
  asio::post(executor(), [self = shared_from_this(), w, wait_ms, ended] {
    w->armed = true;
    if (w->answered) return;
    if (w->ended_early) return self->end_wait(w, w->early_state, w->early_event ? &*w->early_event : nullptr);
    if (ended) return self->end_wait(w, job_state_name(*ended), nullptr);
    w->timer.expires_after(std::chrono::milliseconds(wait_ms));
    w->timer.async_wait([self, w](beast::error_code ec) {
      if (!ec) self->end_wait(w, nullptr, nullptr);
    });
  });
}

void Session::end_wait(const std::shared_ptr<JobEndWait>& w, const char* state, const JobEvent* event) {
  if (w->answered) return;
  if (!w->armed) {  // the handler is still filling `w` in: arm() picks this up
    if (!w->ended_early) {
      w->ended_early = true;
      w->early_state = state;
      if (event != nullptr) w->early_event = *event;
    }
    return;
  }
  w->answered = true;
  w->timer.cancel();
  ctx_.service.unsubscribe(w->job_id, w->subscription);
  if (event != nullptr && !w->reads_store_on_event) return w->then(state, event);
  // The answer reads the store: built on the work pool.
  std::optional<JobEvent> copy;
  if (event != nullptr) copy = *event;
  auto answer = [self = shared_from_this(), w, state, copy] { w->then(state, copy ? &*copy : nullptr); };
  if (!ctx_.pool.try_post(answer)) answer();
}

}  // namespace internal

struct HttpApi::Impl : std::enable_shared_from_this<HttpApi::Impl> {
  Impl(asio::io_context& io_, JobService& s, Metrics& m, WorkPool& pool, asio::ssl::context* tls, const uint16_t* wsp)
      : io(io_), ctx{s, m, pool, tls, wsp, std::make_shared<std::atomic<size_t>>(0)}, acceptor(io_), backoff(io_) {}

  asio::io_context& io;
  ApiContext ctx;
  tcp::acceptor acceptor;
  asio::steady_timer backoff;
  bool stopped = false;

  void accept() {
    acceptor.async_accept(asio::make_strand(io), [self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
      if (self->stopped) return;
      if (!ec) {
        // A response's last small write (a download's tail) must not wait
        // for the client's delayed ACK (Nagle).
        beast::error_code nodelay_ec;
        socket.set_option(tcp::no_delay(true), nodelay_ec);
        std::make_shared<Session>(self->ctx, std::move(socket))->start();
        return self->accept();
      }
      // Out of descriptors (EMFILE) or another accept error: accepting again
      // at once would fail again at once and spin a core; wait a little.
      if (ec != asio::error::no_descriptors) std::cerr << "loom-server: accept: " << ec.message() << "\n";
      self->backoff.expires_after(std::chrono::milliseconds(100));
      self->backoff.async_wait([self](beast::error_code) {
        if (!self->stopped) self->accept();
      });
    });
  }
};

HttpApi::HttpApi(asio::io_context& io, JobService& service, Metrics& metrics, WorkPool& pool,
                 asio::ssl::context* tls)
    : impl_(std::make_shared<Impl>(io, service, metrics, pool, tls, &ws_port_)) {}

HttpApi::~HttpApi() { stop(); }

Status HttpApi::listen(const std::string& host, uint16_t port) {
  beast::error_code ec;
  tcp::endpoint ep(asio::ip::make_address(host, ec), port);
  if (ec) return invalid_argument("bad listen address \"" + host + "\": " + ec.message());
  impl_->acceptor.open(ep.protocol(), ec);
  if (!ec) impl_->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl_->acceptor.bind(ep, ec);
  if (!ec) impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Status(StatusCode::kUnavailable, "cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message());
  impl_->accept();
  return Status();
}

uint16_t HttpApi::port() const { return impl_->acceptor.local_endpoint().port(); }

void HttpApi::stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  beast::error_code ec;
  impl_->acceptor.close(ec);
  impl_->backoff.cancel();
}

std::vector<std::pair<std::string, std::string>> HttpApi::route_list() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const RouteSpec& r : route_specs()) out.emplace_back(std::string(http::to_string(r.method)), r.path);
  return out;
}

}  // namespace loom::server
