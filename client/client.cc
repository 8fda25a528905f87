#include "client/client.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "client/internal/stream_answerer.h"
#include "client/event_stream.h"
#include "client/status_display.h"
#include "graph/edits.h"
#include "runtime/safetensors.h"
#include "transport/zstd_codec.h"

namespace loom::client {

using json = nlohmann::json;

WaitOptions wait_options(const RunOptions& options) {
  WaitOptions w;
  w.verbose = options.verbose;
  w.quiet = options.quiet;
  w.timeout = options.timeout;
  w.on_log = options.on_log;
  w.on_token = options.on_token;
  return w;
}

RemoteModel::RemoteModel(Client* client, ModelInfo info, std::vector<std::string> module_paths)
    : client_(client),
      info_(std::move(info)),
      module_paths_(std::make_shared<const std::vector<std::string>>(std::move(module_paths))) {}

Client::Client(ClientOptions options) : JobClient(std::move(options)) {}

Client::~Client() = default;

RemoteModel Client::model(const std::string& key) {
  const size_t at = key.find('@');
  auto [info, modules] = describe_model(key.substr(0, at));
  info.key = key;  // jobs name the variant; the server resolves it
  return RemoteModel(this, std::move(info), std::move(modules));
}

RemoteModel Client::create_variant(const std::string& key, const std::string& name, const graph::Graph& edit,
                                   bool shared) {
  Status valid = graph::check_edit(edit);
  if (!valid.ok()) throw ValidationError(valid.message());
  auto plain = [](const std::string& s, size_t max) {
    return !s.empty() && s.size() <= max && std::all_of(s.begin(), s.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
    });
  };
  if (!plain(key, 128)) throw ValidationError("a model key is 1-128 of A-Z a-z 0-9 . _ -");
  if (!plain(name, 64)) throw ValidationError("a variant name is 1-64 of A-Z a-z 0-9 . _ -");
  transport::JobRequest req;
  req.model_key = key;
  req.graph = edit;
  req.invokes = {{}};  // an edit carries no inputs
  env();
  expect_ok("POST", "/v1/models/" + key + "/variants?name=" + name + (shared ? "&shared=1" : ""),
            transport::encode_request(req), "application/x-loom-request");
  return model(key + "@" + name);
}

std::map<std::string, runtime::StreamFn> Client::handlers_for(const RunOptions& options) const {
  std::map<std::string, runtime::StreamFn> handlers = streams_;
  for (const auto& [name, fn] : options.streams) handlers[name] = fn;
  return handlers;
}

JobStatus Client::wait(const std::string& job_id, const RunOptions& options) {
  WaitOptions w = wait_options(options);
  StatusDisplay display = make_display(w);
  display.set_job(job_id);
  internal::StreamAnswerer answerer(handlers_for(options), options_.max_result_bytes);
  StreamAnswer answer;
  if (answerer.answers()) answer = [&answerer](const json& ev) { return answerer.answer(ev); };
  JobStatus st = follow(job_id, w, display, answer);
  throw_if_failed(st);
  return st;
}

namespace {

// Whether a blocking run may wait for its job in the submit call itself:
// not when the job streams to callbacks or sends LOG events, which come over
// the WebSocket.
// Waiting inside the submit answer skips the event stream: only for jobs
// whose events nobody needs to see live.
bool can_wait_in_submit(const transport::JobRequest& request, const RunOptions& options) {
  if (request.generation && options.on_token) return false;
  for (const auto& n : request.graph.nodes) {
    if (n.kind == graph::NodeKind::kStream || n.kind == graph::NodeKind::kLog) return false;
  }
  return true;
}

}  // namespace

