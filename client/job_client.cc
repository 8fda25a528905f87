#include "client/job_client.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "graph/sha256.h"
#include "graph/validate.h"
#include "client/download.h"
#include "client/event_stream.h"
#include "client/status_display.h"
#include "transport/base64.h"

namespace loom::client {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// Decompressed results written to a file are not held in memory; the bound
// only stops a runaway frame from filling the disk.
constexpr uint64_t kMaxResultFileBytes = 64ull << 30;

std::string url_encode(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

json parse_object(const HttpResponse& resp, const std::string& what) {
  json j = json::parse(resp.body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    throw LoomError(StatusCode::kInternal,
                    what + ": the server's answer is not a JSON object: " + resp.body.substr(0, 200));
  }
  return j;
}

Result<JobStatus> status_from_json(const json& j, std::string raw) {
  if (!j.is_object()) return invalid_argument("a job snapshot must be a JSON object");
  try {
    JobStatus st;
    st.id = j.value("id", "");
    st.state_name = j.value("state", "");
    if (st.id.empty() || st.state_name.empty()) return invalid_argument("a job snapshot needs \"id\" and \"state\"");
    st.state = parse_job_state(st.state_name);
    st.model = j.value("model", "");
    st.created_at = j.value("created_at", "");
    st.updated_at = j.value("updated_at", "");
    if (j.contains("queue_position") && j["queue_position"].is_number_integer()) {
      st.queue_position = j["queue_position"].get<int64_t>();
    }
    if (j.contains("error") && j["error"].is_object()) {
      const json& code = j["error"].contains("code") ? j["error"]["code"] : json();
      st.error_code = code.is_string() ? transport::parse_status_code(code.get<std::string>()).value_or(StatusCode::kInternal)
                                       : StatusCode::kInternal;
      st.error_message = j["error"].value("message", "");
    }
    st.result_url = j.value("result_url", "");
    st.result_size = j.value("result_size", uint64_t{0});
    st.result_sha256 = j.value("result_sha256", "");
    st.json = raw.empty() ? j.dump() : std::move(raw);
    return st;
  } catch (const json::exception& e) {
    return invalid_argument(std::string("malformed job snapshot: ") + e.what());
  }
}

JobStatus status_or_throw(const json& j, const std::string& raw, const std::string& what) {
  auto st = status_from_json(j, raw);
  if (!st.ok()) throw LoomError(StatusCode::kInternal, what + ": " + st.status().message());
  return std::move(st).value();
}

std::string still_running(const JobStatus& st, std::chrono::milliseconds waited) {
  return "job " + st.id + " is still " + (st.state_name.empty() ? "running" : st.state_name) + " after " +
         format_duration_ms(waited.count()) + "; it keeps running on the server: reattach with `loom wait " +
         st.id + "` (Client::attach) or stop it with `loom cancel " + st.id + "`";
}

Clock::time_point deadline_after(std::chrono::milliseconds timeout) {
  return timeout.count() > 0 ? Clock::now() + timeout : Clock::time_point::max();
}

// Appends to "PATH.part"; reset() truncates it.
class FileSink : public internal::ByteSink {
 public:
  explicit FileSink(std::string path) : path_(std::move(path)) { open(std::ios::app); }
  void write(std::string_view data) override {
    out_.write(data.data(), static_cast<std::streamsize>(data.size()));
    if (!out_) throw LoomError(StatusCode::kInternal, "writing " + path_ + " failed (disk full?)");
  }
  void reset() override {
    out_.close();
    open(std::ios::trunc);
  }
  void close() {
    out_.close();
    if (!out_) throw LoomError(StatusCode::kInternal, "writing " + path_ + " failed (disk full?)");
  }

 private:
  void open(std::ios::openmode mode) {
    out_.open(path_, std::ios::binary | std::ios::out | mode);
    if (!out_) throw ValidationError("cannot write " + path_ + ": check the directory exists and is writable");
  }
  std::string path_;
  std::ofstream out_;
};

}  // namespace

void throw_if_failed(const JobStatus& st) {
  if (st.state == JobState::kError) {
    throw RemoteError(st.error_code == StatusCode::kOk ? StatusCode::kInternal : st.error_code, st.id,
                      st.error_message);
  }
  if (st.state == JobState::kCancelled) {
    throw CancelledError("job " + st.id + " was cancelled" +
                         (st.error_message.empty() ? "" : ": " + st.error_message));
  }
}

Result<JobStatus> parse_job_status(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  return status_from_json(j, text);
}

void check_job_id(const std::string& id) {
  bool ok = !id.empty() && id.size() <= 128 &&
            std::all_of(id.begin(), id.end(), [](unsigned char c) { return std::isalnum(c) || c == '-' || c == '_'; });
  if (!ok) throw ValidationError("\"" + id.substr(0, 140) + "\" is not a job ID (expected letters, digits, '-', '_')");
}

JobClient::JobClient(ClientOptions options) : options_(std::move(options)) {
  if (options_.host.empty()) {
    if (const char* h = std::getenv("LOOM_HOST")) options_.host = h;
  }
  if (options_.api_key.empty()) {
    if (const char* k = std::getenv("LOOM_API_KEY")) options_.api_key = k;
  }
  if (options_.host.empty()) {
    throw ConnectionError("no loom server given: set LOOM_HOST=http://HOST:PORT (or pass --host / ClientOptions::host)");
  }
  auto ep = parse_base_url(options_.host);
  if (!ep.ok()) throw ConnectionError("bad server address: " + ep.status().message());
  endpoint_ = *ep;
  if (options_.api_key.empty()) {
    throw AuthError("no API key given: set LOOM_API_KEY (or pass --api-key / ClientOptions::api_key); an operator "
                    "creates keys with `loom-server keys create NAME --data-dir DIR` on the server");
  }
  if (options_.ca_file.empty()) {
    if (const char* f = std::getenv("LOOM_CA_FILE")) options_.ca_file = f;
  }
  // LOOM_SUBMIT_WAIT_MS sets both submit waits; 0 follows every blocking run
  // over the WebSocket, so the status line shows each state (QUEUED,
  // LOADING, ...) even of short jobs.
  if (const char* w = std::getenv("LOOM_SUBMIT_WAIT_MS")) {
    char* end = nullptr;
    const long ms = std::strtol(w, &end, 10);
    if (end == w || *end != '\0' || ms < 0 || ms > 600000) {
      throw ValidationError("LOOM_SUBMIT_WAIT_MS must be 0..600000 milliseconds, not \"" +
                            std::string(w).substr(0, 40) + "\"");
    }
    options_.submit_wait = options_.quiet_submit_wait = std::chrono::milliseconds(ms);
  }
  transport::HttpClientOptions ho;
  ho.connect_timeout = options_.timeout;
  ho.io_timeout = options_.timeout;
  ho.ca_file = options_.ca_file;
  http_ = std::make_unique<HttpClient>(endpoint_, ho);
}

HttpResponse JobClient::call(const std::string& method, const std::string& target, std::string body,
                          const std::string& content_type) {
  HttpRequest r;
  r.method = method;
  r.target = target;
  r.headers = {{"Authorization", "Bearer " + options_.api_key},
               {transport::kProtocolHeader, std::to_string(transport::kProtocolVersion)},
               {"Accept", "application/json"}};
  if (!content_type.empty()) r.headers.emplace_back("Content-Type", content_type);
  r.body = std::move(body);
  try {
    return http_->request(r);
  } catch (const transport::HttpError& e) {
    throw_status(e.status());
  }
}

HttpResponse JobClient::expect_ok(const std::string& method, const std::string& target, std::string body,
                               const std::string& content_type) {
  HttpResponse resp = call(method, target, std::move(body), content_type);
  if (!resp.ok()) throw_http_error({resp.status, resp.body, resp.header("Retry-After"), method + " " + target});
  return resp;
}

const ServerEnv& JobClient::env() {
  if (env_) return *env_;
  json j = parse_object(expect_ok("GET", "/v1/env"), "GET /v1/env");
  ServerEnv e;
  try {
    e.server_version = j.value("server_version", "");
    e.protocol_version = j.value("protocol_version", 0u);
    int64_t port = j.value("websocket_port", int64_t{0});
    if (port <= 0 || port > 65535) {
      throw LoomError(StatusCode::kInternal, "GET /v1/env: websocket_port " + std::to_string(port) + " is not a port");
    }
    e.websocket_port = static_cast<uint16_t>(port);
    if (j.contains("max_frame_bytes") && j["max_frame_bytes"].is_number_unsigned()) {
      e.max_frame_bytes = j["max_frame_bytes"].get<uint64_t>();
    }
  } catch (const json::exception& ex) {
    throw LoomError(StatusCode::kInternal, std::string("GET /v1/env: malformed answer: ") + ex.what());
  }
  if (e.protocol_version != transport::kProtocolVersion) {
    throw VersionError("the server at " + endpoint_.to_string() + " (loom-server " + e.server_version +
                       ") speaks protocol version " + std::to_string(e.protocol_version) +
                       ", this client speaks " + std::to_string(transport::kProtocolVersion) +
                       ": use a client and server of the same protocol version");
  }
  env_ = e;
  return *env_;
}

std::vector<ModelInfo> JobClient::models() {
  json j = parse_object(expect_ok("GET", "/v1/models"), "GET /v1/models");
  std::vector<ModelInfo> out;
  if (!j.contains("models") || !j["models"].is_array()) {
    throw LoomError(StatusCode::kInternal, "GET /v1/models: the answer has no \"models\" list");
  }
  for (const auto& m : j["models"]) {
    if (!m.is_object()) continue;
    out.push_back({m.value("key", ""), m.value("kind", ""), m.value("device", "")});
  }
  return out;
}

std::pair<ModelInfo, std::vector<std::string>> JobClient::describe_model(const std::string& key) {
  if (key.empty()) throw ValidationError("empty model key: `loom models` lists the server's models");
  const std::string target = "/v1/models/" + url_encode(key);
  HttpResponse resp = call("GET", target);
  if (resp.status == 404) {
    std::string have;
    for (const auto& m : models()) have += (have.empty() ? "" : ", ") + m.key;
    throw NotFoundError("the server at " + endpoint_.to_string() + " has no model \"" + key + "\"" +
                        (have.empty() ? " (it has none)" : "; it has: " + have));
  }
  if (!resp.ok()) throw_http_error({resp.status, resp.body, resp.header("Retry-After"), "GET " + target});
  json j = parse_object(resp, "GET " + target);
  if (!j.contains("modules") || !j["modules"].is_array()) {
    throw LoomError(StatusCode::kInternal, "GET " + target + ": the answer has no \"modules\" list");
  }
  std::vector<std::string> modules;
  for (const auto& m : j["modules"]) {
    if (m.is_string()) modules.push_back(m.get<std::string>());
  }
  return {ModelInfo{j.value("key", key), j.value("kind", ""), j.value("device", "")}, std::move(modules)};
}

std::string JobClient::submit(const transport::JobRequest& request) { return post_job(request, 0).value("job_id", ""); }

json JobClient::post_job(const transport::JobRequest& request, int64_t wait_ms) {
  JobStatus unused;
  return post_job(request, wait_ms, false, unused);
}

namespace {
// What the server would refuse anyway, said before sending.
void check_request(const transport::JobRequest& request) {
  if (request.model_key.empty()) throw ValidationError("the request names no model");
  if (request.invokes.empty()) throw ValidationError("the request has no inputs: give the trace inputs or invoke()");
  if (request.invokes.size() != request.graph.invokes) {
    throw ValidationError("the request has " + std::to_string(request.invokes.size()) + " invokes of inputs but its graph " +
                          std::to_string(request.graph.invokes));
  }
  Status valid = graph::validate(request.graph);
  if (!valid.ok()) throw ValidationError(valid.message());
}
}  // namespace

graph::ScanReport JobClient::scan(const transport::JobRequest& request) {
  check_request(request);
  env();
  HttpResponse resp =
      expect_ok("POST", "/v1/jobs?scan=1", transport::encode_request(request), "application/x-loom-request");
  auto report = graph::scan_report_from_json(parse_object(resp, "POST /v1/jobs?scan=1"));
  if (!report.ok()) throw LoomError(StatusCode::kInternal, "POST /v1/jobs?scan=1: " + report.status().message());
  return std::move(report).value();
}

json JobClient::post_job(const transport::JobRequest& request, int64_t wait_ms, bool raw_result,
                         JobStatus& completed) {
  check_request(request);
  env();  // refuses a server of another protocol version with a message that says so
  std::string target = "/v1/jobs";
  if (wait_ms > 0) target += "?wait_ms=" + std::to_string(wait_ms) + (raw_result ? "&inline=raw" : "");
  HttpResponse resp = expect_ok("POST", target, transport::encode_request(request), "application/x-loom-request");
  if (raw_result && resp.header("Content-Type") == "application/zstd") {
    // COMPLETED in time: the body is the compressed result (PROTOCOL.md).
    completed.id = resp.header("X-Loom-Job-Id");
    check_job_id(completed.id);
    completed.state = JobState::kCompleted;
    completed.state_name = job_state_name(JobState::kCompleted);
    completed.result_url = resp.header("X-Loom-Result-Url");
    completed.result_sha256 = resp.header("X-Loom-Result-Sha256");
    completed.result_size = resp.body.size();
    completed.result_inline = std::move(resp.body);
    return json{{"job_id", completed.id}, {"state", completed.state_name},
                {"deduplicated", resp.header("X-Loom-Deduplicated") == "true"}};
  }
  json j = parse_object(resp, "POST /v1/jobs");
  std::string id = j.value("job_id", "");
  if (id.empty()) throw LoomError(StatusCode::kInternal, "POST /v1/jobs: the answer has no job_id: " + resp.body);
  check_job_id(id);
  return j;
}

JobStatus JobClient::status(const std::string& job_id) {
  check_job_id(job_id);
  const std::string target = "/v1/jobs/" + job_id;
  HttpResponse resp = expect_ok("GET", target);
  return status_or_throw(parse_object(resp, "GET " + target), resp.body, "GET " + target);
}

JobStatus JobClient::cancel(const std::string& job_id) {
  check_job_id(job_id);
  const std::string target = "/v1/jobs/" + job_id;
  HttpResponse resp = expect_ok("DELETE", target);
  return status_or_throw(parse_object(resp, "DELETE " + target), resp.body, "DELETE " + target);
}

std::vector<JobStatus> JobClient::jobs() {
  json j = parse_object(expect_ok("GET", "/v1/jobs"), "GET /v1/jobs");
  if (!j.contains("jobs") || !j["jobs"].is_array()) {
    throw LoomError(StatusCode::kInternal, "GET /v1/jobs: the answer has no \"jobs\" list");
  }
  std::vector<JobStatus> out;
  for (const auto& s : j["jobs"]) out.push_back(status_or_throw(s, "", "GET /v1/jobs"));
  return out;
}

JobStatus JobClient::wait_for(const std::string& job_id, std::chrono::milliseconds poll_interval,
                           const std::function<void(const JobStatus&)>& on_poll, std::chrono::milliseconds timeout) {
  const auto start = Clock::now();
  const auto deadline = deadline_after(timeout);
  poll_interval = std::max(poll_interval, std::chrono::milliseconds(10));
  for (;;) {
    JobStatus st = status(job_id);
    if (on_poll) on_poll(st);
    if (st.terminal()) {
      throw_if_failed(st);
      return st;
    }
    auto now = Clock::now();
    if (now >= deadline) {
      throw TimeoutError(still_running(st, std::chrono::duration_cast<std::chrono::milliseconds>(now - start)));
    }
    std::this_thread::sleep_for(std::min<Clock::duration>(poll_interval, deadline - now));
  }
}

StatusDisplay JobClient::make_display(const WaitOptions& options) const {
  StatusDisplayOptions so;
  so.out = options_.status_out;
  so.verbose = options.verbose || options_.verbose;
  so.quiet = options.quiet || options_.quiet;
  return StatusDisplay(so);
}

JobStatus JobClient::poll_until_end(const std::string& job_id, const WaitOptions& options, StatusDisplay* display,
                                 Clock::time_point deadline) {
  const auto start = Clock::now();
  for (;;) {
    JobStatus st = status(job_id);
    if (st.terminal()) {
      if (display) display->finish(st.state_name, st.error_message);
      return st;
    }
    if (display) display->on_state(st.state_name, st.queue_position);
    auto next = Clock::now() + options_.poll_interval;
    while (Clock::now() < next) {
      if (Clock::now() >= deadline) {
        throw TimeoutError(
            still_running(st, std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start)));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (display) display->tick();
    }
  }
}

JobStatus JobClient::follow(const std::string& job_id, const WaitOptions& options, StatusDisplay& display,
                             const StreamAnswer& answer) {
  check_job_id(job_id);
  const auto start = Clock::now();
  const auto deadline = deadline_after(options.timeout);
  EventStreamOptions eo;
  eo.endpoint = {endpoint_.host, env().websocket_port, endpoint_.tls};
  eo.ca_file = options_.ca_file;
  eo.api_key = options_.api_key;
  eo.job_id = job_id;
  eo.handshake_timeout = options_.timeout;
  // Accept what the server may send: a STREAM value at its own limit.
  eo.max_message_bytes = std::max(eo.max_message_bytes, env().max_frame_bytes);
  EventStream events(eo);
  events.start();

  JobStatus last;
  last.id = job_id;
  for (;;) {
    auto now = Clock::now();
    if (now >= deadline) {
      events.stop();
      throw TimeoutError(still_running(last, std::chrono::duration_cast<std::chrono::milliseconds>(now - start)));
    }
    json ev;
    auto got = events.next(ev, std::min<std::chrono::milliseconds>(
                                   std::chrono::milliseconds(100),
                                   std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now)));
    if (got == EventStream::Next::kTimeout) {
      display.tick();
      continue;
    }
    if (got == EventStream::Next::kEnded) {
      Status why = events.end_status();
      events.stop();
      switch (why.code()) {
        case StatusCode::kUnauthenticated:
        case StatusCode::kPermissionDenied: throw AuthError(why.message(), why.code());
        case StatusCode::kNotFound: throw NotFoundError(why.message());
        case StatusCode::kFailedPrecondition: throw VersionError(why.message());
        default: break;
      }
      // The socket is gone for good (or spoke nonsense): the REST snapshot
      // still tells how the job ends.
      return poll_until_end(job_id, options, &display, deadline);
    }
    const transport::EventType type = transport::event_type_of(ev);
    if (type == transport::EventType::kStatus) {
      last.state_name = ev.value("state", "");
      last.state = parse_job_state(last.state_name);
      last.queue_position = -1;
      if (ev.contains("queue_position") && ev["queue_position"].is_number_integer()) {
        last.queue_position = ev["queue_position"].get<int64_t>();
      }
      std::map<std::string, int64_t> elapsed;
      if (ev.contains("elapsed_ms") && ev["elapsed_ms"].is_object()) {
        for (const auto& [k, v] : ev["elapsed_ms"].items()) {
          if (v.is_number_integer()) elapsed[k] = v.get<int64_t>();
        }
      }
      double progress = -1;
      if (ev.contains("progress") && ev["progress"].is_number()) {
        const double p = ev["progress"].get<double>();
        if (p >= 0 && p <= 1) progress = p;
      }
      display.on_state(last.state_name, last.queue_position, elapsed, progress);
    } else if (type == transport::EventType::kLog) {
      std::string text = ev.value("text", ""), value = ev.value("value", "");
      display.on_log(text, value);
      if (options.on_log) options.on_log(text, value);
    } else if (type == transport::EventType::kToken) {
      TokenEvent t;
      if (ev.contains("step") && ev["step"].is_number_integer()) t.step = ev["step"].get<int64_t>();
      if (ev.contains("elapsed_ms") && ev["elapsed_ms"].is_number_integer()) t.elapsed_ms = ev["elapsed_ms"].get<int64_t>();
      if (ev.contains("tokens") && ev["tokens"].is_array()) {
        for (const json& id : ev["tokens"]) {
          if (id.is_number_integer()) t.tokens.push_back(id.get<int64_t>());
        }
      }
      display.on_token(t.step, t.elapsed_ms);
      if (options.on_token) options.on_token(t);
    } else if (transport::is_terminal(type)) {
      apply_terminal_event(ev, last, display);
      break;
    } else if (type == transport::EventType::kStream) {
      if (!answer) {
        display.on_log("waiting for stream callback \"" + ev.value("callback", std::string()) + "\"",
                       "answered by the client that has its handler");
        continue;
      }
      std::string reply = answer(ev);
      if (!reply.empty()) events.send(std::move(reply), /*binary=*/true);
    } else if (type == transport::EventType::kRejected) {
      display.on_log("the server rejected a stream reply", ev.value("message", std::string()));
    }
    // Other types: a newer server's additions; nothing to do.
  }
  events.stop();
  return last;
}

