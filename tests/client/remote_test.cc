// The client library against a real loom-server (a subprocess on
// 127.0.0.1:0): blocking and non-blocking runs, status, cancel, result
// downloads that resume and refresh expired URLs, event streams that
// reconnect, typed errors; and the same trace run locally and remotely
// giving bitwise-identical tensors. Faults come from a TCP relay that cuts
// connections (tests/client/remote_test_util.h).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "client/client.h"
#include "client/event_stream.h"
#include "client/trace.h"
#include "runtime/gpt2_config.h"
#include "runtime/model.h"
#include "tests/client/deployment.h"

namespace loom::client {
namespace {

using loom::testing::bitwise_equal;
using loom::testing::FaultyRelay;
using loom::testing::ServerProcess;
using loom::testing::TempDir;
using namespace std::chrono_literals;


void expect_same_results(const runtime::TraceResult& a, const runtime::TraceResult& b) {
  ASSERT_EQ(a.saved.size(), b.saved.size());
  for (size_t i = 0; i < a.saved.size(); ++i) {
    EXPECT_EQ(a.saved[i].name, b.saved[i].name);
    EXPECT_TRUE(bitwise_equal(a.saved[i].tensor, b.saved[i].tensor)) << a.saved[i].name;
  }
}

// One server per test process: a tiny GPT-2 ("gpt2-tiny") and a slower
// one ("gpt2-slow", ~1 s per job at the inputs below) for cancel and timeouts.
class RemoteTest : public ::testing::Test {
 protected:
  // Against a cluster, each test goes through the other server.
  void SetUp() override { server_->next(); }
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    runtime::Gpt2Config slow = runtime::Gpt2Config::tiny();
    slow.n_layer = 4;
    slow.n_embd = 256;
    slow.n_head = 4;
    ASSERT_TRUE(runtime::write_random_gpt2_checkpoint(dir_->file("tiny"), runtime::Gpt2Config::tiny(), 3).ok());
    ASSERT_TRUE(runtime::write_random_gpt2_checkpoint(dir_->file("slow"), slow, 4).ok());
    server_ = new loom::testing::Deployment({{"gpt2-tiny", dir_->file("tiny")}, {"gpt2-slow", dir_->file("slow")}}, dir_->path());
    key_ = new std::string(server_->create_key("tester"));
  }
  static void TearDownTestSuite() {
    delete key_;
    delete server_;
    delete dir_;
  }

  ClientOptions options(const std::string& host = "") const {
    ClientOptions o;
    o.host = host.empty() ? server_->url() : host;
    o.api_key = *key_;
    o.quiet = true;
    o.timeout = 20s;
    return o;
  }
  static at::Tensor ids(int64_t batch = 2, int64_t seq = 6) {
    return at::arange(batch * seq, at::kLong).remainder(1000).view({batch, seq});
  }
  // A trace with reads, ops and a set: more than a forward pass.
  static void add_interventions(Trace& tr) {
    HookPoint h0 = tr.module("transformer.h.0").output(0);
    tr.module("transformer.h.1").output(0).set(h0 * 2.0 + 1.0);
    h0.index({Slice{}, -1}).save("h0_last");
    tr.output().softmax(-1).save("probs");
    tr.output().save("logits");
  }
  // Submits a slow job and waits until it is RUNNING.
  std::string running_slow_job(Client& client) {
    RemoteModel slow = client.model("gpt2-slow");
    Trace tr = slow.trace({ids(64, 128)});
    tr.output().save("logits");
    std::string id = tr.submit();
    for (int i = 0; i < 400; ++i) {
      JobStatus st = client.status(id);
      if (st.state == JobState::kRunning || st.terminal()) break;
      std::this_thread::sleep_for(10ms);
    }
    return id;
  }

