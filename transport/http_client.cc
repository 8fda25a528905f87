#include "transport/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/ssl.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <limits>
#include <optional>
#include <strings.h>


namespace loom::transport {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

std::string HttpEndpoint::to_string() const {
  bool v6 = host.find(':') != std::string::npos;
  return std::string(tls ? "https://" : "http://") + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Result<HttpEndpoint> parse_base_url(const std::string& url) {
  std::string rest = url;
  HttpEndpoint ep;
  if (rest.rfind("https://", 0) == 0) {
    ep.tls = true;
    ep.port = 443;
    rest = rest.substr(8);
  } else if (rest.rfind("http://", 0) == 0) {
    rest = rest.substr(7);
  }
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.find('/') != std::string::npos) {
    return invalid_argument("\"" + url + "\": give the server as http://HOST:PORT, without a path");
  }
  std::string port;
  if (!rest.empty() && rest.front() == '[') {
    size_t close = rest.find(']');
    if (close == std::string::npos) return invalid_argument("\"" + url + "\": unterminated [IPv6] address");
    ep.host = rest.substr(1, close - 1);
    std::string after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return invalid_argument("\"" + url + "\": expected :PORT after the IPv6 address");
      port = after.substr(1);
    }
  } else {
    size_t colon = rest.rfind(':');
    ep.host = rest.substr(0, colon);
    if (colon != std::string::npos) port = rest.substr(colon + 1);
  }
  if (ep.host.empty()) return invalid_argument("\"" + url + "\": no host name; expected http://HOST:PORT");
  if (!port.empty()) {
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) {
      return invalid_argument("\"" + url + "\": port \"" + port + "\" is not a number");
    }
    unsigned long p = std::stoul(port);
    if (p == 0 || p > 65535) return invalid_argument("\"" + url + "\": port " + port + " is out of range 1-65535");
    ep.port = static_cast<uint16_t>(p);
  }
  return ep;
}

std::string HttpResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() == name.size() && ::strncasecmp(k.data(), name.data(), k.size()) == 0) return v;
  }
  return "";
}

struct HttpClient::Impl {
  // Beast reads at most the buffer's free capacity (512 bytes when empty):
  // reserve room so a body arrives in a few reads, not hundreds.
  Impl(const HttpEndpoint& ep, HttpClientOptions o) : endpoint(ep), options(o) { buffer.reserve(64 << 10); }

  HttpEndpoint endpoint;
  HttpClientOptions options;
  net::io_context ioc;
  std::optional<beast::tcp_stream> stream;  // plain, or the TCP under `tls`
  std::optional<net::ssl::context> ssl_ctx;  // made at the first https connect
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer;

  bool connected() const { return stream.has_value() || tls.has_value(); }
  beast::tcp_stream& tcp() { return tls ? beast::get_lowest_layer(*tls) : *stream; }
  // Calls f with the stream requests go over (TLS or plain).
  template <class F>
  void on_stream(F&& f) {
    if (tls) return f(*tls);
    f(*stream);
  }

  // Runs the operation started just before until it completes. Beast's
  // timeouts (tcp_stream::expires_after) apply to asynchronous operations
  // only, which is why every step is async and driven here.
  void drive() {
    ioc.restart();
    ioc.run();
  }

  [[noreturn]] void fail(const std::string& step, const beast::error_code& ec) {
    close();
    std::string what = ec == beast::error::timeout ? "timed out" : ec.message();
    throw HttpError(Status(StatusCode::kUnavailable,
                           step + " " + endpoint.to_string() + ": " + what +
                               (step == "connecting to" ? " (is loom-server running there? check LOOM_HOST / --host)"
                                                        : "")));
  }

  void close() {
    if (connected()) {
      beast::error_code ignored;
      tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
      tcp().socket().close(ignored);
    }
    tls.reset();
    stream.reset();
    buffer.clear();
  }