runtime::TraceResult Client::decode_result(const JobStatus& st, const std::string& compressed) const {
  auto raw = transport::zstd_decompress(compressed, options_.max_result_bytes);
  if (!raw.ok()) {
    throw LoomError(raw.status().code(), "the result of job " + st.id + ": " + raw.status().message());
  }
  runtime::SafetensorsLimits limits;
  limits.max_total_bytes = options_.max_result_bytes;
  auto file = runtime::read_safetensors_buffer(*raw, limits);
  if (!file.ok()) {
    throw LoomError(StatusCode::kInternal, "the result of job " + st.id + ": " + file.status().message());
  }
  runtime::TraceResult result;
  result.saved = std::move(file->tensors);  // the server writes them in save order
  return result;
}

runtime::TraceResult Client::result(const std::string& job_id) {
  JobStatus st = status(job_id);
  if (!st.terminal()) {
    throw LoomError(StatusCode::kFailedPrecondition, "job " + job_id + " is " + st.state_name +
                                                         ": wait for it first (`loom wait " + job_id + "`)");
  }
  throw_if_failed(st);
  return decode_result(st, fetch_compressed(st, nullptr));
}

runtime::TraceResult Client::attach(const std::string& job_id, const RunOptions& options) {
  WaitOptions w = wait_options(options);
  StatusDisplay display = make_display(w);
  display.set_job(job_id);
  internal::StreamAnswerer answerer(handlers_for(options), options_.max_result_bytes);
  StreamAnswer answer;
  if (answerer.answers()) answer = [&answerer](const json& ev) { return answerer.answer(ev); };
  JobStatus st = follow(job_id, w, display, answer);
  throw_if_failed(st);
  if (st.result_url.empty() && st.result_inline.empty()) st = status(job_id);
  return decode_result(st, fetch_compressed(st, &display));
}

void Client::on_stream(const std::string& name, std::function<at::Tensor(const at::Tensor&)> fn) {
  streams_[name] = runtime::tensor_stream_fn(std::move(fn));
}

runtime::TraceResult Client::run_blocking(const transport::JobRequest& request, const RunOptions& options) {
  const bool quiet = options.quiet || options_.quiet;
  int64_t wait_ms = !can_wait_in_submit(request, options) ? 0
                    : quiet                               ? options_.quiet_submit_wait.count()
                                                          : options_.submit_wait.count();
  if (options.timeout.count() > 0) wait_ms = std::min<int64_t>(wait_ms, options.timeout.count());
  // The answer must come well inside the per-read network timeout.
  wait_ms = std::min<int64_t>(wait_ms, options_.timeout.count() / 2);
  JobStatus st;
  json answer = post_job(request, wait_ms, /*raw_result=*/true, st);
  std::string id = answer.value("job_id", "");
  if (options.on_submitted) options.on_submitted(id);
  const bool ended = st.state == JobState::kCompleted ||
                     (answer.contains("event") && answer["event"].is_object() &&
                      transport::is_terminal(transport::event_type_of(answer["event"])));
  if (!ended) return attach(id, options);  // still running: follow it over the WebSocket
  StatusDisplay display = make_display(wait_options(options));
  display.set_job(id);
  if (st.state == JobState::kCompleted) {  // the result came back as the answer
    display.finish(job_state_name(JobState::kCompleted), answer.value("deduplicated", false)
                                    ? "an identical request had run before; its stored result is reused"
                                    : "");
    return decode_result(st, fetch_compressed(st, &display));
  }
  st.id = id;
  apply_terminal_event(answer["event"], st, display);
  throw_if_failed(st);
  return decode_result(st, fetch_compressed(st, &display));
}

AsyncRun Client::run_async(const transport::JobRequest& request, const RunOptions& options) {
  std::string id = submit(request);
  if (options.on_submitted) options.on_submitted(id);
  ClientOptions co = options_;
  co.quiet = true;
  RunOptions ro = options;
  ro.quiet = true;
  for (const auto& [name, fn] : streams_) ro.streams.emplace(name, fn);  // the new Client has none
  ro.on_submitted = nullptr;
  AsyncRun run;
  run.job_id = id;
  run.result = std::async(std::launch::async, [co, ro, id]() {
    Client c(co);
    return c.attach(id, ro);
  });
  return run;
}

}  // namespace loom::client