  static TempDir* dir_;
  static loom::testing::Deployment* server_;
  static std::string* key_;
};

TempDir* RemoteTest::dir_ = nullptr;
loom::testing::Deployment* RemoteTest::server_ = nullptr;
std::string* RemoteTest::key_ = nullptr;

TEST_F(RemoteTest, SameTraceRunsLocallyAndRemotelyWithBitwiseIdenticalTensors) {
  Client client(options());
  RemoteModel model = client.model("gpt2-tiny");
  EXPECT_EQ(model.key(), "gpt2-tiny");
  EXPECT_EQ(model.info().kind, "gpt2");
  ASSERT_FALSE(model.module_paths().empty());
  EXPECT_EQ(model.module_paths()[0], "");

  auto local_model = runtime::load_model(dir_->file("tiny"));
  ASSERT_TRUE(local_model.ok()) << local_model.status().to_string();
  Trace tr = model.trace();
  auto a = tr.invoke({ids(2, 6)});
  auto b = tr.invoke({ids(1, 6) + 7});
  add_interventions(tr);
  b.module("transformer.h.0").output(0).set(a.module("transformer.h.0").output(0).slice(0, 0, 1));
  tr.set_local_model(**local_model);

  runtime::TraceResult local = tr.run();
  runtime::TraceResult remote = tr.run({.remote = true});  // as the README spells it
  ASSERT_EQ(remote.saved.size(), 3u);
  EXPECT_EQ(remote.saved[0].name, "h0_last");
  EXPECT_EQ(remote.at("logits").sizes(), (std::vector<int64_t>{3, 6, 1000}));
  expect_same_results(local, remote);
}

TEST_F(RemoteTest, ModulePathsAreValidatedBeforeSubmitting) {
  Client client(options());
  size_t jobs_before = client.jobs().size();
  Trace tr = client.model("gpt2-tiny").trace({ids()});
  tr.module("transformer.h.9").output(0).save("nope");
  RunOptions ro;
  ro.remote = true;
  try {
    tr.run(ro);
    FAIL() << "no ValidationError";
  } catch (const ValidationError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("node 0"), std::string::npos) << m;
    EXPECT_NE(m.find("transformer.h.9"), std::string::npos) << m;
  }
  EXPECT_EQ(client.jobs().size(), jobs_before);  // nothing was sent
}

TEST_F(RemoteTest, UnknownModelIsNotFoundAndNamesTheServersModels) {
  Client client(options());
  try {
    client.model("gpt3");
    FAIL() << "no NotFoundError";
  } catch (const NotFoundError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("no model \"gpt3\""), std::string::npos) << m;
    EXPECT_NE(m.find("gpt2-tiny"), std::string::npos) << m;
  }
  auto models = client.models();
  ASSERT_EQ(models.size(), 2u);
}

TEST_F(RemoteTest, SubmitReturnsAJobIdThenWaitForStatusAndResult) {
  Client client(options());
  Trace tr = client.model("gpt2-tiny").trace({ids()});
  add_interventions(tr);
  std::string id = tr.submit();
  EXPECT_EQ(id.size(), 32u);

  std::vector<std::string> seen;
  JobStatus done = client.wait_for(id, 20ms, [&](const JobStatus& st) { seen.push_back(st.state_name); });
  EXPECT_EQ(done.state, JobState::kCompleted);
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back(), "COMPLETED");

  JobStatus st = client.status(id);
  EXPECT_EQ(st.id, id);
  EXPECT_EQ(st.model, "gpt2-tiny");
  EXPECT_EQ(st.state_name, "COMPLETED");
  EXPECT_GT(st.result_size, 0u);
  EXPECT_EQ(st.result_sha256.size(), 64u);
  EXPECT_EQ(st.result_url.rfind("/v1/blobs/results/" + id + "?", 0), 0u) << st.result_url;
  EXPECT_FALSE(st.created_at.empty());

  runtime::TraceResult fetched = client.result(id);
  RunOptions ro;
  ro.remote = true;
  expect_same_results(fetched, tr.run(ro));

  bool listed = false;
  for (const auto& j : client.jobs()) listed = listed || j.id == id;
  EXPECT_TRUE(listed);
}

TEST_F(RemoteTest, RunAsyncDeliversTheResultOnAFuture) {
  Client client(options());
  Trace tr = client.model("gpt2-tiny").trace({ids()});
  add_interventions(tr);
  AsyncRun run = tr.run_async();
  EXPECT_EQ(run.job_id.size(), 32u);
  ASSERT_EQ(run.result.wait_for(30s), std::future_status::ready);
  runtime::TraceResult async_result = run.result.get();
  expect_same_results(async_result, client.result(run.job_id));
}

