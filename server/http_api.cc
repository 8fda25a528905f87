#include "server/http_api.h"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fcntl.h>

#include <functional>
#include <iostream>
#include <regex>

#include "server/file_range_body.h"
#include "transport/http_range.h"
#include "transport/presign.h"
#include "transport/request.h"

namespace loom::server {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using json = nlohmann::json;

namespace {

constexpr const char* kServerVersion = "loom-server 0.1.0";
// Longest a POST /v1/jobs?wait_ms=N holds its answer: longer jobs are
// followed over the WebSocket, with their queue position and LOG events.
constexpr int64_t kMaxSubmitWaitMs = 10000;
// How long DELETE of a running job waits for it to stop at its next hook
// point, so the answer says CANCELLED.
constexpr int64_t kCancelWaitMs = 5000;

// A request waiting for its job's end before it answers (I/O thread only):
// POST /v1/jobs?wait_ms=N, and DELETE of a running job.
struct JobEndWait {
  explicit JobEndWait(const asio::any_io_executor& ex) : timer(ex) {}
  asio::steady_timer timer;
  std::string job_id;
  uint64_t subscription = 0;
  bool answered = false;
  // Called once: with the terminal state and event, or nullptrs on timeout
  // (event alone nullptr: the job had ended before the wait began).
  std::function<void(const char* state, const JobEvent* event)> then;
};
http::status http_status(StatusCode code) {
  switch (code) {
    case StatusCode::kInvalidArgument: case StatusCode::kFailedPrecondition: return http::status::bad_request;
    case StatusCode::kUnauthenticated: return http::status::unauthorized;
    case StatusCode::kPermissionDenied: return http::status::forbidden;
    case StatusCode::kNotFound: return http::status::not_found;
    case StatusCode::kResourceExhausted: return http::status::payload_too_large;
    case StatusCode::kUnavailable: return http::status::service_unavailable;
    case StatusCode::kDeadlineExceeded: return http::status::gateway_timeout;
    case StatusCode::kCancelled: return http::status::conflict;
    default: return http::status::internal_server_error;
  }
}

using StringResponse = http::response<http::string_body>;

StringResponse make_json(http::status status, const json& body, unsigned version, bool keep_alive) {
  StringResponse res{status, version};
  res.set(http::field::server, kServerVersion);
  res.set(http::field::content_type, "application/json");
  res.keep_alive(keep_alive);
  res.body() = body.dump();
  res.prepare_payload();
  return res;
}

StringResponse make_error(const Status& s, unsigned version, bool keep_alive, http::status status = http::status::unknown) {
  if (status == http::status::unknown) status = http_status(s.code());
  return make_json(status, {{"error", {{"code", status_code_name(s.code())}, {"message", s.message()}}}}, version,
                   keep_alive);
}

}  // namespace

struct HttpApi::Impl : std::enable_shared_from_this<HttpApi::Impl> {
  asio::io_context& io;
  JobService& service;
  Metrics& metrics;
  tcp::acceptor acceptor;
  const uint16_t* ws_port;
  bool stopped = false;

  Impl(asio::io_context& io_, JobService& s, Metrics& m, const uint16_t* wsp)
      : io(io_), service(s), metrics(m), acceptor(io_), ws_port(wsp) {}

  void accept() {
    acceptor.async_accept(asio::make_strand(io), [self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
      if (self->stopped) return;
      if (!ec) std::make_shared<Session>(self, std::move(socket))->start();
      self->accept();
    });
  }

  // One keep-alive connection: read a request, answer it, repeat.
  struct Session : std::enable_shared_from_this<Session> {
    std::shared_ptr<Impl> api;
    beast::tcp_stream stream;
    beast::flat_buffer buffer;
    std::optional<http::request_parser<http::string_body>> parser;
    std::shared_ptr<void> in_flight;  // the response being written

    // Beast reads at most the buffer's free capacity (512 bytes when empty):
    // reserve room so a body arrives in a few reads, not hundreds.
    Session(std::shared_ptr<Impl> a, tcp::socket s) : api(std::move(a)), stream(std::move(s)) {
      buffer.reserve(64 << 10);
    }

    void start() { read(); }

