#include "server/ws_events.h"

#include <boost/asio/post.hpp>
#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/server.hpp>

#include <map>
#include <regex>

#include "transport/request.h"
#include "transport/stream_frames.h"

namespace loom::server {

using WsServer = websocketpp::server<websocketpp::config::asio>;
using Hdl = websocketpp::connection_hdl;
using json = nlohmann::json;

struct WsEvents::Impl : std::enable_shared_from_this<WsEvents::Impl> {
  boost::asio::io_context& io;
  JobService& service;
  WsServer server;
  struct Follow {
    std::string job_id;
    uint64_t after = 0;     // replay from here
    uint64_t last_sent = 0;
    uint64_t handle = 0;    // JobService subscription
    bool subscribed = false;
  };
  std::map<Hdl, Follow, std::owner_less<Hdl>> follows;

  Impl(boost::asio::io_context& io_, JobService& s) : io(io_), service(s) {}

  void init() {
    server.clear_access_channels(websocketpp::log::alevel::all);
    server.clear_error_channels(websocketpp::log::elevel::all);
    server.init_asio(&io);
    server.set_reuse_addr(true);
    server.set_max_message_size(service.options().max_ws_frame_bytes);
    std::weak_ptr<Impl> weak = shared_from_this();
    server.set_validate_handler([weak](Hdl h) {
      auto self = weak.lock();
      return self && self->validate(h);
    });
    server.set_open_handler([weak](Hdl h) {
      if (auto self = weak.lock()) self->open(h);
    });
    server.set_close_handler([weak](Hdl h) {
      if (auto self = weak.lock()) self->forget(h);
    });
    server.set_fail_handler([weak](Hdl h) {
      if (auto self = weak.lock()) self->forget(h);
    });
    server.set_message_handler([weak](Hdl h, WsServer::message_ptr msg) {
      if (auto self = weak.lock()) self->on_message(h, msg);
    });
  }

  // A client's STREAM_REPLY. Frames that cannot be placed get a REJECTED
  // answer and change nothing; the job goes on waiting for a good reply.
  void on_message(Hdl h, const WsServer::message_ptr& msg) {
    auto it = follows.find(h);
    if (it == follows.end()) return;
    const bool binary = msg->get_opcode() == websocketpp::frame::opcode::binary;
    Status taken = service.stream_reply(it->second.job_id, msg->get_payload(), binary);
    if (taken.ok()) return;
    uint64_t stream_id = 0;
    json j;
    if (binary) {
      auto parts = transport::split_binary_frame(msg->get_payload());
      if (parts.ok()) j = std::move(parts->first);
    } else {
      j = json::parse(msg->get_payload(), nullptr, false);
    }
    if (j.is_object() && j.contains("stream_id") && j["stream_id"].is_number_unsigned()) {
      stream_id = j["stream_id"].get<uint64_t>();
    }
    websocketpp::lib::error_code ec;
    server.send(h, transport::encode_rejected(stream_id, taken.message()), websocketpp::frame::opcode::text, ec);
  }

  bool refuse(const WsServer::connection_ptr& con, websocketpp::http::status_code::value code, const Status& s) {
    con->set_status(code);
    con->set_body(json{{"error", {{"code", status_code_name(s.code())}, {"message", s.message()}}}}.dump());
    con->replace_header("Content-Type", "application/json");
    return false;
  }

  bool validate(Hdl h) {
    auto con = server.get_con_from_hdl(h);
    using code = websocketpp::http::status_code::value;
    std::string resource = con->get_resource();
    std::string path = resource.substr(0, resource.find('?'));
    std::string query = resource.find('?') == std::string::npos ? "" : resource.substr(resource.find('?') + 1);
    std::string proto = con->get_request_header("X-Loom-Protocol");
    if (proto != std::to_string(transport::kProtocolVersion)) {
      return refuse(con, code::bad_request,
                    failed_precondition("protocol version \"" + proto + "\" is not supported: this server speaks version " +
                                        std::to_string(transport::kProtocolVersion)));
    }
    std::string auth = con->get_request_header("Authorization");
    std::string key = auth.rfind("Bearer ", 0) == 0 ? auth.substr(7) : "";
    auto owner = service.authenticate(key);
    if (!owner.ok()) return refuse(con, code::unauthorized, owner.status());
    static const std::regex kEvents("/v1/jobs/([0-9a-f]{1,64})/events");
    std::smatch m;
    if (!std::regex_match(path, m, kEvents)) return refuse(con, code::not_found, not_found("no WebSocket route " + path));
    auto job = service.owned_job(*owner, m[1]);
    if (!job.ok()) return refuse(con, code::not_found, job.status());
    Follow f;
    f.job_id = m[1];
    static const std::regex kAfter("(?:^|&)after=([0-9]{1,19})(?:&|$)");
    std::smatch a;
    if (std::regex_search(query, a, kAfter)) f.after = std::stoull(a[1]);
    follows[h] = f;
    return true;
  }