JobStatus JobClient::wait(const std::string& job_id, const WaitOptions& options) {
  StatusDisplay display = make_display(options);
  display.set_job(job_id);
  JobStatus st = follow(job_id, options, display);
  throw_if_failed(st);
  return st;
}

std::string JobClient::fetch_compressed(JobStatus& st, StatusDisplay* display) {
  if (!st.result_inline.empty()) {
    if (st.result_inline.size() == st.result_size && sha256_hex(st.result_inline) == st.result_sha256) {
      return st.result_inline;
    }
    st.result_inline.clear();  // damaged on the way: download it instead
  }
  if (st.result_size > options_.max_result_bytes) {
    throw LoomError(StatusCode::kResourceExhausted,
                    "the result of job " + st.id + " is " + format_bytes(st.result_size) +
                        " compressed, over the client's in-memory limit (ClientOptions::max_result_bytes, " +
                        format_bytes(options_.max_result_bytes) +
                        "): save it to a file with `loom result " + st.id + " -o FILE` (JobClient::download_result)");
  }
  std::string bytes;
  bytes.reserve(st.result_size);
  internal::StringSink sink(&bytes);
  auto hash = std::make_unique<Sha256>();
  internal::DownloadSpec spec;
  spec.job_id = st.id;
  spec.url = st.result_url;
  spec.size = st.result_size;
  spec.sha256 = st.result_sha256;
  spec.max_attempts = options_.max_download_attempts;
  if (display) display->download_started(st.result_size);
  internal::download(
      *http_, spec, sink, hash, [&] { return status(st.id).result_url; },
      [&](uint64_t n) {
        if (display) display->download_progress(n);
      });
  if (display) display->download_finished();
  return bytes;
}