TEST_F(RemoteTest, BlockingRunShowsPlainStatusLinesWhenNotATerminal) {
  std::ostringstream status;
  ClientOptions o = options();
  o.quiet = false;
  o.status_out = &status;
  o.submit_wait = 0ms;  // follow over the WebSocket from the start
  Client client(o);
  Trace tr = client.model("gpt2-tiny").trace({ids()});
  tr.output().save("logits");
  RunOptions ro;
  ro.remote = true;
  ro.no_cache = true;
  std::string job;
  ro.on_submitted = [&](const std::string& id) { job = id; };
  runtime::TraceResult followed = tr.run(ro);
  std::string s = status.str();
  EXPECT_EQ(s.find('\r'), std::string::npos) << s;
  EXPECT_NE(s.find("loom: job " + job + " QUEUED"), std::string::npos) << s;
  EXPECT_NE(s.find("loom: job " + job + " RUNNING"), std::string::npos) << s;
  EXPECT_NE(s.find("loom: job " + job + " COMPLETED in "), std::string::npos) << s;

  // By default a short job ends inside the submit call: no WebSocket, so
  // no QUEUED or RUNNING line, and the same result.
  std::ostringstream quick_status;
  o.status_out = &quick_status;
  o.submit_wait = 5000ms;
  Client quick(o);
  tr.set_remote_model(quick.model("gpt2-tiny"));
  runtime::TraceResult waited = tr.run(ro);
  s = quick_status.str();
  EXPECT_EQ(s.find("QUEUED"), std::string::npos) << s;
  EXPECT_NE(s.find("loom: job " + job + " COMPLETED"), std::string::npos) << s;
  expect_same_results(followed, waited);
}

TEST_F(RemoteTest, JobLongerThanTheSubmitWaitIsFollowedOverTheWebSocket) {
  std::ostringstream status;
  ClientOptions o = options();
  o.quiet = false;
  o.status_out = &status;
  o.submit_wait = 20ms;  // the slow model takes ~1 s at these inputs
  Client client(o);
  Trace tr = client.model("gpt2-slow").trace({ids(64, 128)});
  tr.output().slice(1, -1, std::nullopt).save("last");
  runtime::TraceResult r = tr.run({.remote = true, .no_cache = true});
  EXPECT_EQ(r.at("last").sizes(), (std::vector<int64_t>{64, 1, 1000}));
  std::string s = status.str();
  EXPECT_NE(s.find(" RUNNING"), std::string::npos) << s;  // seen on the event stream
  EXPECT_NE(s.find(" COMPLETED in "), std::string::npos) << s;
}

TEST_F(RemoteTest, RunFailureIsRemoteErrorWithTheSameMessageAsLocally) {
  Client client(options());
  auto local_model = runtime::load_model(dir_->file("tiny"));
  ASSERT_TRUE(local_model.ok());
  Trace tr = client.model("gpt2-tiny").trace({ids()});
  tr.set_local_model(**local_model);
  HookPoint h0 = tr.module("transformer.h.0").output(0);  // [2, 6, 64]
  h0.matmul(h0).save("bad");                              // [2, 6, 64] @ [2, 6, 64]: shape error at run time
  std::string local_message;
  try {
    tr.run();
    FAIL() << "no ExecutionError locally";
  } catch (const ExecutionError& e) {
    local_message = e.what();
  }
  RunOptions ro;
  ro.remote = true;
  try {
    tr.run(ro);
    FAIL() << "no RemoteError";
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.remote_message(), local_message);
    EXPECT_NE(std::string(e.what()).find("failed on the server"), std::string::npos);
    EXPECT_NE(e.remote_message().find("aten::matmul"), std::string::npos) << e.remote_message();
    EXPECT_EQ(client.status(e.job_id()).state, JobState::kError);
  }
}

TEST_F(RemoteTest, CancelStopsARunningJobAndWaitTimesOutFirst) {
  Client client(options());
  std::string id = running_slow_job(client);
  RunOptions short_wait;
  short_wait.timeout = 50ms;
  try {
    client.wait(id, short_wait);
    FAIL() << "no TimeoutError";
  } catch (const TimeoutError& e) {
    EXPECT_NE(std::string(e.what()).find("loom cancel " + id), std::string::npos) << e.what();
  }
  JobStatus after = client.cancel(id);
  EXPECT_EQ(after.id, id);
  EXPECT_EQ(after.state, JobState::kCancelled);  // the answer waits for the run to stop
  EXPECT_THROW(client.wait_for(id, 20ms, {}, 30s), CancelledError);
  JobStatus st = client.status(id);
  EXPECT_EQ(st.state, JobState::kCancelled);
  EXPECT_EQ(st.error_code, StatusCode::kCancelled);
  EXPECT_THROW(client.result(id), CancelledError);
  EXPECT_THROW(client.attach(id), CancelledError);
}

