// The real loom-server process over loopback, tested at the wire level:
// HTTP and events through transport's own HttpClient and WebSocketClient
// with hand-built requests, webhooks into a Beast receiver
// (tests/server/loopback_clients.h). The client library is tested
// separately (tests/client); the API surface (optional protocol header,
// OpenAPI coverage, key revocation) in api_surface_test.cc.
//
// Two generated GPT-2 checkpoints: "tiny" (jobs take milliseconds) and "slow"
// (8 layers, 256 wide, run at kSlowBatch x kSlowSeq tokens: a job takes ~1 s
// on a 2-core machine, long enough to be caught QUEUED or RUNNING, and module
// calls ~50 ms apart, the cancellation granularity). Both models share the one
// "cpu" executor.
#include "tests/server/server_fixture.h"

namespace loom::testing {
namespace {

TEST_F(ServerTest, HealthzAndMetricsCountACompletedJob) {
  start();
  HttpResponse h = http_request(port_, "GET", "/healthz");
  EXPECT_EQ(h.status, 200) << h.describe();
  EXPECT_EQ(h.body, "ok\n");

  HttpResponse m0 = http_request(port_, "GET", "/metrics");
  ASSERT_EQ(m0.status, 200) << m0.describe();
  EXPECT_EQ(metric(m0.body, "loom_jobs_total{state=\"COMPLETED\"}"), 0) << m0.body;
  EXPECT_EQ(metric(m0.body, "loom_queue_depth"), 0) << m0.body;
  EXPECT_EQ(metric(m0.body, "loom_job_latency_seconds_count"), 0) << m0.body;
  EXPECT_GE(metric(m0.body, "loom_bytes_sent_total"), 0) << m0.body;

  std::string id = submit_ok(tiny_job(), key_a_);
  ASSERT_FALSE(id.empty());
  json snap = wait_terminal(id, key_a_);
  ASSERT_EQ(snap.value("state", ""), "COMPLETED") << snap.dump();

  HttpResponse m1 = http_request(port_, "GET", "/metrics");
  for (const char* state : {"RECEIVED", "QUEUED", "DISPATCHED", "RUNNING", "COMPLETED"}) {
    EXPECT_EQ(metric(m1.body, std::string("loom_jobs_total{state=\"") + state + "\"}"), 1) << state << "\n" << m1.body;
  }
  EXPECT_EQ(metric(m1.body, "loom_jobs_total{state=\"ERROR\"}"), 0);
  EXPECT_EQ(metric(m1.body, "loom_queue_depth"), 0);
  EXPECT_EQ(metric(m1.body, "loom_job_latency_seconds_count"), 1) << m1.body;
  EXPECT_EQ(metric(m1.body, "loom_job_latency_seconds_bucket{le=\"+Inf\"}"), 1) << m1.body;
  EXPECT_GT(metric(m1.body, "loom_job_latency_seconds_sum"), 0) << m1.body;
  double sent1 = metric(m1.body, "loom_bytes_sent_total");
  EXPECT_GT(sent1, metric(m0.body, "loom_bytes_sent_total"));

  HttpResponse result = http_request(port_, "GET", snap.value("result_url", ""));
  ASSERT_EQ(result.status, 200) << result.describe();
  HttpResponse m2 = http_request(port_, "GET", "/metrics");
  EXPECT_GE(metric(m2.body, "loom_bytes_sent_total") - sent1, static_cast<double>(result.body.size())) << m2.body;
}

TEST_F(ServerTest, RejectsMissingAndUnknownKeysAndHidesOtherKeysJobs) {
  start();
  expect_error(api("GET", "/v1/jobs", ""), 401, "UNAUTHENTICATED", {"loom-server keys create"});
  expect_error(submit(tiny_job(), ""), 401, "UNAUTHENTICATED", {"loom-server keys create"});
  expect_error(api("GET", "/v1/jobs", "not-a-key"), 401, "UNAUTHENTICATED", {"unknown API key", "loom-server keys create"});

  std::string id = submit_ok(tiny_job(), key_a_);
  ASSERT_FALSE(id.empty());
  // Key B sees nothing of A's job, whatever its state, and cannot cancel it.
  expect_error(api("GET", "/v1/jobs/" + id, key_b_), 404, "NOT_FOUND", {id});
  expect_error(api("DELETE", "/v1/jobs/" + id, key_b_), 404, "NOT_FOUND", {id});
  EventStreamOutcome ws = follow_job_events(websocket_port(), key_b_, id, 0, 10s);
  EXPECT_EQ(ws.handshake_status, 404) << ws.error;
  EXPECT_TRUE(ws.events.empty());
  EventStreamOutcome bad = follow_job_events(websocket_port(), "not-a-key", id, 0, 10s);
  EXPECT_EQ(bad.handshake_status, 401) << bad.error;
  json listed_b = api("GET", "/v1/jobs", key_b_).json();
  EXPECT_EQ(listed_b["jobs"].size(), 0u) << listed_b.dump();

  EXPECT_EQ(wait_terminal(id, key_a_).value("state", ""), "COMPLETED");
  json listed_a = api("GET", "/v1/jobs", key_a_).json();
  ASSERT_EQ(listed_a["jobs"].size(), 1u) << listed_a.dump();
  EXPECT_EQ(listed_a["jobs"][0].value("id", ""), id);
}

TEST_F(ServerTest, AcceptsAMissingProtocolHeaderAndRejectsAMismatchedOne) {
  start();
  HttpResponse missing = http_request(port_, "GET", "/v1/env", {{"Authorization", "Bearer " + key_a_}});
  ASSERT_EQ(missing.status, 200) << missing.describe();
  EXPECT_EQ(missing.json().value("protocol_version", 0), 1);
  HttpResponse other =
      http_request(port_, "POST", "/v1/jobs", {{"Authorization", "Bearer " + key_a_}, {"X-Loom-Protocol", "7"}}, tiny_job());
  expect_error(other, 400, "FAILED_PRECONDITION", {"protocol version 7", "version 1"});

  HttpResponse env = api("GET", "/v1/env", key_a_);
  ASSERT_EQ(env.status, 200) << env.describe();
  EXPECT_EQ(env.json().value("protocol_version", 0), 1);
  EXPECT_EQ(env.json().value("websocket_port", 0), server_->ws_port());
  EXPECT_EQ(api("GET", "/v1/jobs", key_a_).json()["jobs"].size(), 0u) << "the refused POST created a job";
}

TEST_F(ServerTest, AnswersBadInputWithJsonErrorsAndKeepsServing) {
  start({"--max-body-bytes", "4096"});
  std::string valid = tiny_job();
  ASSERT_LT(valid.size(), 4096u);

  expect_error(submit("this is not a loom request", key_a_), 400, "INVALID_ARGUMENT", {"zstd"});
  expect_error(submit(valid.substr(0, valid.size() / 2), key_a_), 400, "INVALID_ARGUMENT", {"zstd"});
  std::string garbage;
  for (int i = 0; i < 64; ++i) garbage += "garbage!";
  expect_error(submit(transport::zstd_compress(garbage), key_a_), 400, "INVALID_ARGUMENT", {"malformed request"});
  {
    // A well-formed request whose random constant makes the body too large.
    Builder b;
    b.output().index({Slice{}, -1}).save("logits");
    b.constant(runtime::to_tensor_data(at::rand({4096})).value());
    std::string big = job_body("tiny", b.graph(), token_ids(2, 6, 0));
    ASSERT_GT(big.size(), 4096u);
    expect_error(submit(big, key_a_), 413, "RESOURCE_EXHAUSTED", {"4096"});
  }
  expect_error(submit(job_body("no-such-model", Builder().graph(), token_ids(2, 6, 0)), key_a_), 404, "NOT_FOUND",
               {"no-such-model", "tiny", "slow"});
  {
    Builder b;
    b.output().save("logits");
    b.module("transformer.h.99").output(0).save("nope");
    expect_error(submit(job_body("tiny", b.graph(), token_ids(2, 6, 0)), key_a_), 400, "INVALID_ARGUMENT",
                 {"node ", "transformer.h.99"});
  }
  {
    Builder b;
    Value h = b.module("transformer.h.0").output(0);
    b.op("aten::fill_.Scalar", {h, 1.0}).save("filled");
    expect_error(submit(job_body("tiny", b.graph(), token_ids(2, 6, 0)), key_a_), 400, "INVALID_ARGUMENT",
                 {"node 1", "aten::fill_.Scalar"});
  }

  HttpResponse h = http_request(port_, "GET", "/healthz");
  EXPECT_EQ(h.status, 200) << h.describe();
  EXPECT_EQ(api("GET", "/v1/jobs", key_a_).json()["jobs"].size(), 0u) << "a refused request created a job";
  std::string id = submit_ok(valid, key_a_);
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(wait_terminal(id, key_a_).value("state", ""), "COMPLETED");
}

TEST_F(ServerTest, CompletedResultMatchesLocalRunBitwise) {
  start();
  Builder b;
  build_tiny_graph(b);
  at::Tensor ids = token_ids(2, 6, 5);
  std::string id = submit_ok(job_body("tiny", b.graph(), ids), key_a_);
  ASSERT_FALSE(id.empty());
  json snap = wait_terminal(id, key_a_);
  ASSERT_EQ(snap.value("state", ""), "COMPLETED") << snap.dump();
  EXPECT_EQ(snap.value("id", ""), id);
  EXPECT_EQ(snap.value("model", ""), "tiny");
  int64_t created = rfc3339_ms(snap.value("created_at", "")), updated = rfc3339_ms(snap.value("updated_at", ""));
  EXPECT_GT(created, 0) << snap.dump();
  EXPECT_GE(updated, created) << snap.dump();
  std::string url = snap.value("result_url", "");
  EXPECT_EQ(url.rfind("/v1/blobs/results/" + id + "?", 0), 0u) << url;
  std::string sha = snap.value("result_sha256", "");
  EXPECT_TRUE(std::regex_match(sha, std::regex("[0-9a-f]{64}"))) << sha;

  HttpResponse r = http_request(port_, "GET", url);  // no key: the signature is the credential
  ASSERT_EQ(r.status, 200) << r.describe();
  EXPECT_EQ(r.header("content-type"), "application/zstd");
  EXPECT_EQ(r.body.size(), snap.value("result_size", uint64_t{0}));
  EXPECT_EQ(sha256_hex(r.body), sha);
  auto st = transport::zstd_decompress(r.body, 1ull << 30);
  ASSERT_TRUE(st.ok()) << st.status().message();
  auto file = runtime::read_safetensors_buffer(*st);
  ASSERT_TRUE(file.ok()) << file.status().message();
  EXPECT_EQ(file->metadata["job_id"], id);
  EXPECT_EQ(file->metadata["model"], "tiny");
  EXPECT_EQ(file->metadata["graph_sha256"], graph::graph_checksum(b.graph()));

  auto model = runtime::load_model(models_->file("tiny"));
  ASSERT_TRUE(model.ok()) << model.status().message();
  auto local = runtime::execute(**model, b.graph(), {{ids}});
  ASSERT_TRUE(local.ok()) << local.status().message();
  ASSERT_EQ(file->tensors.size(), local->saved.size());
  for (const auto& want : local->saved) {
    at::Tensor got = file->find(want.name);
    ASSERT_TRUE(got.defined()) << want.name;
    EXPECT_EQ(got.scalar_type(), want.tensor.scalar_type()) << want.name;
    EXPECT_EQ(got.sizes(), want.tensor.sizes()) << want.name;
    EXPECT_TRUE(tensor_bytes(got) == tensor_bytes(want.tensor)) << want.name << " differs from the local run";
  }
}

TEST_F(ServerTest, SubmitCanWaitForTheEndAndAnswerWithTheEventOrTheRawResult) {
  start();
  // JSON: the terminal event as the WebSocket sends it, inline result included.
  HttpResponse waited = api("POST", "/v1/jobs?wait_ms=5000", key_a_, tiny_job(101));
  ASSERT_EQ(waited.status, 200) << waited.describe();
  json answer = waited.json();
  EXPECT_EQ(answer.value("state", ""), "COMPLETED");
  const std::string id = answer.value("job_id", "");
  ASSERT_TRUE(answer.contains("event")) << waited.body;
  EXPECT_EQ(answer["event"].value("type", ""), "COMPLETED");
  HttpResponse stored = http_request(port_, "GET", answer["event"].value("result_url", ""), {}, "");
  ASSERT_EQ(stored.status, 200);
  auto inline_bytes = transport::base64_decode(answer["event"].value("result_inline", ""));
  ASSERT_TRUE(inline_bytes.ok());
  EXPECT_TRUE(*inline_bytes == stored.body) << "result_inline differs from the stored result";
  EXPECT_EQ(api("GET", "/v1/jobs/" + id, key_a_).json().value("state", ""), "COMPLETED");

  // Raw: the compressed result is the body, the job's fields are headers.
  HttpResponse raw = api("POST", "/v1/jobs?wait_ms=5000&inline=raw", key_a_, tiny_job(102));
  ASSERT_EQ(raw.status, 200) << raw.describe();
  EXPECT_EQ(raw.header("content-type"), "application/zstd");
  EXPECT_EQ(raw.header("x-loom-state"), "COMPLETED");
  EXPECT_EQ(raw.header("x-loom-result-sha256"), sha256_hex(raw.body));
  json snap = api("GET", "/v1/jobs/" + raw.header("x-loom-job-id"), key_a_).json();
  EXPECT_EQ(snap.value("result_sha256", ""), sha256_hex(raw.body)) << snap.dump();

  // A job longer than the wait: the plain 202 answer.
  HttpResponse early = api("POST", "/v1/jobs?wait_ms=1", key_a_, slow_job(103));
  EXPECT_EQ(early.status, 202) << early.describe();
  EXPECT_FALSE(early.json().contains("event"));
  wait_terminal(early.json().value("job_id", ""), key_a_);
}

TEST_F(ServerTest, WebSocketReplaysEveryEventAndResumesAfterSeq) {
  start();
  std::string id = submit_ok(tiny_job(), key_a_);
  ASSERT_FALSE(id.empty());
  json snap = wait_terminal(id, key_a_);
  ASSERT_EQ(snap.value("state", ""), "COMPLETED");
  HttpResponse result = http_request(port_, "GET", snap.value("result_url", ""));
  ASSERT_EQ(result.status, 200);

  uint16_t ws_port = websocket_port();
  ASSERT_NE(ws_port, 0);
  EventStreamOutcome all = follow_job_events(ws_port, key_a_, id, 0);
  EXPECT_EQ(all.handshake_status, 101) << all.error;
  EXPECT_FALSE(all.timed_out) << "the server did not close the socket after COMPLETED";
  EXPECT_TRUE(all.closed);
  EXPECT_EQ(all.close_code, 1000);
  ASSERT_GE(all.events.size(), 5u);
  std::vector<std::string> states;
  for (size_t i = 0; i < all.events.size(); ++i) {
    const json& e = all.events[i];
    ASSERT_TRUE(e.is_object());
    EXPECT_EQ(e.value("seq", uint64_t{0}), i + 1) << e.dump();
    EXPECT_EQ(e.value("job_id", ""), id);
    EXPECT_GT(rfc3339_ms(e.value("time", "")), 0) << e.dump();
    if (e.value("type", "") == "STATUS") states.push_back(e.value("state", ""));
  }
  EXPECT_EQ(states, (std::vector<std::string>{"QUEUED", "DISPATCHED", "RUNNING"}));
  EXPECT_GE(event_time(all.events, "LOG"), 0) << "the graph's log node sent no LOG event";
  const json& last = all.events.back();
  EXPECT_EQ(last.value("type", ""), "COMPLETED");
  EXPECT_EQ(last.value("result_sha256", ""), snap.value("result_sha256", ""));
  EXPECT_EQ(last.value("result_size", uint64_t{0}), result.body.size());
  // Inline results ride on live events only; a replay points at result_url.
  EXPECT_FALSE(last.contains("result_inline")) << "the stored history holds the inline result";

  const uint64_t n = all.events.size(), k = n - 2;
  EventStreamOutcome rest = follow_job_events(ws_port, key_a_, id, k);
  EXPECT_TRUE(rest.closed && !rest.timed_out) << rest.error;
  ASSERT_EQ(rest.events.size(), 2u);
  EXPECT_EQ(rest.events[0].value("seq", uint64_t{0}), k + 1);
  EXPECT_EQ(rest.events[1], last);
}

// A follower that already saw the terminal event (say its socket dropped
// between the COMPLETED frame and the close) resumes with after=LAST: there is
// nothing left to send, and the protocol says the server closes after a
// terminal event, so the socket must close rather than stay open forever.
TEST_F(ServerTest, WebSocketResumedAfterTheTerminalEventIsClosed) {
  start();
  std::string id = submit_ok(tiny_job(), key_a_);
  ASSERT_FALSE(id.empty());
  ASSERT_EQ(wait_terminal(id, key_a_).value("state", ""), "COMPLETED");
  uint16_t ws_port = websocket_port();
  EventStreamOutcome all = follow_job_events(ws_port, key_a_, id, 0);
  ASSERT_FALSE(all.events.empty());
  EventStreamOutcome resumed = follow_job_events(ws_port, key_a_, id, all.events.size(), 3s);
  EXPECT_EQ(resumed.handshake_status, 101) << resumed.error;
  EXPECT_TRUE(resumed.events.empty());
  EXPECT_FALSE(resumed.timed_out)
      << "SERVER BUG (server/ws_events.cc, WsEvents::Impl::open): a socket resumed with after=" << all.events.size()
      << " (the seq of COMPLETED) of a finished job gets no frame and is never closed; the close happens only in "
         "deliver() right after sending a terminal event, so a client that reconnects past it waits forever";
}

TEST_F(ServerTest, PresignedResultUrlRejectsTamperingAndServesRanges) {
  start();
  std::string id1 = submit_ok(tiny_job(1), key_a_), id2 = submit_ok(tiny_job(2), key_a_);
  ASSERT_FALSE(id1.empty() || id2.empty());
  std::string url = wait_terminal(id1, key_a_).value("result_url", "");
  ASSERT_EQ(wait_terminal(id2, key_a_).value("state", ""), "COMPLETED");
  HttpResponse full = http_request(port_, "GET", url);
  ASSERT_EQ(full.status, 200) << full.describe();
  const std::string& bytes = full.body;
  ASSERT_GT(bytes.size(), 200u);

  std::string bad_sig = url;
  bad_sig.back() = bad_sig.back() == '0' ? '1' : '0';
  expect_error(http_request(port_, "GET", bad_sig), 403, "PERMISSION_DENIED", {"signature"});
  std::string other_job = url;
  other_job.replace(other_job.find(id1), id1.size(), id2);
  expect_error(http_request(port_, "GET", other_job), 403, "PERMISSION_DENIED", {"signature"});

  // URLs signed here with the server's own secret: valid, then expired.
  const std::string path = "/v1/blobs/results/" + id1;
  int64_t now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  HttpResponse fresh = http_request(port_, "GET", transport::presign(secret("server.secret"), "GET", path, now + 600));
  EXPECT_EQ(fresh.status, 200) << fresh.describe();
  EXPECT_TRUE(fresh.body == bytes);
  expect_error(http_request(port_, "GET", transport::presign(secret("server.secret"), "GET", path, now - 60)), 403,
               "PERMISSION_DENIED", {"expired"});

  const std::string size = std::to_string(bytes.size());
  HttpResponse head_only = http_request(port_, "HEAD", url);
  EXPECT_EQ(head_only.status, 200) << head_only.describe();
  EXPECT_EQ(head_only.header("content-length"), size);
  EXPECT_TRUE(head_only.body.empty());
  HttpResponse tail = http_request(port_, "GET", url, {{"Range", "bytes=10-"}});
  EXPECT_EQ(tail.status, 206) << tail.describe();
  EXPECT_EQ(tail.header("content-range"), "bytes 10-" + std::to_string(bytes.size() - 1) + "/" + size);
  EXPECT_TRUE(tail.body == bytes.substr(10));
  HttpResponse head = http_request(port_, "GET", url, {{"Range", "bytes=0-99"}});
  HttpResponse rest = http_request(port_, "GET", url, {{"Range", "bytes=100-"}});
  EXPECT_EQ(head.status, 206);
  EXPECT_EQ(head.header("content-range"), "bytes 0-99/" + size);
  EXPECT_EQ(head.body.size(), 100u);
  EXPECT_TRUE(head.body + rest.body == bytes) << "two ranges do not add up to the whole";
  HttpResponse beyond = http_request(port_, "GET", url, {{"Range", "bytes=" + size + "-"}});
  EXPECT_EQ(beyond.status, 416) << beyond.describe();
  EXPECT_EQ(beyond.header("content-range"), "bytes */" + size);
}

TEST_F(ServerTest, FullQueueAnswers429WithRetryAfter) {
  start({"--queue-capacity", "1"});
  std::vector<std::string> accepted;
  HttpResponse refused;
  for (int i = 0; i < 8 && refused.status == 0; ++i) {
    HttpResponse r = submit(slow_job(i), key_a_);
    if (r.status == 202) {
      accepted.push_back(r.json().value("job_id", ""));
    } else if (r.status == 429) {
      refused = r;
    } else {
      ADD_FAILURE() << "submit " << i << ": " << r.describe();
    }
  }
  ASSERT_EQ(refused.status, 429) << "no 429 after " << accepted.size() << " submissions with --queue-capacity 1";
  // One job runs, one waits; the third finds the queue full.
  EXPECT_GE(accepted.size(), 1u);
  EXPECT_LE(accepted.size(), 2u);
  EXPECT_TRUE(std::regex_match(refused.header("retry-after"), std::regex("[1-9][0-9]*"))) << refused.header("retry-after");
  expect_error(refused, 429, "RESOURCE_EXHAUSTED", {"queue", "full"});
  for (const std::string& id : accepted) EXPECT_EQ(wait_terminal(id, key_a_).value("state", ""), "COMPLETED") << id;
  EXPECT_EQ(api("GET", "/v1/jobs", key_a_).json()["jobs"].size(), accepted.size()) << "the refused job was recorded";
}

TEST_F(ServerTest, CancelsQueuedJobBeforeItRunsAndRunningJobAtNextHookPoint) {
  start();
  // How long a slow job runs undisturbed, from its own events.
  std::string ref = submit_ok(slow_job(0), key_a_);
  ASSERT_FALSE(ref.empty());
  ASSERT_EQ(wait_terminal(ref, key_a_).value("state", ""), "COMPLETED");
  uint16_t ws_port = websocket_port();
  std::vector<json> ref_events = follow_job_events(ws_port, key_a_, ref, 0).events;
  const int64_t run_ms = event_time(ref_events, "COMPLETED") - event_time(ref_events, "STATUS", "RUNNING");
  ASSERT_GE(run_ms, 150) << "the slow model is too fast on this machine for a meaningful cancel test";

  std::string a = submit_ok(slow_job(1), key_a_), b = submit_ok(slow_job(2), key_a_);
  ASSERT_FALSE(a.empty() || b.empty());
  wait_state(a, "RUNNING");
  json queued = api("GET", "/v1/jobs/" + b, key_a_).json();
  ASSERT_EQ(queued.value("state", ""), "QUEUED") << queued.dump();
  EXPECT_EQ(queued.value("queue_position", -1), 0);
  json b_cancelled = api("DELETE", "/v1/jobs/" + b, key_a_).json();
  EXPECT_EQ(b_cancelled.value("state", ""), "CANCELLED") << b_cancelled.dump();

  auto t0 = std::chrono::steady_clock::now();
  HttpResponse del = api("DELETE", "/v1/jobs/" + a, key_a_);
  EXPECT_EQ(del.status, 200) << del.describe();
  // The answer waits for the run to stop at its next hook point.
  EXPECT_EQ(del.json().value("state", ""), "CANCELLED") << del.body;
  json a_end = wait_terminal(a, key_a_);
  auto latency = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(a_end.value("state", ""), "CANCELLED") << a_end.dump();
  EXPECT_EQ(a_end["error"].value("code", ""), "CANCELLED");
  EXPECT_LT(latency, run_ms / 2) << "cancelling took " << latency << " ms; an undisturbed run takes " << run_ms << " ms";

  EventStreamOutcome a_events = follow_job_events(ws_port, key_a_, a, 0);
  EXPECT_TRUE(has_state(a_events.events, "RUNNING"));
  ASSERT_FALSE(a_events.events.empty());
  EXPECT_EQ(a_events.events.back().value("type", ""), "CANCELLED");
  EXPECT_LT(event_time(a_events.events, "CANCELLED") - event_time(a_events.events, "STATUS", "RUNNING"), run_ms);

  EventStreamOutcome b_events = follow_job_events(ws_port, key_a_, b, 0);
  ASSERT_FALSE(b_events.events.empty());
  EXPECT_EQ(b_events.events.back().value("type", ""), "CANCELLED");
  EXPECT_FALSE(has_state(b_events.events, "RUNNING")) << "the job cancelled while queued ran";
  EXPECT_FALSE(has_state(b_events.events, "DISPATCHED"));
  // Still cancelled once the executor is idle: it was not run afterwards.
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(api("GET", "/v1/jobs/" + b, key_a_).json().value("state", ""), "CANCELLED");
  EXPECT_EQ(api("DELETE", "/v1/jobs/" + b, key_a_).json().value("state", ""), "CANCELLED");
}

TEST_F(ServerTest, RestartDrainsRunningJobKeepsQueuedJobsAndResultUrls) {
  start();
  std::string first = submit_ok(tiny_job(), key_a_);
  ASSERT_FALSE(first.empty());
  std::string url = wait_terminal(first, key_a_).value("result_url", "");
  HttpResponse before = http_request(port_, "GET", url);
  ASSERT_EQ(before.status, 200) << before.describe();

  std::vector<std::string> slow;
  for (int i = 0; i < 3; ++i) slow.push_back(submit_ok(slow_job(10 + i), key_a_));
  wait_state(slow[0], "RUNNING");
  EXPECT_EQ(server_->stop(), 0) << server_->log();
  {
    auto store = server::SqliteJobStore::open(data_dir_ + "/loom.db");
    ASSERT_TRUE(store.ok()) << store.status().message();
    auto ran = (*store)->get(slow[0]);
    ASSERT_TRUE(ran.ok());
    EXPECT_EQ(server::job_state_name(ran->state), std::string("COMPLETED")) << "the running job was not drained";
    for (size_t i = 1; i < slow.size(); ++i) {
      auto waiting = (*store)->get(slow[i]);
      ASSERT_TRUE(waiting.ok());
      EXPECT_EQ(server::job_state_name(waiting->state), std::string("QUEUED")) << slow[i];
    }
  }

  start();
  for (const std::string& id : slow) EXPECT_EQ(wait_terminal(id, key_a_).value("state", ""), "COMPLETED") << id;
  HttpResponse after = http_request(port_, "GET", url);
  EXPECT_EQ(after.status, 200) << after.describe();
  EXPECT_TRUE(after.body == before.body) << "the result URL from before the restart serves other bytes";
}

TEST_F(ServerTest, AQueuedJobIsToldWhenItsPlaceInLineChangesAtMostOnceASecond) {
  start();
  std::vector<std::string> ids;
  // About a second each: the last waits several, its place changing each time.
  for (int i = 0; i < 6; ++i) ids.push_back(submit_ok(slow_job(80 + i), key_a_));
  const std::string& last = ids.back();
  ASSERT_FALSE(last.empty());
  json snap = api("GET", "/v1/jobs/" + last, key_a_).json();
  if (snap.value("state", "") == "QUEUED") {
    EXPECT_TRUE(snap.contains("queue_position")) << snap.dump();
  }
  EventStreamOutcome ws = follow_job_events(websocket_port(), key_a_, last, 0, 120s);
  std::vector<std::pair<int64_t, int64_t>> places;  // (position, time ms) while QUEUED
  bool ran = false;
  for (const json& ev : ws.events) {
    if (!ev.is_object() || ev.value("type", "") != "STATUS") continue;
    if (ev.value("state", "") == "RUNNING") ran = true;
    if (ev.value("state", "") != "QUEUED" || !ev.contains("queue_position")) continue;
    EXPECT_FALSE(ran) << "a QUEUED event after RUNNING: " << ev.dump();
    places.emplace_back(ev["queue_position"].get<int64_t>(), rfc3339_ms(ev.value("time", "")));
  }
  ASSERT_TRUE(ran) << ws.error;
  ASSERT_GE(places.size(), 2u) << "the place in line was given once and never again";
  for (size_t i = 1; i < places.size(); ++i) {
    EXPECT_LT(places[i].first, places[i - 1].first) << "event " << i << " does not move the job forward";
    EXPECT_GE(places[i].second - places[i - 1].second, 900) << "two place events within a second";
  }
}

// A webhook's body, checked against its signature and the job's snapshot.
void expect_signed_webhook(const WebhookReceiver::Request& r, const std::string& secret) {
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/hook");
  EXPECT_EQ(r.headers.count("x-loom-timestamp"), 1u);
  std::string ts = r.headers.count("x-loom-timestamp") ? r.headers.at("x-loom-timestamp") : "";
  int64_t now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_NEAR(static_cast<double>(std::stoll(ts.empty() ? "0" : ts)), static_cast<double>(now), 60.0);
  EXPECT_EQ(r.headers.count("x-loom-signature") ? r.headers.at("x-loom-signature") : "",
            transport::webhook_signature(secret, ts, r.body));
}

TEST_F(ServerTest, WebhookIsSignedAndSentOncePerTerminalJob) {
  WebhookReceiver hook;
  start();
  std::string done = submit_ok(tiny_job(0, hook.url()), key_a_);
  Builder b;  // fails at run time: [2,6,64] x [2,6,64] is no matrix product
  Value h = b.module("transformer.h.0").output(0);
  h.matmul(h).save("bad");
  std::string failed = submit_ok(job_body("tiny", b.graph(), token_ids(2, 6, 0), false, hook.url()), key_a_);
  ASSERT_FALSE(done.empty() || failed.empty());
  EXPECT_EQ(wait_terminal(done, key_a_).value("state", ""), "COMPLETED");
  EXPECT_EQ(wait_terminal(failed, key_a_).value("state", ""), "ERROR");
  // The same request again is answered from the result cache: a new job,
  // COMPLETED at once, which is a terminal state like any other.
  json again = submit(tiny_job(0, hook.url()), key_a_).json();
  ASSERT_TRUE(again.value("deduplicated", false)) << again.dump();
  std::string cached = again.value("job_id", "");
  ASSERT_TRUE(hook.wait_for(3, 10s)) << hook.requests().size() << " webhook(s) for 3 finished jobs"
                                     << (hook.requests().size() == 2
                                             ? " (SERVER BUG, server/job_service.cc JobService::submit: the result-cache "
                                               "path emits COMPLETED without notify_webhook)"
                                             : "")
                                     << "\n"
                                     << server_->log();
  std::this_thread::sleep_for(700ms);  // no duplicates trail in
  std::vector<WebhookReceiver::Request> got = hook.requests();
  ASSERT_EQ(got.size(), 3u);
  std::map<std::string, json> by_job;
  for (const auto& r : got) {
    expect_signed_webhook(r, secret("webhook.secret"));
    json body = json::parse(r.body, nullptr, false);
    ASSERT_TRUE(body.is_object()) << r.body;
    by_job[body.value("job_id", "")] = body;
  }
  ASSERT_EQ(by_job.count(done), 1u);
  ASSERT_EQ(by_job.count(failed), 1u);
  ASSERT_EQ(by_job.count(cached), 1u);
  EXPECT_EQ(by_job[cached].value("state", ""), "COMPLETED");
  EXPECT_EQ(by_job[cached].value("result_url", "").rfind("/v1/blobs/results/" + cached + "?", 0), 0u);
  EXPECT_EQ(by_job[done].value("state", ""), "COMPLETED");
  EXPECT_FALSE(by_job[done].value("event_id", "").empty());
  EXPECT_EQ(by_job[done].value("result_url", "").rfind("/v1/blobs/results/" + done + "?", 0), 0u) << by_job[done].dump();
  EXPECT_EQ(by_job[failed].value("state", ""), "ERROR");
  EXPECT_FALSE(by_job[failed].contains("result_url"));
  EXPECT_FALSE(by_job[failed]["error"].value("message", "").empty()) << by_job[failed].dump();
  EXPECT_NE(by_job[done].value("event_id", ""), by_job[failed].value("event_id", ""));
}

TEST_F(ServerTest, WebhookRetriesServerErrorsWithBackoff) {
  WebhookReceiver hook({500, 500, 200});
  start();
  std::string id = submit_ok(tiny_job(0, hook.url()), key_a_);
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(hook.wait_for(3, 15s)) << hook.requests().size() << " attempt(s)\n" << server_->log();
  std::this_thread::sleep_for(1500ms);  // a 4th attempt would come 2 s after the 3rd at the latest
  std::vector<WebhookReceiver::Request> got = hook.requests();
  ASSERT_EQ(got.size(), 3u) << "delivery went on after a 200";
  for (const auto& r : got) {
    expect_signed_webhook(r, secret("webhook.secret"));
    EXPECT_EQ(json::parse(r.body, nullptr, false).value("event_id", ""),
              json::parse(got[0].body, nullptr, false).value("event_id", ""));
  }
  auto gap = [&](size_t i) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(got[i].at - got[i - 1].at).count();
  };
  EXPECT_GE(gap(1), 400) << "first retry after 0.5 s";
  EXPECT_GE(gap(2), 900) << "second retry after 1 s";
}

TEST_F(ServerTest, WebhookNotDeliveredBeforeARestartIsDeliveredAfterIt) {
  uint16_t port = 0;
  std::string url;
  {
    WebhookReceiver placeholder;  // reserves a port, then frees it: nothing listens there for now
    port = placeholder.port();
    url = placeholder.url();
  }
  start();
  std::string id = submit_ok(tiny_job(7, url), key_a_);
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(wait_terminal(id, key_a_).value("state", ""), "COMPLETED");
  server_.reset();  // SIGTERM with the delivery still failing (connection refused)

  WebhookReceiver hook({200}, "", port);
  start();
  ASSERT_TRUE(hook.wait_for(1, 15s)) << "the restarted server did not resume the delivery\n" << server_->log();
  std::this_thread::sleep_for(500ms);
  std::vector<WebhookReceiver::Request> got = hook.requests();
  ASSERT_EQ(got.size(), 1u) << "delivered more than once after a 200";
  expect_signed_webhook(got[0], secret("webhook.secret"));
  json body = json::parse(got[0].body, nullptr, false);
  EXPECT_EQ(body.value("job_id", ""), id);
  EXPECT_EQ(body.value("event_id", ""), id + ":COMPLETED");
}

TEST_F(ServerTest, WebhookDoesNotFollowRedirects) {
  WebhookReceiver target;
  WebhookReceiver redirecting({302}, target.url("/moved"));
  start();
  std::string id = submit_ok(tiny_job(0, redirecting.url()), key_a_);
  ASSERT_FALSE(id.empty());
  // A redirect counts as a failure: the same receiver is tried again.
  ASSERT_TRUE(redirecting.wait_for(2, 10s)) << redirecting.requests().size() << " attempt(s)\n" << server_->log();
  EXPECT_TRUE(target.requests().empty()) << "the webhook followed the redirect to " << target.url("/moved");
}

}  // namespace
}  // namespace loom::testing