uint64_t JobClient::download_result(const std::string& job_id, const std::string& path, bool compressed) {
  namespace fs = std::filesystem;
  JobStatus st = status(job_id);
  if (!st.terminal()) {
    throw LoomError(StatusCode::kFailedPrecondition, "job " + job_id + " is " + st.state_name +
                                                         ": wait for it first (`loom wait " + job_id + "`)");
  }
  throw_if_failed(st);
  const std::string part = path + ".part";
  // A .part from an earlier, interrupted call resumes where it stopped.
  std::error_code ec;
  uint64_t have = fs::exists(part, ec) ? fs::file_size(part, ec) : 0;
  if (ec || have > st.result_size) {
    fs::remove(part, ec);
    have = 0;
  }
  auto hash = std::make_unique<Sha256>();
  if (have > 0) {
    std::ifstream in(part, std::ios::binary);
    std::vector<char> buf(256 << 10);
    uint64_t left = have;
    while (left > 0 && in) {
      in.read(buf.data(), static_cast<std::streamsize>(std::min<uint64_t>(left, buf.size())));
      size_t n = static_cast<size_t>(in.gcount());
      if (n == 0) break;
      hash->update(std::string_view(buf.data(), n));
      left -= n;
    }
    if (left != 0) throw LoomError(StatusCode::kInternal, "reading " + part + " failed");
  }
  StatusDisplay display = make_display({});
  {
    FileSink sink(part);
    internal::DownloadSpec spec;
    spec.job_id = job_id;
    spec.url = st.result_url;
    spec.size = st.result_size;
    spec.sha256 = st.result_sha256;
    spec.offset = have;
    spec.max_attempts = options_.max_download_attempts;
    display.download_started(st.result_size);
    if (have > 0) display.download_progress(have);
    internal::download(
        *http_, spec, sink, hash, [&] { return status(job_id).result_url; },
        [&](uint64_t n) { display.download_progress(n); });
    sink.close();
    display.download_finished();
  }
  if (compressed) {
    fs::rename(part, path, ec);
    if (ec) throw LoomError(StatusCode::kInternal, "renaming " + part + " to " + path + ": " + ec.message());
    return st.result_size;
  }
  const std::string tmp = path + ".tmp";
  uint64_t n = internal::decompress_file(part, tmp, kMaxResultFileBytes);
  fs::rename(tmp, path, ec);
  if (ec) throw LoomError(StatusCode::kInternal, "renaming " + tmp + " to " + path + ": " + ec.message());
  fs::remove(part, ec);
  return n;
}

