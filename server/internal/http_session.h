// One keep-alive HTTP connection of loom-server: read a request, route it to
// its handler, answer, repeat. The route table (http_routes.cc) names one
// handler per route; http_api.cc holds the connection plumbing.
// Thread safety: a session runs on its own strand; JobService listeners post
// back to it.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "server/http_api.h"
#include "server/http_router.h"
#include "server/job_service.h"
#include "server/metrics.h"
#include "server/work_pool.h"

namespace loom::server::internal {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using StringRequest = http::request<http::string_body>;
using StringResponse = http::response<http::string_body>;

constexpr const char* kServerVersion = "loom-server 0.1.0";

// What every session shares: the service, metrics, the work pool and
// announced ports.
struct ApiContext {
  JobService& service;
  Metrics& metrics;
  WorkPool& pool;
  asio::ssl::context* tls;  // nullptr: plaintext
  const uint16_t* ws_port;
  // Counted by Session's constructor and destructor; shared, because a
  // session's last handler may be destroyed after the HttpApi.
  std::shared_ptr<std::atomic<size_t>> open_sessions;
};

// A request waiting for its job's end before it answers (the session's
// strand only): POST /v1/jobs?wait_ms=N, and DELETE of a running job.
struct JobEndWait {
  explicit JobEndWait(const asio::any_io_executor& ex) : timer(ex) {}
  asio::steady_timer timer;
  std::string job_id;
  uint64_t subscription = 0;
  bool answered = false;
  // Set on the strand by arm(): the handler (on the work pool) has filled in
  // job_id, subscription and then. An end that comes before is kept here.
  bool armed = false;
  bool ended_early = false;
  const char* early_state = nullptr;
  std::optional<JobEvent> early_event;
  // `then` reads the store even when given the event (it runs on the work
  // pool then; otherwise, with an event, on the strand at once).
  bool reads_store_on_event = false;
  // Called once, on the work pool: with the terminal state and event, or
  // nullptrs on timeout (event alone nullptr: the job had ended before the
  // wait began).
  std::function<void(const char* state, const JobEvent* event)> then;
};

class Session;

// A request as a handler sees it: the parsed message, its path's
// parameters ({id} -> "ab12"), its query, and the caller's key id.
struct Call {
  const StringRequest& req;
  std::map<std::string, std::string> params;
  std::string query;
  std::string owner;  // empty for routes without a key
  unsigned version() const { return req.version(); }
  bool keep_alive() const { return req.keep_alive(); }
};


class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(ApiContext ctx, tcp::socket socket);
  ~Session();
  // Reads the first request; over the connection cap, answers 503 and closes.
  void start();

  // Route handlers (http_routes.cc), one per route of the table
  // (server/http_router.h).
  using Handler = void (Session::*)(Call& call);
  static Handler handler_of(RouteId id);
  void healthz(Call& call);
  void metrics(Call& call);
  void openapi(Call& call);
  void env(Call& call);
  void download_blob(Call& call);
  void submit_job(Call& call);
  void list_jobs(Call& call);
  void get_job(Call& call);
  void cancel_job(Call& call);
  void list_models(Call& call);
  void get_model(Call& call);
  void create_variant(Call& call);

 private:
  void read();
  void on_read(beast::error_code ec);
  void dispatch(std::shared_ptr<StringRequest> req);
  void run_route(const RouteSpec& route, Call& call);
  void close();

 public:  // for the handlers
  // From any thread: the write is posted to the session's strand.
  template <class Body>
  void send(http::response<Body>&& res, bool close_after = false) {
    close_after = close_after || !res.keep_alive();
    auto sp = std::make_shared<http::response<Body>>(std::move(res));
    asio::post(executor(), [self = shared_from_this(), sp, close_after] {
      self->in_flight_ = sp;
      std::visit(
          [&](auto& s) {
            http::async_write(s, *sp, [self, sp, close_after](beast::error_code ec, size_t bytes) {
              self->ctx_.metrics.bytes_sent(bytes);
              self->in_flight_.reset();
              if (ec || close_after) return self->close();
              self->read();
            });
          },
          self->stream_);
    });
  }
  void send_json(const Call& call, http::status status, const nlohmann::json& body);
  void send_error(const Call& call, const Status& s, http::status status = http::status::unknown);
  void send_result(const Call& call, const Result<nlohmann::json>& r, http::status ok = http::status::ok);
  // A listener that ends `w` on the job's terminal event, on this strand.
  JobService::Listener end_listener(const std::shared_ptr<JobEndWait>& w);
  // Starts the timeout of `w` (on the strand, from any thread);
  // `subscribed_late`: the job may have ended before the subscription, so
  // look once.
  void arm(const std::shared_ptr<JobEndWait>& w, int64_t wait_ms, bool subscribed_late);
  void end_wait(const std::shared_ptr<JobEndWait>& w, const char* state, const JobEvent* event);
  void send_raw_result(const nlohmann::json& answer, const JobEvent& event, unsigned version, bool keep_alive);

  ApiContext ctx_;

  // The connection's strand.
  asio::any_io_executor executor() { return tcp().get_executor(); }

 private:
  beast::tcp_stream& tcp() {
    return stream_.index() == 0 ? std::get<0>(stream_) : beast::get_lowest_layer(std::get<1>(stream_));
  }
  std::variant<beast::tcp_stream, beast::ssl_stream<beast::tcp_stream>> stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<void> in_flight_;  // the response being written
};

// Builds a JSON answer (any text in `body` made valid UTF-8 first).
StringResponse make_json(http::status status, const nlohmann::json& body, unsigned version, bool keep_alive);
StringResponse make_error(const Status& s, unsigned version, bool keep_alive,
                          http::status status = http::status::unknown);

}  // namespace loom::server::internal
