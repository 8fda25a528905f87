#include "server/webhook.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/ssl.hpp>
#include <openssl/ssl.h>

#include <iostream>
#include <optional>

#include "transport/presign.h"

namespace loom::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

struct Delivery {
  std::string event_id, url, body;
  int attempt = 0;
};

}  // namespace

// Handlers capture the raw Impl: it outlives its io_context's run (stop()
// joins the thread before the Impl goes), and a shared_ptr in handlers that
// the io_context holds would keep both alive forever.
struct WebhookSender::Impl {
  explicit Impl(WebhookOptions o) : options(std::move(o)), work(asio::make_work_guard(io)) {
    boost::system::error_code ec;
    if (options.ca_file.empty()) {
      tls.set_default_verify_paths(ec);
    } else {
      tls.load_verify_file(options.ca_file, ec);
    }
    if (ec) std::cerr << "loom-server: webhook CA certificates: " << ec.message() << " (https deliveries will fail)\n";
    tls.set_verify_mode(asio::ssl::verify_peer);
  }

  WebhookOptions options;
  asio::ssl::context tls{asio::ssl::context::tls_client};
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work;
  // I/O thread only:
  std::deque<std::shared_ptr<Delivery>> waiting;  // due now, no slot free
  size_t in_flight = 0;

  void submit(std::shared_ptr<Delivery> d) {
    if (in_flight >= options.max_in_flight) return waiting.push_back(std::move(d));
    ++in_flight;
    attempt(std::move(d));
  }

  // One attempt: resolve and check, connect, write, read, each step under
  // the timeout; then done() records the outcome.
  struct Attempt {
    Attempt(asio::io_context& io, std::shared_ptr<Delivery> d) : delivery(std::move(d)), stream(io) {}
    std::shared_ptr<Delivery> delivery;
    beast::tcp_stream stream;  // moved into `secure` once connected, for https://
    std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
    http::request<http::string_body> req;
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    beast::tcp_stream& tcp() { return secure ? beast::get_lowest_layer(*secure) : stream; }
    template <class F>
    void on_stream(F&& f) {
      if (secure) return f(*secure);
      f(stream);
    }
  };

  void attempt(std::shared_ptr<Delivery> d) {
    // Resolved now and connected to by address: a name that has come to
    // point inside since the submit is refused here.
    auto target = options.policy.check(d->url);
    if (!target.ok()) return done(d, Status(StatusCode::kPermissionDenied, target.status().message()));
    beast::error_code ec;
    tcp::endpoint ep(asio::ip::make_address(target->address, ec), target->port);
    if (ec) return done(d, Status(StatusCode::kUnavailable, "bad resolved address " + target->address));
    auto a = std::make_shared<Attempt>(io, d);
    const std::string ts = std::to_string(
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count());
    const bool v6 = target->host.find(':') != std::string::npos;
    a->req = {http::verb::post, target->target, 11};
    a->req.set(http::field::host, (v6 ? "[" + target->host + "]" : target->host) + ":" + std::to_string(target->port));
    a->req.set(http::field::content_type, "application/json");
    a->req.set(http::field::user_agent, "loom-server webhook");
    a->req.set("X-Loom-Timestamp", ts);
    a->req.set("X-Loom-Signature", transport::webhook_signature(options.secret, ts, d->body));
    a->req.set(http::field::connection, "close");
    a->req.body() = d->body;
    a->req.prepare_payload();
    a->parser.body_limit(1 << 16);
    a->stream.expires_after(options.timeout);
    Impl* self = this;
    const bool secure = target->tls;
    const std::string host = target->host;
    a->stream.async_connect(ep, [self, a, secure, host](beast::error_code ec) {
      if (ec) return self->failed(a, "connect", ec);
      if (!secure) return self->exchange(a);
      a->secure.emplace(std::move(a->stream), self->tls);
      SSL_set_tlsext_host_name(a->secure->native_handle(), host.c_str());
      a->secure->set_verify_callback(asio::ssl::host_name_verification(host));
      a->tcp().expires_after(self->options.timeout);
      a->secure->async_handshake(asio::ssl::stream_base::client, [self, a](beast::error_code ec) {
        if (ec) return self->failed(a, "TLS handshake", ec);
        self->exchange(a);
      });
    });
  }