void apply_terminal_event(const json& ev, JobStatus& st, StatusDisplay& display) {
  using transport::EventType;
  const EventType type = transport::event_type_of(ev);
  st.queue_position = -1;
  if (type == EventType::kCompleted) {
    st.state = JobState::kCompleted;
    st.state_name = job_state_name(st.state);
    st.result_url = ev.value("result_url", "");
    st.result_size = ev.value("result_size", uint64_t{0});
    st.result_sha256 = ev.value("result_sha256", "");
    if (ev.contains("result_inline") && ev["result_inline"].is_string()) {
      auto bytes = transport::base64_decode(ev["result_inline"].get<std::string>());
      if (bytes.ok()) st.result_inline = std::move(bytes).value();  // else: downloaded instead
    }
    display.finish(st.state_name, ev.value("deduplicated", false)
                                      ? "an identical request had run before; its stored result is reused"
                                      : "");
    return;
  }
  st.state = type == EventType::kError ? JobState::kError : JobState::kCancelled;
  st.state_name = job_state_name(st.state);
  const StatusCode fallback = type == EventType::kError ? StatusCode::kInternal : StatusCode::kCancelled;
  st.error_code = ev.contains("code") && ev["code"].is_string()
                      ? transport::parse_status_code(ev["code"].get<std::string>()).value_or(fallback)
                      : fallback;
  st.error_message = ev.value("message", "");
  display.finish(st.state_name, st.error_message);
}

JobClient::~JobClient() = default;

}  // namespace loom::client