TEST_F(RemoteTest, CancellingAFinishedJobKeepsItsState) {
  Client client(options());
  Trace tr = client.model("gpt2-tiny").trace({ids()});
  tr.output().save("logits");
  std::string id = tr.submit();
  client.wait_for(id, 10ms);
  EXPECT_EQ(client.cancel(id).state, JobState::kCompleted);
}

TEST_F(RemoteTest, ResultOfAnUnfinishedJobSaysToWait) {
  Client client(options());
  std::string id = running_slow_job(client);
  try {
    client.result(id);
    ADD_FAILURE() << "no exception";
  } catch (const LoomError& e) {
    EXPECT_EQ(e.code(), StatusCode::kFailedPrecondition);
    EXPECT_NE(std::string(e.what()).find("loom wait " + id), std::string::npos) << e.what();
  }
  client.cancel(id);
}

TEST_F(RemoteTest, KeysAreCheckedAndAnotherKeysJobIsNotFound) {
  Client client(options());
  Trace tr = client.model("gpt2-tiny").trace({ids()});
  tr.output().save("logits");
  std::string id = tr.submit();

  ClientOptions wrong = options();
  wrong.api_key = "loom_not-a-key";
  Client bad(wrong);
  try {
    bad.jobs();
    FAIL() << "no AuthError";
  } catch (const AuthError& e) {
    EXPECT_EQ(e.code(), StatusCode::kUnauthenticated);
    EXPECT_NE(std::string(e.what()).find("loom-server keys create"), std::string::npos) << e.what();
  }
  ClientOptions other = options();
  other.api_key = server_->create_key("other");
  Client stranger(other);
  EXPECT_THROW(stranger.status(id), NotFoundError);
  EXPECT_THROW(stranger.cancel(id), NotFoundError);
  EXPECT_THROW(stranger.status("0123456789abcdef0123456789abcdef"), NotFoundError);
  EXPECT_THROW(stranger.status("../../etc"), ValidationError);  // never reaches a URL
}

TEST_F(RemoteTest, ProtocolVersionMismatchIsVersionError) {
  HttpClient http(*parse_base_url(server_->url()));
  HttpRequest r;
  r.target = "/v1/env";
  r.headers = {{"Authorization", "Bearer " + *key_}, {"X-Loom-Protocol", "2"}};
  HttpResponse resp = http.request(r);
  EXPECT_EQ(resp.status, 400);
  try {
    throw_http_error({resp.status, resp.body, "", "GET /v1/env"});
  } catch (const VersionError& e) {
    EXPECT_NE(std::string(e.what()).find("protocol version"), std::string::npos) << e.what();
  } catch (const std::exception& e) {
    FAIL() << "not a VersionError: " << e.what();
  }
}

TEST_F(RemoteTest, HostAndKeyComeFromTheEnvironmentAndTheirAbsenceSaysWhatToSet) {
  const char* old_host = std::getenv("LOOM_HOST");
  const char* old_key = std::getenv("LOOM_API_KEY");
  std::string saved_host = old_host ? old_host : "", saved_key = old_key ? old_key : "";
  ::unsetenv("LOOM_HOST");
  ::unsetenv("LOOM_API_KEY");
  try {
    Client c{ClientOptions{}};
    ADD_FAILURE() << "no ConnectionError";
  } catch (const ConnectionError& e) {
    EXPECT_NE(std::string(e.what()).find("LOOM_HOST"), std::string::npos) << e.what();
  }
  ::setenv("LOOM_HOST", server_->url().c_str(), 1);
  try {
    Client c{ClientOptions{}};
    ADD_FAILURE() << "no AuthError";
  } catch (const AuthError& e) {
    EXPECT_NE(std::string(e.what()).find("LOOM_API_KEY"), std::string::npos) << e.what();
  }
  ::setenv("LOOM_API_KEY", key_->c_str(), 1);
  {
    Client c{ClientOptions{}};
    EXPECT_EQ(c.endpoint().port, server_->port());
    EXPECT_EQ(c.env().protocol_version, transport::kProtocolVersion);
    EXPECT_EQ(c.env().websocket_port, server_->ws_port());
    // The client accepts frames as large as the server sends: a STREAM value
    // at the default --max-stream-bytes (64 MiB) with its header.
    EXPECT_EQ(c.env().max_frame_bytes, (64ull << 20) + (1 << 20));
  }
  if (old_host) ::setenv("LOOM_HOST", saved_host.c_str(), 1); else ::unsetenv("LOOM_HOST");
  if (old_key) ::setenv("LOOM_API_KEY", saved_key.c_str(), 1); else ::unsetenv("LOOM_API_KEY");
}

