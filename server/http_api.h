// The HTTP side of loom-server (Boost.Beast): the /v1 REST API, presigned
// result downloads with Range, /healthz, /metrics and /v1/openapi.json.
// Routes call JobService; no model work happens here. The route table and
// one handler per route are in http_routes.cc.
// Routes that block (the store, blobs, decoding) run on the WorkPool and
// post their answer back to the connection's strand.
// Thread safety: runs on the io_context's thread; stop() from that thread
// (or posted to it).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "graph/status.h"
#include "server/job_service.h"
#include "server/metrics.h"
#include "server/work_pool.h"

namespace loom::server {

class HttpApi {
 public:
  // `tls`: serve HTTPS with this context (it outlives the HttpApi); nullptr: plain HTTP.
  HttpApi(boost::asio::io_context& io, JobService& service, Metrics& metrics, WorkPool& pool,
          boost::asio::ssl::context* tls = nullptr);
  ~HttpApi();
  Status listen(const std::string& host, uint16_t port);
  uint16_t port() const;
  void set_websocket_port(uint16_t port) { ws_port_ = port; }
  void stop();  // stops accepting; open connections finish their request

  // Every route the server answers, as (METHOD, path template): "GET",
  // "/v1/jobs/{id}". The OpenAPI coverage test holds it against the document.
  static std::vector<std::pair<std::string, std::string>> route_list();

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
  uint16_t ws_port_ = 0;
};

}  // namespace loom::server
