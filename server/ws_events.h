// The WebSocket side of loom-server (websocketpp, on the same io_context as
// HttpApi, on its own port that GET /v1/env announces): follows one job's
// events. `?after=SEQ` replays what the client missed from the store before
// live events, so no event (COMPLETED included) is lost across reconnects.
// The sockets are transport/websocket.h's, so websocketpp stays replaceable.
// The store is read, and STREAM replies decoded, on the WorkPool.
// Thread safety: runs on the io_context's thread; JobService listeners and
// pooled work post to it.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>

#include <cstdint>
#include <memory>
#include <string>

#include "graph/status.h"
#include "server/job_service.h"
#include "server/metrics.h"
#include "server/work_pool.h"

namespace loom::server {

class WsEvents {
 public:
  // `tls`: wss:// with this context; nullptr: ws://.
  WsEvents(boost::asio::io_context& io, JobService& service, Metrics& metrics, WorkPool& pool,
           std::shared_ptr<boost::asio::ssl::context> tls = nullptr);
  ~WsEvents();
  Status listen(const std::string& host, uint16_t port);
  uint16_t port() const;
  void stop();  // closes the listener and every open socket

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace loom::server