TEST_F(RemoteTest, UnreachableServerIsConnectionError) {
  ClientOptions o = options("http://127.0.0.1:1");
  Client client(o);
  try {
    client.models();
    FAIL() << "no ConnectionError";
  } catch (const ConnectionError& e) {
    EXPECT_NE(std::string(e.what()).find("http://127.0.0.1:1"), std::string::npos) << e.what();
  }
}

TEST_F(RemoteTest, DownloadResumesWithRangeAfterADroppedConnection) {
  FaultyRelay relay(server_->port());
  Client client(options(relay.url()));
  Trace tr = client.model("gpt2-tiny").trace({ids()});
  tr.output().save("logits");  // ~44 KiB compressed: random logits do not compress
  std::string id = tr.submit();
  JobStatus st = client.wait_for(id, 10ms);
  ASSERT_GT(st.result_size, 20000u);

  relay.cut_answers("GET /v1/blobs/", 10000, 1);
  runtime::TraceResult r = client.result(id);
  EXPECT_EQ(relay.cuts(), 1);
  bool resumed = false;
  for (const auto& req : relay.requests()) {
    if (req.rfind("GET /v1/blobs/", 0) == 0 && req.find("Range: bytes=") != std::string::npos) resumed = true;
  }
  EXPECT_TRUE(resumed);
  Client direct(options());
  expect_same_results(r, direct.result(id));
}

TEST_F(RemoteTest, CorruptedDownloadFailsTheChecksumAndTheNextTryWorks) {
  FaultyRelay relay(server_->port());
  Client client(options(relay.url()));
  Trace tr = client.model("gpt2-tiny").trace({ids()});
  tr.output().save("logits");
  std::string id = tr.submit();
  client.wait_for(id, 10ms);
  relay.corrupt_answer("GET /v1/blobs/", 5000);  // inside the body: headers are a few hundred bytes
  try {
    client.result(id);
    FAIL() << "a corrupted result was accepted";
  } catch (const LoomError& e) {
    EXPECT_EQ(e.code(), StatusCode::kInternal);
    EXPECT_NE(std::string(e.what()).find("SHA-256 mismatch"), std::string::npos) << e.what();
  }
  runtime::TraceResult r = client.result(id);  // nothing corrupts it this time
  EXPECT_EQ(r.at("logits").sizes(), (std::vector<int64_t>{2, 6, 1000}));
}

TEST_F(RemoteTest, DownloadToFileKeepsAPartialFileAndALaterCallResumesIt) {
  TempDir out;
  const std::string path = out.file("result.safetensors");
  Client direct(options());
  Trace tr = direct.model("gpt2-tiny").trace({ids()});
  tr.output().save("logits");
  std::string id = tr.submit();
  direct.wait_for(id, 10ms);

  {
    FaultyRelay relay(server_->port());
    ClientOptions o = options(relay.url());
    o.max_download_attempts = 2;
    Client client(o);
    relay.cut_answers("GET /v1/blobs/", 10000, 1);  // some bytes arrive
    relay.cut_answers("GET /v1/blobs/", 0, 10);     // then nothing does
    EXPECT_THROW(client.download_result(id, path), ConnectionError);
  }
  ASSERT_TRUE(std::filesystem::exists(path + ".part"));
  uint64_t partial = std::filesystem::file_size(path + ".part");
  EXPECT_GT(partial, 0u);
  EXPECT_FALSE(std::filesystem::exists(path));

  FaultyRelay relay(server_->port());
  Client client(options(relay.url()));
  uint64_t written = client.download_result(id, path);
  EXPECT_FALSE(std::filesystem::exists(path + ".part"));
  EXPECT_EQ(written, std::filesystem::file_size(path));
  bool ranged = false;
  for (const auto& req : relay.requests()) {
    ranged = ranged || req.find("Range: bytes=" + std::to_string(partial) + "-") != std::string::npos;
  }
  EXPECT_TRUE(ranged);
  auto file = runtime::read_safetensors_file(path);
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  EXPECT_TRUE(bitwise_equal(file->find("logits"), direct.result(id).at("logits")));
}

