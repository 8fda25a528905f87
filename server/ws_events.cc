#include "server/ws_events.h"

#include <boost/asio/post.hpp>

#include <map>
#include <regex>

#include "transport/request.h"
#include "transport/stream_frames.h"
#include "transport/websocket.h"
#include "transport/wire.h"

namespace loom::server {

using transport::CloseCode;
using transport::WebSocketServer;
using Hdl = WebSocketServer::ConnectionId;
using json = nlohmann::json;

struct WsEvents::Impl : std::enable_shared_from_this<WsEvents::Impl> {
  boost::asio::io_context& io;
  JobService& service;
  Metrics& metrics;
  WorkPool& pool;
  struct Follow {
    std::string job_id;
    uint64_t after = 0;     // replay from here
    uint64_t last_sent = 0;
    uint64_t handle = 0;    // JobService subscription
    bool subscribed = false;
    bool replaying = true;        // the store's history is being read
    std::vector<JobEvent> held;   // live events that came meanwhile
  };
  std::map<Hdl, Follow> follows;

  Impl(boost::asio::io_context& io_, JobService& s, Metrics& m, WorkPool& p,
       std::shared_ptr<boost::asio::ssl::context> t)
      : io(io_), service(s), metrics(m), pool(p), tls(std::move(t)) {}
  std::shared_ptr<boost::asio::ssl::context> tls;  // wss:// when set

  // The socket server calls back into this object; it is created once the
  // object is owned by a shared_ptr, so the handlers can hold a weak one.
  std::unique_ptr<WebSocketServer> server;

  void init() {
    std::weak_ptr<Impl> weak = shared_from_this();
    WebSocketServer::Handlers h;
    h.validate = [weak](Hdl id, const WebSocketServer::Handshake& hs) -> std::optional<WebSocketServer::Refusal> {
      auto self = weak.lock();
      if (!self) return WebSocketServer::Refusal{503, transport::error_body_text(Status(StatusCode::kUnavailable, "shutting down"))};
      return self->validate(id, hs);
    };
    h.on_open = [weak](Hdl id) {
      if (auto self = weak.lock()) self->open(id);
    };
    h.on_close = [weak](Hdl id) {
      if (auto self = weak.lock()) self->forget(id);
    };
    h.on_message = [weak](Hdl id, std::string payload, bool binary) {
      if (auto self = weak.lock()) self->on_message(id, std::move(payload), binary);
    };
    WebSocketServer::Limits limits;
    limits.max_message_bytes = service.options().max_ws_frame_bytes;
    limits.max_outbound_bytes = service.options().max_ws_outbound_bytes;
    server = std::make_unique<WebSocketServer>(io, std::move(h), limits, tls);
  }

  // A client's STREAM_REPLY. Frames that cannot be placed get a REJECTED
  // answer and change nothing; the job goes on waiting for a good reply.
  // Small frames are placed here (a hop through the pool would double a
  // round trip's latency); large ones, up to max_stream_bytes of base64 or
  // safetensors, are decoded on the work pool.
  static constexpr size_t kInlineReplyBytes = 256 << 10;
  void on_message(Hdl h, std::string payload, bool binary) {
    auto it = follows.find(h);
    if (it == follows.end()) return;
    if (payload.size() <= kInlineReplyBytes) {
      Status taken = service.stream_reply(it->second.job_id, payload, binary);
      if (!taken.ok()) server->send(h, transport::encode_rejected(stream_id_of(payload, binary), taken.message()), false);
      return;
    }
    auto frame = std::make_shared<const std::string>(std::move(payload));
    std::weak_ptr<Impl> weak = shared_from_this();
    const bool posted = pool.try_post([weak, h, job_id = it->second.job_id, frame, binary] {
      auto self = weak.lock();
      if (!self) return;
      Status taken = self->service.stream_reply(job_id, *frame, binary);
      if (taken.ok()) return;
      std::string answer = transport::encode_rejected(stream_id_of(*frame, binary), taken.message());
      boost::asio::post(self->io, [weak, h, answer = std::move(answer)] {
        if (auto s = weak.lock()) s->server->send(h, answer, /*binary=*/false);
      });
    });
    if (!posted) {
      server->send(h, transport::encode_rejected(stream_id_of(*frame, binary),
                                                 "the server is busy (its work queue is full); send the reply again"),
                   /*binary=*/false);
    }
  }

  static uint64_t stream_id_of(const std::string& payload, bool binary) {
    json j;
    if (binary) {
      auto parts = transport::split_binary_frame(payload);
      if (parts.ok()) j = std::move(parts->first);
    } else {
      j = json::parse(payload, nullptr, false);
    }
    if (j.is_object() && j.contains("stream_id") && j["stream_id"].is_number_unsigned()) {
      return j["stream_id"].get<uint64_t>();
    }
    return 0;
  }

  static WebSocketServer::Refusal refuse(const Status& s) {
    return {transport::http_status_for(s.code()), transport::error_body_text(s)};
  }