  net::ssl::context& tls_context() {
    if (ssl_ctx) return *ssl_ctx;
    ssl_ctx.emplace(net::ssl::context::tls_client);
    beast::error_code ec;
    if (options.ca_file.empty()) {
      ssl_ctx->set_default_verify_paths(ec);
    } else {
      ssl_ctx->load_verify_file(options.ca_file, ec);
    }
    if (ec) {
      ssl_ctx.reset();
      throw HttpError(invalid_argument("cannot load the CA certificates" +
                                       (options.ca_file.empty() ? std::string(" of the system") : " in " + options.ca_file) +
                                       ": " + ec.message()));
    }
    ssl_ctx->set_verify_mode(net::ssl::verify_peer);
    return *ssl_ctx;
  }

  void connect() {
    tcp::resolver resolver(ioc);
    beast::error_code ec;
    // Synchronous: host names here are numeric or local ("localhost"), which
    // resolve without a network round trip.
    auto results = resolver.resolve(endpoint.host, std::to_string(endpoint.port), ec);
    if (ec) fail("resolving", ec);
    stream.emplace(ioc);
    stream->expires_after(options.connect_timeout);
    stream->async_connect(results, [&](beast::error_code e, const tcp::endpoint&) { ec = e; });
    drive();
    if (ec) fail("connecting to", ec);
    stream->socket().set_option(tcp::no_delay(true), ec);
    if (!endpoint.tls) return;
    net::ssl::context& ctx = tls_context();
    tls.emplace(std::move(*stream), ctx);
    stream.reset();
    // SNI, and the certificate must name the host (DNS name or IP address).
    if (!SSL_set_tlsext_host_name(tls->native_handle(), endpoint.host.c_str())) {
      fail("setting the TLS server name for", beast::error_code(static_cast<int>(::ERR_get_error()),
                                                                net::error::get_ssl_category()));
    }
    tls->set_verify_callback(net::ssl::host_name_verification(endpoint.host));
    tcp().expires_after(options.connect_timeout);
    tls->async_handshake(net::ssl::stream_base::client, [&](beast::error_code e) { ec = e; });
    drive();
    if (ec) fail("TLS handshake with", ec);
  }

  http::request<http::string_body> make_request(const HttpRequest& r) {
    http::verb verb = http::string_to_verb(r.method);
    if (verb == http::verb::unknown) throw HttpError(invalid_argument("unknown HTTP method " + r.method));
    http::request<http::string_body> req{verb, r.target, 11};
    bool v6 = endpoint.host.find(':') != std::string::npos;
    req.set(http::field::host, (v6 ? "[" + endpoint.host + "]" : endpoint.host) + ":" + std::to_string(endpoint.port));
    req.set(http::field::user_agent, "loom-client/0.1");
    req.keep_alive(true);
    for (const auto& [k, v] : r.headers) req.set(k, v);
    req.body() = r.body;
    if (!r.body.empty() || verb == http::verb::post || verb == http::verb::put) req.prepare_payload();
    return req;
  }

  // Writes the request on the kept-alive connection (opening one when there
  // is none). Returns false when a reused connection turned out to be closed
  // by the server while idle: the caller retries once on a fresh one. A
  // fresh connection's failed write leaves `write_ec` set and returns true:
  // the server may have answered (413) before it stopped reading, so the
  // caller reads, and reports `write_ec` if no answer comes.
  bool write(http::request<http::string_body>& req, bool& reused, beast::error_code& write_ec) {
    reused = connected();
    if (!reused) connect();
    beast::error_code ec;
    tcp().expires_after(options.io_timeout);
    on_stream([&](auto& s) { http::async_write(s, req, [&](beast::error_code e, size_t) { ec = e; }); });
    drive();
    if (ec) {
      if (reused) {
        close();
        return false;
      }
      write_ec = ec;
    }
    return true;
  }

  static bool idle_close(const beast::error_code& ec) {
    return ec == http::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset ||
           ec == net::error::broken_pipe || ec == net::ssl::error::stream_truncated;
  }

  static void copy_headers(const http::response_header<>& h, HttpResponse& out) {
    out.status = static_cast<int>(h.result_int());
    for (const auto& f : h) out.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
  }