  // Writes the request and reads the answer (over TLS or not).
  void exchange(const std::shared_ptr<Attempt>& a) {
    Impl* self = this;
    a->tcp().expires_after(options.timeout);
    a->on_stream([&](auto& s) {
      http::async_write(s, a->req, [self, a](beast::error_code ec, size_t) {
        if (ec) return self->failed(a, "write", ec);
        a->tcp().expires_after(self->options.timeout);
        a->on_stream([&](auto& s2) {
          http::async_read(s2, a->buffer, a->parser, [self, a](beast::error_code ec, size_t) {
            if (ec) return self->failed(a, "read", ec);
            self->answered(a);
          });
        });
      });
    });
  }

  void answered(const std::shared_ptr<Attempt>& a) {
    beast::error_code ignored;
    a->tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
    const int status = static_cast<int>(a->parser.get().result_int());
    if (status >= 200 && status < 300) return done(a->delivery, Status());
    if (status >= 300 && status < 400) {
      return done(a->delivery, Status(StatusCode::kFailedPrecondition, "webhook answered a redirect (" +
                                                                           std::to_string(status) +
                                                                           "); redirects are not followed"));
    }
    done(a->delivery, Status(StatusCode::kUnavailable, "webhook answered HTTP " + std::to_string(status)));
  }

  void failed(const std::shared_ptr<Attempt>& a, const char* step, beast::error_code ec) {
    const std::string why = ec == beast::error::timeout ? "timed out" : ec.message();
    done(a->delivery, Status(StatusCode::kUnavailable, std::string("webhook delivery failed: ") + step + ": " + why));
  }

  void done(const std::shared_ptr<Delivery>& d, const Status& s) {
    ++d->attempt;
    const bool finished = s.ok() || d->attempt >= options.attempts;
    try {
      if (options.on_attempt) options.on_attempt(d->event_id, d->attempt, finished);
    } catch (const std::exception& e) {
      std::cerr << "loom-server: webhook " << d->event_id << ": recording the attempt: " << e.what() << "\n";
    }
    if (finished && !s.ok()) {
      std::cerr << "loom-server: webhook to " << d->url << " abandoned after " << d->attempt
                << " attempts: " << s.message() << "\n";
    }
    if (!finished) schedule(d, options.first_backoff * (1 << std::min(d->attempt - 1, 16)));
    // The slot is free: the next waiting delivery takes it.
    --in_flight;
    if (!waiting.empty()) {
      auto next = std::move(waiting.front());
      waiting.pop_front();
      submit(std::move(next));
    }
  }

  void schedule(std::shared_ptr<Delivery> d, std::chrono::milliseconds delay) {
    auto timer = std::make_shared<asio::steady_timer>(io, delay);
    timer->async_wait([self = this, d, timer](beast::error_code ec) {
      if (!ec) self->submit(d);
    });
  }
};

WebhookSender::WebhookSender(WebhookOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  thread_ = std::thread([impl = impl_.get()] {
    // A handler that throws loses its delivery, not the sender.
    for (;;) {
      try {
        impl->io.run();
        return;
      } catch (const std::exception& e) {
        std::cerr << "loom-server: webhook sender: " << e.what() << "\n";
      }
    }
  });
}

WebhookSender::~WebhookSender() { stop(); }

void WebhookSender::stop() {
  impl_->io.stop();
  if (thread_.joinable()) thread_.join();
}

void WebhookSender::enqueue(std::string event_id, std::string url, std::string body, int attempts) {
  auto d = std::make_shared<Delivery>(Delivery{std::move(event_id), std::move(url), std::move(body), attempts});
  asio::post(impl_->io, [impl = impl_.get(), d] { impl->submit(d); });
}

}  // namespace loom::server
