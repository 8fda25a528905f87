// A small synchronous HTTP/1.1 client over TCP or TLS (Boost.Beast), for the
// REST side of the protocol (transport/PROTOCOL.md) and result downloads.
// https:// endpoints verify the server's certificate and host name against
// the system's trust store, or against HttpClientOptions::ca_file.
//
// One connection, kept alive and reused; a request on a connection the
// server has closed while idle is retried once on a fresh one (every loom
// request is safe to repeat: GETs, DELETE, and a POST whose body the server
// never read). Every network step runs under a timeout (connect, and each
// read or write), so a silent server gives a ConnectionError, never a hang.
// Network failures throw HttpError (UNAVAILABLE) naming the server and the
// step; HTTP error answers are returned, not thrown (the caller maps them,
// knowing what was being done). A server that answers before it has read
// the whole body (413 for an oversized one) and closes is still heard: the
// answer is read after a failed write.
//
// Used by the client library (client/), the server's webhook sender and the
// integration tests: the one HTTP client of the project.
//
// Thread safety: an HttpClient belongs to the thread that calls it (it runs
// its own io_context inside each call). Use one per thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "graph/status.h"

namespace loom::transport {

// What HttpClient throws: UNAVAILABLE for a network failure or timeout,
// RESOURCE_EXHAUSTED for an answer over the body limit, INVALID_ARGUMENT for
// a request it cannot send.
class HttpError : public std::runtime_error {
 public:
  explicit HttpError(Status status) : std::runtime_error(status.message()), status_(std::move(status)) {}
  const Status& status() const { return status_; }

 private:
  Status status_;
};

struct HttpEndpoint {
  std::string host;
  uint16_t port = 80;
  bool tls = false;
  std::string to_string() const;  // "http://host:port" or "https://host:port"
};

// Accepts "http://host:port", "https://host:port", "host:port" (http),
// "http://host" (port 80; https: 443), with an optional trailing "/"; IPv6
// as "[::1]:8080".
Result<HttpEndpoint> parse_base_url(const std::string& url);

struct HttpClientOptions {
  // A server that does not accept within this is treated as down.
  std::chrono::milliseconds connect_timeout{10000};
  // Per read or write step, not per request: a long download that keeps
  // moving never times out, a stalled one does.
  std::chrono::milliseconds io_timeout{30000};
  // Bodies read into memory by request(): loom's JSON answers are small, and
  // a hostile or broken server must not make the client allocate without
  // bound. Streaming downloads are bounded by their caller instead.
  uint64_t max_body_bytes = 64ull << 20;
  // The buffer a streaming download reads into: memory held per download.
  size_t stream_chunk_bytes = 256u << 10;
  // PEM file of the CAs that https:// servers must chain to; empty: the
  // system's trust store (/etc/ssl/certs).
  std::string ca_file;
};

struct HttpRequest {
  std::string method = "GET";  // GET, POST, PUT, DELETE, HEAD
  std::string target;          // path and query: "/v1/jobs/ab12?x=1"
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

struct HttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // empty for a successful streaming GET (the sink got it)
  // The first header called `name` (case-insensitive), or "".
  std::string header(std::string_view name) const;
  bool ok() const { return status >= 200 && status < 300; }
};

class HttpClient {
 public:
  explicit HttpClient(HttpEndpoint endpoint, HttpClientOptions options = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends the request and reads the whole answer into memory (at most
  // max_body_bytes). Throws HttpError.
  HttpResponse request(const HttpRequest& request);

  // Like request(), but once the header has arrived `on_head` sees status
  // and headers (body empty), and a 2xx body then goes to `on_data` in
  // chunks of at most stream_chunk_bytes as it arrives (an error answer's
  // body is read into HttpResponse::body as usual). A connection that drops
  // mid-body throws HttpError (UNAVAILABLE) after every byte received so far went
  // to `on_data`, so the caller can resume with a Range request. Whatever
  // the callbacks throw propagates (and the connection is closed).
  HttpResponse stream(const HttpRequest& request, const std::function<void(const HttpResponse&)>& on_head,
                      const std::function<void(std::string_view)>& on_data);

  // Closes the kept-alive connection (the next request opens a new one).
  void close();

  const HttpEndpoint& endpoint() const { return endpoint_; }
  const HttpClientOptions& options() const;

 private:
  struct Impl;
  HttpEndpoint endpoint_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace loom::transport