  HttpResponse request(const HttpRequest& r) {
    for (int attempt = 0;; ++attempt) {
      auto req = make_request(r);
      bool reused = false;
      beast::error_code write_ec;
      if (!write(req, reused, write_ec)) continue;
      http::response_parser<http::string_body> parser;
      parser.body_limit(options.max_body_bytes);
      parser.header_limit(64 * 1024);
      if (req.method() == http::verb::head) parser.skip(true);
      beast::error_code ec;
      tcp().expires_after(options.io_timeout);
      on_stream([&](auto& s) { http::async_read(s, buffer, parser, [&](beast::error_code e, size_t) { ec = e; }); });
      drive();
      if (ec) {
        if (reused && attempt == 0 && idle_close(ec) && !parser.got_some()) {
          close();
          continue;
        }
        if (write_ec) fail("sending to", write_ec);
        if (ec == http::error::body_limit) {
          close();
          throw HttpError(resource_exhausted("the answer to " + r.method + " " + r.target + " from " +
                                             endpoint.to_string() + " is over the client's limit of " +
                                             std::to_string(options.max_body_bytes) + " bytes"));
        }
        fail("reading the answer to " + r.method + " " + r.target + " from", ec);
      }
      auto res = parser.release();
      HttpResponse out;
      copy_headers(res.base(), out);
      out.body = std::move(res.body());
      if (write_ec || !res.keep_alive()) close();
      return out;
    }
  }

  HttpResponse stream_body(const HttpRequest& r, const std::function<void(const HttpResponse&)>& on_head,
                           const std::function<void(std::string_view)>& on_data) {
    for (int attempt = 0;; ++attempt) {
      auto req = make_request(r);
      bool reused = false;
      beast::error_code write_ec;
      if (!write(req, reused, write_ec)) continue;
      http::response_parser<http::buffer_body> parser;
      // The caller bounds what it accepts. Not boost::none: Boost 1.74 compares
      // Content-Length against the empty optional and fails every body.
      parser.body_limit(std::numeric_limits<std::uint64_t>::max());
      parser.header_limit(64 * 1024);
      beast::error_code ec;
      tcp().expires_after(options.io_timeout);
      on_stream([&](auto& s) {
        http::async_read_header(s, buffer, parser, [&](beast::error_code e, size_t) { ec = e; });
      });
      drive();
      if (ec) {
        if (reused && attempt == 0 && idle_close(ec) && !parser.got_some()) {
          close();
          continue;
        }
        if (write_ec) fail("sending to", write_ec);
        fail("reading the answer to " + r.method + " " + r.target + " from", ec);
      }
      HttpResponse out;
      copy_headers(parser.get().base(), out);
      const bool success = out.ok();
      std::vector<char> chunk(options.stream_chunk_bytes);
      try {
        if (on_head) on_head(out);
        while (!parser.is_done()) {
          parser.get().body().data = chunk.data();
          parser.get().body().size = chunk.size();
          tcp().expires_after(options.io_timeout);
          on_stream([&](auto& s) { http::async_read(s, buffer, parser, [&](beast::error_code e, size_t) { ec = e; }); });
          drive();
          if (ec == http::error::need_buffer) ec = {};
          size_t n = chunk.size() - parser.get().body().size;
          if (n > 0) {
            if (success) {
              on_data(std::string_view(chunk.data(), n));
            } else if (out.body.size() < options.max_body_bytes) {
              out.body.append(chunk.data(), std::min<size_t>(n, options.max_body_bytes - out.body.size()));
            }
          }
          if (ec) fail("reading the body of " + r.method + " " + r.target + " from", ec);
        }
      } catch (...) {
        close();
        throw;
      }
      if (write_ec || !parser.keep_alive()) close();
      return out;
    }
  }
};

HttpClient::HttpClient(HttpEndpoint endpoint, HttpClientOptions options)
    : endpoint_(endpoint), impl_(std::make_unique<Impl>(endpoint, options)) {}

HttpClient::~HttpClient() { impl_->close(); }

HttpResponse HttpClient::request(const HttpRequest& request) { return impl_->request(request); }

HttpResponse HttpClient::stream(const HttpRequest& request, const std::function<void(const HttpResponse&)>& on_head,
                               const std::function<void(std::string_view)>& on_data) {
  return impl_->stream_body(request, on_head, on_data);
}

void HttpClient::close() { impl_->close(); }

const HttpClientOptions& HttpClient::options() const { return impl_->options; }

}  // namespace loom::transport