  std::optional<WebSocketServer::Refusal> validate(Hdl h, const WebSocketServer::Handshake& hs) {
    const size_t cap = service.options().max_ws_connections;
    if (follows.size() >= cap) {
      return refuse(Status(StatusCode::kUnavailable, "the server holds its limit of " + std::to_string(cap) +
                                                         " event sockets (--max-ws-connections); retry later"));
    }
    const std::string& resource = hs.resource;
    std::string path = resource.substr(0, resource.find('?'));
    std::string query = resource.find('?') == std::string::npos ? "" : resource.substr(resource.find('?') + 1);
    std::string proto = hs.header(transport::kProtocolHeader);
    Status version = transport::check_protocol_header(proto.empty() ? std::nullopt : std::optional<std::string_view>(proto));
    if (!version.ok()) return refuse(version);
    std::string auth = hs.header("Authorization");
    std::string key = auth.rfind("Bearer ", 0) == 0 ? auth.substr(7) : "";
    auto owner = service.authenticate(key);
    if (!owner.ok()) return refuse(owner.status());
    static const std::regex kEvents("/v1/jobs/([0-9a-f]{1,64})/events");
    std::smatch m;
    if (!std::regex_match(path, m, kEvents)) return refuse(not_found("no WebSocket route " + path));
    auto job = service.owned_job(*owner, m[1]);
    if (!job.ok()) return refuse(job.status());
    Follow f;
    f.job_id = m[1];
    static const std::regex kAfter("(?:^|&)after=([0-9]{1,19})(?:&|$)");
    std::smatch a;
    if (std::regex_search(query, a, kAfter)) f.after = std::stoull(a[1]);
    follows[h] = f;
    return std::nullopt;
  }

  void open(Hdl h) {
    auto it = follows.find(h);
    if (it == follows.end()) return;
    Follow& f = it->second;
    metrics.ws_follow();
    // Subscribe first, then replay: live events that arrive during the
    // replay are held, and sent after it (those it already had are
    // dropped by their seq).
    std::weak_ptr<Impl> weak = shared_from_this();
    f.handle = service.subscribe(f.job_id, [weak, h](const JobEvent& ev) {
      auto self = weak.lock();
      if (!self) return;
      boost::asio::post(self->io, [weak, h, ev] {
        if (auto s = weak.lock()) s->deliver(h, ev);
      });
    });
    f.subscribed = true;
    f.last_sent = f.after;
    // The store is read on the work pool; the replay comes back here.
    const bool posted = pool.try_post([weak, h, job_id = f.job_id, after = f.after] {
      auto self = weak.lock();
      if (!self) return;
      auto past = std::make_shared<Result<std::vector<JobEvent>>>(self->service.events_after(job_id, after));
      auto pending = self->service.pending_stream(job_id);
      auto state = self->service.job_state(job_id);
      const bool ended = state.ok() && is_terminal(*state);
      boost::asio::post(self->io, [weak, h, past, pending, ended] {
        if (auto s = weak.lock()) s->replayed(h, *past, pending, ended);
      });
    });
    if (!posted) server->close(h, CloseCode::kTryAgainLater, "the server is busy (its work queue is full); reconnect");
  }

  void replayed(Hdl h, const Result<std::vector<JobEvent>>& past, const std::optional<std::string>& pending,
                bool ended) {
    auto it = follows.find(h);
    if (it == follows.end()) return;
    if (!past.ok()) return server->close(h, CloseCode::kInternalError, past.status().message());
    std::vector<JobEvent> held = std::move(it->second.held);
    it->second.replaying = false;
    for (const JobEvent& ev : *past) deliver(h, ev);
    // A stream request waiting for a reply goes out again to a reattached client.
    if (pending && follows.count(h)) server->send(h, *pending, /*binary=*/true);
    for (const JobEvent& ev : held) deliver(h, ev);
    // Resumed past the terminal event: nothing more will come, say so.
    if (ended && follows.count(h)) server->close(h, CloseCode::kNormal, "job finished");
  }

  void deliver(Hdl h, const JobEvent& ev) {
    auto it = follows.find(h);
    if (it == follows.end()) return;
    if (it->second.replaying) return it->second.held.push_back(ev);
    if (ev.seq == 0) {  // unsequenced (a binary STREAM frame): not part of the replayed history
      server->send(h, ev.json, /*binary=*/true);
      return;
    }
    if (ev.seq <= it->second.last_sent) return;
    it->second.last_sent = ev.seq;
    server->send(h, event_text(ev), /*binary=*/false);
    if (transport::is_terminal(transport::event_type_of_text(ev.json))) server->close(h, CloseCode::kNormal, "job finished");
  }

  void forget(Hdl h) {
    auto it = follows.find(h);
    if (it == follows.end()) return;
    if (it->second.subscribed) service.unsubscribe(it->second.job_id, it->second.handle);
    follows.erase(it);
  }
};

WsEvents::WsEvents(boost::asio::io_context& io, JobService& service, Metrics& metrics, WorkPool& pool,
                   std::shared_ptr<boost::asio::ssl::context> tls)
    : impl_(std::make_shared<Impl>(io, service, metrics, pool, std::move(tls))) {
  impl_->init();
}

WsEvents::~WsEvents() { stop(); }

Status WsEvents::listen(const std::string& host, uint16_t port) { return impl_->server->listen(host, port); }

uint16_t WsEvents::port() const { return impl_->server->port(); }

void WsEvents::stop() {
  impl_->server->stop_listening();
  for (Hdl h : impl_->server->connections()) impl_->server->close(h, CloseCode::kGoingAway, "server shutting down");
}

}  // namespace loom::server