  void open(Hdl h) {
    auto it = follows.find(h);
    if (it == follows.end()) return;
    Follow& f = it->second;
    // Subscribe first, then replay: a live event that races the replay is
    // posted behind it and dropped by its seq.
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
    auto past = service.events_after(f.job_id, f.after);
    if (!past.ok()) {
      websocketpp::lib::error_code ec;
      server.close(h, websocketpp::close::status::internal_endpoint_error, past.status().message(), ec);
      return;
    }
    for (const JobEvent& ev : *past) deliver(h, ev);
    // A stream request waiting for a reply goes out again to a reattached client.
    if (auto frame = service.pending_stream(f.job_id)) {
      websocketpp::lib::error_code ec;
      server.send(h, *frame, websocketpp::frame::opcode::binary, ec);
    }
    // Resumed past the terminal event: nothing more will come, say so.
    auto still = follows.find(h);
    if (still == follows.end()) return;
    auto job = service.job_state(still->second.job_id);
    if (job.ok() && is_terminal(*job)) {
      websocketpp::lib::error_code ec;
      server.close(h, websocketpp::close::status::normal, "job finished", ec);
    }
  }

  void deliver(Hdl h, const JobEvent& ev) {
    auto it = follows.find(h);
    if (it == follows.end()) return;
    if (ev.seq == 0) {  // unsequenced (a binary STREAM frame): not part of the replayed history
      websocketpp::lib::error_code ec;
      server.send(h, ev.json, websocketpp::frame::opcode::binary, ec);
      return;
    }
    if (ev.seq <= it->second.last_sent) return;
    it->second.last_sent = ev.seq;
    websocketpp::lib::error_code ec;
    server.send(h, event_text(ev), websocketpp::frame::opcode::text, ec);
    if (ec) return;
    std::string type;
    try {
      type = json::parse(ev.json).value("type", "");
    } catch (const std::exception&) {
    }
    if (type == "COMPLETED" || type == "ERROR" || type == "CANCELLED") {
      server.close(h, websocketpp::close::status::normal, "job finished", ec);
    }
  }

  void forget(Hdl h) {
    auto it = follows.find(h);
    if (it == follows.end()) return;
    if (it->second.subscribed) service.unsubscribe(it->second.job_id, it->second.handle);
    follows.erase(it);
  }
};

WsEvents::WsEvents(boost::asio::io_context& io, JobService& service) : impl_(std::make_shared<Impl>(io, service)) {
  impl_->init();
}

WsEvents::~WsEvents() { stop(); }

Status WsEvents::listen(const std::string& host, uint16_t port) {
  websocketpp::lib::error_code ec;
  boost::system::error_code bec;
  auto addr = boost::asio::ip::make_address(host, bec);
  if (bec) return invalid_argument("bad listen address \"" + host + "\"");
  impl_->server.listen(boost::asio::ip::tcp::endpoint(addr, port), ec);
  if (ec) return Status(StatusCode::kUnavailable, "WebSocket listener: " + ec.message());
  impl_->server.start_accept(ec);
  if (ec) return Status(StatusCode::kUnavailable, "WebSocket accept: " + ec.message());
  return Status();
}

uint16_t WsEvents::port() const {
  boost::system::error_code ec;
  return impl_->server.get_local_endpoint(ec).port();
}

void WsEvents::stop() {
  websocketpp::lib::error_code ec;
  if (impl_->server.is_listening()) impl_->server.stop_listening(ec);
  std::vector<Hdl> open;
  for (auto& [h, f] : impl_->follows) open.push_back(h);
  for (Hdl h : open) impl_->server.close(h, websocketpp::close::status::going_away, "server shutting down", ec);
}

}  // namespace loom::server