    void read() {
      parser.emplace();
      parser->body_limit(api->service.options().request_limits.max_body_bytes);
      parser->header_limit(16 * 1024);
      stream.expires_after(std::chrono::seconds(60));
      http::async_read(stream, buffer, *parser,
                       [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
    }

    void on_read(beast::error_code ec) {
      if (ec == http::error::end_of_stream || ec == beast::error::timeout) return close();
      if (ec == http::error::body_limit) {
        Status s = resource_exhausted("request body is over the limit of " +
                                      std::to_string(api->service.options().request_limits.max_body_bytes) + " bytes");
        return send(make_error(s, 11, false), true);
      }
      if (ec) {
        if (ec == asio::error::operation_aborted || ec == asio::error::eof || ec == asio::error::connection_reset) {
          return close();
        }
        return send(make_error(invalid_argument(std::string("malformed HTTP request: ") + ec.message()), 11, false), true);
      }
      api->metrics.http_request();
      handle(parser->release());
    }

    template <class Body>
    void send(http::response<Body>&& res, bool close_after = false) {
      close_after = close_after || !res.keep_alive();
      auto sp = std::make_shared<http::response<Body>>(std::move(res));
      in_flight = sp;
      http::async_write(stream, *sp, [self = shared_from_this(), sp, close_after](beast::error_code ec, size_t bytes) {
        self->api->metrics.bytes_sent(bytes);
        self->in_flight.reset();
        if (ec || close_after) return self->close();
        self->read();
      });
    }

    void close() {
      beast::error_code ec;
      stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    }

    // A listener (for JobService::subscribe or submit) that ends `w` on the
    // job's terminal event, on this session's strand.
    JobService::Listener end_listener(const std::shared_ptr<JobEndWait>& w) {
      std::weak_ptr<Session> weak = shared_from_this();
      return [weak, w](const JobEvent& ev) {
        // Terminal events only; they are JSON text we wrote, "type" spelled without spaces.
        if (ev.seq == 0) return;
        for (const char* state : {"COMPLETED", "ERROR", "CANCELLED"}) {
          if (ev.json.find(std::string("\"type\":\"") + state + "\"") == std::string::npos) continue;
          asio::post(w->timer.get_executor(), [weak, w, state, ev] {
            if (auto self = weak.lock()) self->end_wait(w, state, &ev);
          });
          return;
        }
      };
    }

    // Starts the timeout of `w` (subscribed already); the timer's handler
    // holds the session until the wait ends either way. `subscribed_late`:
    // the job may have ended before the subscription, so look once. (A
    // listener given to submit() hears every event: its end is posted
    // behind this handler even when the job is already over.)
    void arm(const std::shared_ptr<JobEndWait>& w, int64_t wait_ms, bool subscribed_late) {
      w->timer.expires_after(std::chrono::milliseconds(wait_ms));
      w->timer.async_wait([self = shared_from_this(), w](beast::error_code ec) {
        if (!ec) self->end_wait(w, nullptr, nullptr);
      });
      if (!subscribed_late) return;
      auto now = api->service.job_state(w->job_id);
      if (now.ok() && is_terminal(*now)) end_wait(w, job_state_name(*now), nullptr);
    }

    // POST /v1/jobs?wait_ms=N&inline=raw for a job COMPLETED in time: the
    // compressed result as the body, the job's fields as headers.
    void send_raw_result(const json& answer, const JobEvent& event, unsigned v, bool ka) {
      json ev = json::parse(event.json, nullptr, false);
      StringResponse res{http::status::ok, v};
      res.set(http::field::server, kServerVersion);
      res.set(http::field::content_type, "application/zstd");
      res.set("X-Loom-Job-Id", answer.value("job_id", ""));
      res.set("X-Loom-State", "COMPLETED");
      res.set("X-Loom-Deduplicated", answer.value("deduplicated", false) ? "true" : "false");
      res.set("X-Loom-Result-Size", std::to_string(event.inline_result->size()));
      res.set("X-Loom-Result-Sha256", ev.value("result_sha256", ""));
      res.set("X-Loom-Result-Url", ev.value("result_url", ""));
      res.keep_alive(ka);
      res.body() = *event.inline_result;
      res.prepare_payload();
      send(std::move(res));
    }

    void end_wait(const std::shared_ptr<JobEndWait>& w, const char* state, const JobEvent* event) {
      if (w->answered) return;
      w->answered = true;
      w->timer.cancel();
      api->service.unsubscribe(w->job_id, w->subscription);
      w->then(state, event);
    }

    void handle(http::request<http::string_body> req);
    void download(const http::request<http::string_body>& req, const std::string& path, const std::string& query);
  };
};

void HttpApi::Impl::Session::handle(http::request<http::string_body> req) {
  const unsigned v = req.version();
  const bool ka = req.keep_alive();
  std::string target(req.target());
  std::string path = target.substr(0, target.find('?'));
  std::string query = target.find('?') == std::string::npos ? "" : target.substr(target.find('?') + 1);
  JobService& svc = api->service;

  if (path == "/healthz" && req.method() == http::verb::get) {
    StringResponse res{http::status::ok, v};
    res.set(http::field::content_type, "text/plain");
    res.body() = svc.draining() ? "draining\n" : "ok\n";
    res.keep_alive(ka);
    res.prepare_payload();
    return send(std::move(res));
  }
  if (path == "/metrics" && req.method() == http::verb::get) {
    StringResponse res{http::status::ok, v};
    res.set(http::field::content_type, "text/plain; version=0.0.4");
    res.body() = api->metrics.render(svc.queue_depth());
    res.keep_alive(ka);
    res.prepare_payload();
    return send(std::move(res));
  }
  if (path.rfind("/v1/blobs/", 0) == 0 && (req.method() == http::verb::get || req.method() == http::verb::head)) {
    return download(req, path, query);
  }
  if (path.rfind("/v1/", 0) != 0) return send(make_error(not_found("no route " + path), v, ka));

  // Protocol version, then the key.
  auto proto = req.find("X-Loom-Protocol");
  const std::string want = std::to_string(transport::kProtocolVersion);
  if (proto == req.end()) {
    return send(make_error(failed_precondition("missing X-Loom-Protocol header: this server speaks protocol version " +
                                               want + "; use a loom client that sends it"),
                           v, ka));
  }
  if (proto->value() != want) {
    return send(make_error(failed_precondition("protocol version " + std::string(proto->value()) +
                                               " is not supported: this server speaks version " + want +
                                               "; use a client and server of the same protocol version"),
                           v, ka));
  }
  std::string key;
  auto auth = req.find(http::field::authorization);
  if (auth != req.end() && auth->value().starts_with("Bearer ")) key = std::string(auth->value().substr(7));
  auto owner = svc.authenticate(key);
  if (!owner.ok()) return send(make_error(owner.status(), v, ka));

  static const std::regex kJob("/v1/jobs/([0-9a-f]{1,64})");
  static const std::regex kModel("/v1/models/([A-Za-z0-9._-]{1,128})");
  std::smatch m;
  auto answer = [&](const Result<json>& r, http::status ok = http::status::ok) {
    if (!r.ok()) return send(make_error(r.status(), v, ka));
    send(make_json(ok, *r, v, ka));
  };
  if (path == "/v1/jobs" && req.method() == http::verb::post) {
    // ?wait_ms=N: answer when the job ends or N ms pass, whichever first,
    // so a short job needs no WebSocket (the answer carries its terminal event).
    static const std::regex kWait("(?:^|&)wait_ms=([0-9]{1,6})(?:&|$)");
    std::smatch w;
    // &inline=raw: a COMPLETED answer is the compressed result itself.
    static const std::regex kRaw("(?:^|&)inline=raw(?:&|$)");
    const bool raw = std::regex_search(query, kRaw);
    const int64_t wait_ms =
        std::regex_search(query, w, kWait) ? std::min<int64_t>(std::stoll(w[1]), kMaxSubmitWaitMs) : 0;
    std::shared_ptr<JobEndWait> waiter;
    JobService::Listener listener;
    if (wait_ms > 0) {
      waiter = std::make_shared<JobEndWait>(stream.get_executor());
      listener = end_listener(waiter);
    }
    auto r = svc.submit(*owner, req.body(), std::move(listener));
    if (!r.ok()) {
      const Status& s = r.status();
      if (s.code() == StatusCode::kResourceExhausted && s.message().rfind("the queue", 0) == 0) {
        StringResponse res = make_error(s, v, ka, http::status::too_many_requests);
        res.set(http::field::retry_after, "1");
        return send(std::move(res));
      }
      return send(make_error(s, v, ka));
    }
    json answer = {{"job_id", r->job_id}, {"state", job_state_name(r->state)}, {"deduplicated", r->deduplicated}};
    if (!waiter || r->subscription == 0) return send(make_json(http::status::accepted, answer, v, ka));
    waiter->job_id = r->job_id;
    waiter->subscription = r->subscription;
    waiter->then = [this, answer = std::move(answer), v, ka, raw](const char* state, const JobEvent* event) mutable {
      if (event == nullptr) {  // still running (or ended before we looked): a plain answer
        auto now = api->service.job_state(answer.value("job_id", ""));
        if (now.ok()) answer["state"] = job_state_name(*now);
        return send(make_json(http::status::accepted, answer, v, ka));
      }
      if (raw && event->inline_result && std::string(state) == "COMPLETED") return send_raw_result(answer, *event, v, ka);
      answer["state"] = state;
      // The event text is spliced in as is: parsing and dumping an inline
      // result again would cost more than a small job.
      StringResponse res = make_json(http::status::ok, answer, v, ka);
      res.body().pop_back();  // the closing '}'
      res.body() += ",\"event\":" + event_text(*event) + "}";
      res.prepare_payload();
      send(std::move(res));
    };
    arm(waiter, wait_ms, /*subscribed_late=*/false);
    return;  // the waiter answers
  }
  if (path == "/v1/jobs" && req.method() == http::verb::get) return answer(svc.list(*owner));
  if (std::regex_match(path, m, kJob)) {
    if (req.method() == http::verb::get) return answer(svc.snapshot(*owner, m[1]));
    if (req.method() == http::verb::delete_) {
      auto r = svc.cancel(*owner, m[1]);
      if (!r.ok() || r->value("state", "") != "RUNNING") return answer(r);
      // Running: it stops at its next hook point; answer once it has.
      auto w = std::make_shared<JobEndWait>(stream.get_executor());
      w->job_id = m[1];
      w->subscription = svc.subscribe(w->job_id, end_listener(w));
      w->then = [this, owner = *owner, id = w->job_id, v, ka](const char*, const JobEvent*) {
        auto snap = api->service.snapshot(owner, id);
        if (!snap.ok()) return send(make_error(snap.status(), v, ka));
        send(make_json(http::status::ok, *snap, v, ka));
      };
      arm(w, kCancelWaitMs, /*subscribed_late=*/true);
      return;
    }
  }
  if (path == "/v1/models" && req.method() == http::verb::get) return answer(svc.models_json());
  if (std::regex_match(path, m, kModel) && req.method() == http::verb::get) return answer(svc.model_json(m[1]));
  if (path == "/v1/env" && req.method() == http::verb::get) {
    return answer(json{{"server_version", kServerVersion},
                       {"protocol_version", transport::kProtocolVersion},
                       {"websocket_port", *api->ws_port}});
  }
  send(make_error(not_found("no route " + std::string(req.method_string()) + " " + path), v, ka));
}

void HttpApi::Impl::Session::download(const http::request<http::string_body>& req, const std::string& path,
                                      const std::string& query) {
  const unsigned v = req.version();
  const bool ka = req.keep_alive();
  JobService& svc = api->service;
  int64_t now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  Status ok = transport::verify_presigned(svc.options().presign_secret, "GET", path, query, now);
  if (!ok.ok()) return send(make_error(ok, v, ka, http::status::forbidden));
  static const std::regex kResult("/v1/blobs/results/([0-9a-f]{1,64})");
  std::smatch m;
  if (!std::regex_match(path, m, kResult)) return send(make_error(not_found("no blob " + path), v, ka));
  // Small results live in the job store, large ones in files (JobService::put_blob).
  std::optional<std::string> small = svc.small_blob(BlobKind::kResult, m[1].str());
  int fd = -1;
  off_t size = 0;
  if (small) {
    size = static_cast<off_t>(small->size());
  } else {
    std::string file = svc.options().data_dir + "/results/" + m[1].str() + ".st.zst";
    fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return send(make_error(not_found("result of job " + m[1].str() + " is no longer kept"), v, ka));
    size = ::lseek(fd, 0, SEEK_END);
  }
  auto range_header = req.find(http::field::range);
  auto range = transport::parse_range(range_header == req.end() ? "" : std::string(range_header->value()),
                                      static_cast<uint64_t>(size));
  if (!range.ok()) {
    if (fd >= 0) ::close(fd);
    StringResponse res = make_error(range.status(), v, ka, http::status::range_not_satisfiable);
    res.set(http::field::content_range, "bytes */" + std::to_string(size));
    return send(std::move(res));
  }
  uint64_t first = 0, length = static_cast<uint64_t>(size);
  http::status status = http::status::ok;
  if (range->has_value()) {
    first = (*range)->first;
    length = (*range)->last - first + 1;
    status = http::status::partial_content;
  }
  auto fill = [&](auto& res) {
    res.set(http::field::server, kServerVersion);
    res.set(http::field::content_type, "application/zstd");
    res.set(http::field::accept_ranges, "bytes");
    if (status == http::status::partial_content) {
      res.set(http::field::content_range, "bytes " + std::to_string(first) + "-" +
                                               std::to_string(first + length - 1) + "/" + std::to_string(size));
    }
    res.keep_alive(ka);
  };
  if (req.method() == http::verb::head) {
    if (fd >= 0) ::close(fd);
    http::response<http::empty_body> head{status, v};
    fill(head);
    head.content_length(length);
    return send(std::move(head));
  }
  if (small) {
    StringResponse res{status, v};
    fill(res);
    res.body() = small->substr(first, length);
    res.prepare_payload();
    return send(std::move(res));
  }
  http::response<FileRangeBody> res{status, v};
  fill(res);
  res.body() = FileRangeBody::value_type(fd, first, length);
  res.prepare_payload();
  send(std::move(res));
}

HttpApi::HttpApi(asio::io_context& io, JobService& service, Metrics& metrics)
    : impl_(std::make_shared<Impl>(io, service, metrics, &ws_port_)) {}

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
}

}  // namespace loom::server