TEST_F(RemoteTest, EventStreamReconnectsAfterADropAndLosesNoEvent) {
  Client client(options());
  Trace tr = client.model("gpt2-tiny").trace({ids()});
  tr.output().save("logits");
  std::string id = tr.submit();
  client.wait_for(id, 10ms);

  FaultyRelay relay(server_->ws_port());
  relay.cut_answers("GET /v1/jobs/", 300, 1);  // mid-replay of the first connection
  EventStreamOptions eo;
  eo.endpoint = {"127.0.0.1", relay.port()};
  eo.api_key = *key_;
  eo.job_id = id;
  eo.initial_backoff = 20ms;
  EventStream events(eo);
  events.start();
  std::vector<uint64_t> seqs;
  std::string last_type;
  nlohmann::json ev;
  for (;;) {
    auto got = events.next(ev, 10s);
    ASSERT_NE(got, EventStream::Next::kTimeout);
    if (got == EventStream::Next::kEnded) break;
    seqs.push_back(ev["seq"].get<uint64_t>());
    last_type = ev["type"].get<std::string>();
  }
  EXPECT_TRUE(events.end_status().ok()) << events.end_status().to_string();
  EXPECT_EQ(relay.cuts(), 1);
  EXPECT_GE(events.reconnects(), 1);
  ASSERT_FALSE(seqs.empty());
  for (size_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(seqs[i], i + 1);
  EXPECT_EQ(last_type, "COMPLETED");
}

TEST_F(RemoteTest, EventStreamOfAForeignJobIsRefused) {
  EventStreamOptions eo;
  eo.endpoint = {"127.0.0.1", server_->ws_port()};
  eo.api_key = *key_;
  eo.job_id = "0123456789abcdef0123456789abcdef";
  EventStream events(eo);
  events.start();
  nlohmann::json ev;
  EXPECT_EQ(events.next(ev, 10s), EventStream::Next::kEnded);
  EXPECT_EQ(events.end_status().code(), StatusCode::kNotFound) << events.end_status().to_string();
}

// A server whose presigned URLs live one second and that never inlines results.
TEST(RemoteExpiredUrl, ReattachingLaterAsksForAFreshUrl) {
  TempDir dir;
  ASSERT_TRUE(runtime::write_random_gpt2_checkpoint(dir.file("tiny"), runtime::Gpt2Config::tiny(), 3).ok());
  ServerProcess server({{"gpt2-tiny", dir.file("tiny")}}, dir.path(), {"--url-lifetime", "1", "--inline-max", "0", "--small-blob-bytes", "0"});  // results in files
  std::string key = loom::testing::create_key("tester", server.data_dir());
  FaultyRelay relay(server.port());
  ClientOptions o;
  o.host = relay.url();
  o.api_key = key;
  o.quiet = true;
  Client client(o);
  Trace tr = client.model("gpt2-tiny").trace({at::arange(12, at::kLong).view({2, 6})});
  tr.output().save("logits");
  std::string id = tr.submit();
  client.wait_for(id, 10ms);
  std::this_thread::sleep_for(2500ms);  // the URL in the stored COMPLETED event has expired

  runtime::TraceResult r = client.attach(id);  // replays COMPLETED with the old URL
  bool refused = false;
  for (const auto& line : relay.status_lines()) refused = refused || line.find(" 403 ") != std::string::npos;
  EXPECT_TRUE(refused);
  EXPECT_EQ(r.at("logits").sizes(), (std::vector<int64_t>{2, 6, 1000}));
}

}  // namespace
}  // namespace loom::client
