// loom-server's HTTP routes: the table and one handler per route.
#include <fcntl.h>

#include <algorithm>

#include "server/file_range_body.h"
#include "server/internal/http_session.h"
#include "server/openapi.h"
#include "transport/http_range.h"
#include "transport/internal/printable.h"
#include "transport/presign.h"
#include "transport/wire.h"

namespace loom::server::internal {

using json = nlohmann::json;

namespace {

// Longest a POST /v1/jobs?wait_ms=N holds its answer: longer jobs are
// followed over the WebSocket, with their queue position and LOG events.
constexpr int64_t kMaxSubmitWaitMs = 10000;
// How long DELETE of a running job waits for it to stop at its next hook
// point, so the answer says CANCELLED.
constexpr int64_t kCancelWaitMs = 5000;

Status no_job(const std::string& id) {
  return not_found("no job \"" + transport::internal::printable(id, 80) + "\" for this API key");
}

StringResponse plain_text(const Call& call, std::string body, const char* type) {
  StringResponse res{http::status::ok, call.version()};
  res.set(http::field::server, kServerVersion);
  res.set(http::field::content_type, type);
  res.body() = std::move(body);
  res.keep_alive(call.keep_alive());
  res.prepare_payload();
  return res;
}

}  // namespace

Session::Handler Session::handler_of(RouteId id) {
  switch (id) {
    case RouteId::kHealthz: return &Session::healthz;
    case RouteId::kMetrics: return &Session::metrics;
    case RouteId::kOpenApi: return &Session::openapi;
    case RouteId::kEnv: return &Session::env;
    case RouteId::kBlob: return &Session::download_blob;
    case RouteId::kSubmit: return &Session::submit_job;
    case RouteId::kListJobs: return &Session::list_jobs;
    case RouteId::kGetJob: return &Session::get_job;
    case RouteId::kCancelJob: return &Session::cancel_job;
    case RouteId::kListModels: return &Session::list_models;
    case RouteId::kGetModel: return &Session::get_model;
    case RouteId::kCreateVariant: return &Session::create_variant;
  }
  return &Session::healthz;  // unreachable: every id is listed
}

void Session::healthz(Call& call) {
  send(plain_text(call, ctx_.service.draining() ? "draining\n" : "ok\n", "text/plain"));
}

void Session::metrics(Call& call) {
  send(plain_text(call, ctx_.metrics.render(ctx_.service.queue_depth()), "text/plain; version=0.0.4"));
}

void Session::openapi(Call& call) { send_json(call, http::status::ok, openapi_document(kServerVersion)); }

void Session::env(Call& call) {
  send_json(call, http::status::ok,
            json{{"server_version", kServerVersion},
                 {"protocol_version", transport::kProtocolVersion},
                 {"websocket_port", *ctx_.ws_port},
                 // A STREAM frame: the tensors at their limit, the JSON header and its length prefix.
                 {"max_frame_bytes", ctx_.service.options().max_stream_bytes + (1 << 20)}});
}

void Session::list_jobs(Call& call) { send_result(call, ctx_.service.list(call.owner)); }

void Session::get_job(Call& call) {
  const std::string& id = call.params["id"];
  if (!is_job_id(id)) return send_error(call, no_job(id));
  send_result(call, ctx_.service.snapshot(call.owner, id));
}

void Session::list_models(Call& call) { send_json(call, http::status::ok, ctx_.service.models_json()); }

// POST /v1/models/{key}/variants?name=NAME[&shared=1]: a persistent edit (server/variants.h).
void Session::create_variant(Call& call) {
  const std::string& key = call.params["key"];
  if (!is_model_key(key)) {
    return send_error(call, not_found("unknown model \"" + transport::internal::printable(key, 80) + "\""));
  }
  const std::string name = query_text(call.query, "name", 64).value_or("");
  auto made = ctx_.service.create_variant(call.owner, key, name, query_flag(call.query, "shared=1"), call.req.body());
  if (!made.ok()) return send_error(call, made.status());
  send_json(call, http::status::created, *made);
}

void Session::get_model(Call& call) {
  const std::string& key = call.params["key"];
  if (!is_model_key(key)) {
    return send_error(call, not_found("unknown model \"" + transport::internal::printable(key, 80) + "\""));
  }
  send_result(call, ctx_.service.model_json(key));
}

void Session::cancel_job(Call& call) {
  const std::string id = call.params["id"];
  if (!is_job_id(id)) return send_error(call, no_job(id));
  auto r = ctx_.service.cancel(call.owner, id);
  if (!r.ok() || r->value("state", "") != job_state_name(JobState::kRunning)) return send_result(call, r);
  // Running: it stops at its next hook point; answer once it has.
  auto w = std::make_shared<JobEndWait>(executor());
  w->job_id = id;
  w->reads_store_on_event = true;
  w->subscription = ctx_.service.subscribe(id, end_listener(w));
  const unsigned v = call.version();
  const bool ka = call.keep_alive();
  w->then = [this, owner = call.owner, id, v, ka](const char*, const JobEvent*) {
    auto snap = ctx_.service.snapshot(owner, id);
    if (!snap.ok()) return send(make_error(snap.status(), v, ka));
    send(make_json(http::status::ok, *snap, v, ka));
  };
  arm(w, kCancelWaitMs, /*subscribed_late=*/true);
}

void Session::submit_job(Call& call) {
  // ?wait_ms=N: answer when the job ends or N ms pass, whichever first, so
  // a short job needs no WebSocket (the answer carries its terminal event);
  // &inline=raw: a COMPLETED answer is the compressed result itself.
  // ?scan=1: a dry run on shapes only, answered at once; nothing is queued.
  if (query_flag(call.query, "scan=1")) {
    auto scanned = ctx_.service.scan(call.owner, call.req.body());
    if (!scanned.ok()) return send_error(call, scanned.status());
    return send_json(call, http::status::ok, *scanned);
  }
  const bool raw = query_flag(call.query, "inline=raw");
  const int64_t wait_ms = std::min<int64_t>(query_number(call.query, "wait_ms", 6).value_or(0), kMaxSubmitWaitMs);
  std::shared_ptr<JobEndWait> waiter;
  JobService::Listener listener;
  if (wait_ms > 0) {
    waiter = std::make_shared<JobEndWait>(executor());
    listener = end_listener(waiter);
  }
  SubmitRefusal refusal;
  auto r = ctx_.service.submit(call.owner, call.req.body(), std::move(listener), &refusal);
  if (!r.ok()) {
    // A request id reused for another request is a conflict (409); a full
    // queue is worth retrying soon (429 + Retry-After); other limits are not (413).
    if (refusal.conflict) return send_error(call, r.status(), http::status::conflict);
    if (refusal.retry_after_s < 0) return send_error(call, r.status());
    StringResponse res = make_error(r.status(), call.version(), call.keep_alive(), http::status::too_many_requests);
    res.set(http::field::retry_after, std::to_string(refusal.retry_after_s));
    return send(std::move(res));
  }
  json answer = {{"job_id", r->job_id}, {"state", job_state_name(r->state)}, {"deduplicated", r->deduplicated}};
  if (!waiter || r->subscription == 0) return send_json(call, http::status::accepted, answer);
  waiter->job_id = r->job_id;
  waiter->subscription = r->subscription;
  const unsigned v = call.version();
  const bool ka = call.keep_alive();
  waiter->then = [this, answer = std::move(answer), v, ka, raw](const char* state, const JobEvent* event) mutable {
    if (event == nullptr) {  // still running (or ended before we looked): a plain answer
      auto now = ctx_.service.job_state(answer.value("job_id", ""));
      if (now.ok()) answer["state"] = job_state_name(*now);
      return send(make_json(http::status::accepted, answer, v, ka));
    }
    if (raw && event->inline_result && parse_job_state(state) == JobState::kCompleted) {
      return send_raw_result(answer, *event, v, ka);
    }
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
}

void Session::send_raw_result(const json& answer, const JobEvent& event, unsigned v, bool ka) {
  json ev = json::parse(event.json, nullptr, false);
  auto field = [&](const char* name) {
    return ev.is_object() && ev.contains(name) && ev[name].is_string() ? ev[name].get<std::string>() : std::string();
  };
  StringResponse res{http::status::ok, v};
  res.set(http::field::server, kServerVersion);
  res.set(http::field::content_type, "application/zstd");
  res.set("X-Loom-Job-Id", answer.value("job_id", ""));
  res.set("X-Loom-State", job_state_name(JobState::kCompleted));
  res.set("X-Loom-Deduplicated", answer.value("deduplicated", false) ? "true" : "false");
  res.set("X-Loom-Result-Size", std::to_string(event.inline_result->size()));
  res.set("X-Loom-Result-Sha256", field("result_sha256"));
  res.set("X-Loom-Result-Url", field("result_url"));
  res.keep_alive(ka);
  res.body() = *event.inline_result;
  res.prepare_payload();
  send(std::move(res));
}

void Session::download_blob(Call& call) {
  const StringRequest& req = call.req;
  JobService& svc = ctx_.service;
  const std::string path = std::string(req.target()).substr(0, std::string(req.target()).find('?'));
  int64_t now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  Status ok = transport::verify_presigned(svc.options().presign_secret, "GET", path, call.query, now);
  if (!ok.ok()) return send_error(call, ok, http::status::forbidden);
  const std::string& id = call.params["id"];
  if (!is_job_id(id)) return send_error(call, not_found("no blob " + transport::internal::printable(path, 120)));
  // Small results live in the job store, large ones in files (JobBlobs).
  std::optional<std::string> small = svc.blobs().small(BlobKind::kResult, id);
  int fd = -1;
  off_t size = 0;
  if (small) {
    size = static_cast<off_t>(small->size());
  } else {
    fd = ::open(svc.blobs().result_file(id).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return send_error(call, not_found("result of job " + id + " is no longer kept"));
    size = ::lseek(fd, 0, SEEK_END);
  }
  auto range_header = req.find(http::field::range);
  auto range = transport::parse_range(range_header == req.end() ? "" : std::string(range_header->value()),
                                      static_cast<uint64_t>(size));
  const unsigned v = call.version();
  const bool ka = call.keep_alive();
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

}  // namespace loom::server::internal
