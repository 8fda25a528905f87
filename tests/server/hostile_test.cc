// Hostile input against the real loom-server over real sockets: invalid
// UTF-8 wherever text enters, WebSocket frames of the wrong shape, oversized
// texts and count bombs, and a job the process dies in twice. Each case
// checks the answer says what is wrong and that the server goes on serving
// (and, where it matters, starts again on the same data).
#include <capnp/message.h>
#include <capnp/serialize.h>

#include <condition_variable>
#include <functional>
#include <iostream>
#include <fstream>
#include <mutex>

#include "server/callback_policy.h"
#include "tests/server/server_fixture.h"
#include "transport/protocol.capnp.h"
#include "transport/websocket.h"

namespace loom::testing {
namespace {

// The server's peak resident memory (VmHWM), in KiB; -1 when unreadable.
int64_t peak_rss_kib(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

std::string zstd_capnp(capnp::MessageBuilder& message) {
  auto words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  return transport::zstd_compress(std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size()));
}

class HostileTest : public ServerTest {
 protected:
  void expect_serving() {
    HttpResponse h = http_request(port_, "GET", "/healthz");
    EXPECT_EQ(h.status, 200) << "the server stopped serving\n" << server_->log();
  }
};

TEST_F(HostileTest, InvalidUtf8InThePathAndHeadersGetsAClearErrorAndTheServerGoesOn) {
  start();
  for (const std::string& target : {std::string("/\xff"), std::string("/v1/jobs/\xff\xfe"),
                                    std::string("/v1/models/\xc0\xaf"), std::string("/v1/\xed\xa0\x80")}) {
    HttpResponse r = http_request(port_, "GET", target, loom_headers(key_a_));
    EXPECT_EQ(r.status, 404) << r.describe();
    EXPECT_TRUE(r.json().is_object()) << "the error body is not valid JSON: " << r.describe();
    expect_serving();
  }
  HttpResponse bad_key = http_request(port_, "GET", "/v1/jobs", {{"Authorization", "Bearer \xff\xfe"}});
  expect_error(bad_key, 401, "UNAUTHENTICATED", {"unknown API key"});
  HttpResponse bad_version = http_request(port_, "GET", "/v1/env", {{"Authorization", "Bearer " + key_a_},
                                                                    {"X-Loom-Protocol", "\xff"}});
  expect_error(bad_version, 400, "FAILED_PRECONDITION", {"\\xff"});
  // The WebSocket handshake with the same bytes in its path and headers.
  EventStreamOutcome ws = follow_job_events(websocket_port(), key_a_, "\xff\xfe", 0, 5s);
  EXPECT_NE(ws.handshake_status, 101);
  EXPECT_FALSE(ws.timed_out);
  expect_serving();
}

TEST_F(HostileTest, InvalidUtf8InGraphTextIsRefusedOrRunsAndNeverCrashes) {
  start();
  {  // a module path and an op name: refused at submit, quoted escaped
    Builder b;
    b.module("transformer.\xff").output(0).save("x");
    HttpResponse r = submit(job_body("tiny", b.graph(), token_ids(1, 4, 0)), key_a_);
    EXPECT_EQ(r.status, 400) << r.describe();
    EXPECT_TRUE(r.json().is_object()) << r.describe();
  }
  {
    Builder b;
    b.op("aten::\xff", {b.module("transformer.h.0").output(0)}).save("x");
    HttpResponse r = submit(job_body("tiny", b.graph(), token_ids(1, 4, 0)), key_a_);
    EXPECT_EQ(r.status, 400) << r.describe();
    EXPECT_TRUE(r.json().is_object()) << r.describe();
  }
  {  // a model key
    Builder b;
    b.output().save("x");
    HttpResponse r = submit(job_body("tiny\xff", b.graph(), token_ids(1, 4, 0)), key_a_);
    EXPECT_EQ(r.status, 404) << r.describe();
    EXPECT_TRUE(r.json().is_object()) << r.describe();
  }
  // A save name and LOG text fed by a constant (it runs before the forward
  // pass): the jobs end, their events and snapshots are valid JSON.
  std::vector<std::string> ids;
  {
    Builder b;
    b.module("transformer.h.0").output(0).save("h0\xff");
    ids.push_back(submit_ok(job_body("tiny", b.graph(), token_ids(1, 4, 1), true), key_a_));
  }
  {
    Builder b;
    Value c = b.constant(runtime::to_tensor_data(at::ones({2})).value());
    b.log("mean \xff\xfe", c);
    b.output().save("logits");
    ids.push_back(submit_ok(job_body("tiny", b.graph(), token_ids(1, 4, 2), true), key_a_));
  }
  for (const std::string& id : ids) {
    ASSERT_FALSE(id.empty());
    json end = wait_terminal(id, key_a_);
    EXPECT_TRUE(end.value("state", "") == "COMPLETED" || end.value("state", "") == "ERROR") << end.dump();
    EventStreamOutcome ws = follow_job_events(websocket_port(), key_a_, id, 0, 10s);
    for (const json& ev : ws.events) EXPECT_FALSE(ev.is_discarded()) << "an event frame is not valid JSON";
  }
  // And the data directory serves again after a restart: no crash loop.
  start();
  expect_serving();
  EXPECT_EQ(api("GET", "/v1/jobs/" + ids[1], key_a_).status, 200);
}

TEST_F(HostileTest, WebSocketFramesWithANonStringTypeAreRejectedAndTheJobWaitsOn) {
  start({"--max-stream-timeout-ms", "20000"});
  Builder b;
  HookPoint h = b.module("transformer.h.0").output(0);
  h.set(b.stream("edit", h));
  b.output().save("logits");
  std::string id = submit_ok(job_body("tiny", b.graph(), token_ids(1, 4, 3)), key_a_);
  ASSERT_FALSE(id.empty());

  transport::WebSocketClient client({});
  ASSERT_TRUE(client.start().ok());
  std::mutex mu;
  std::condition_variable cv;
  std::vector<json> texts;
  bool got_stream = false;
  client.post([&] {
    transport::WebSocketClient::Handlers h;
    h.on_message = [&](const std::string& payload, bool binary) {
      std::lock_guard<std::mutex> lock(mu);
      if (binary) {
        got_stream = true;
      } else {
        texts.push_back(json::parse(payload, nullptr, false));
      }
      cv.notify_all();
    };
    const Headers loom = loom_headers(key_a_);
    std::vector<std::pair<std::string, std::string>> headers(loom.begin(), loom.end());
    (void)client.connect("ws://127.0.0.1:" + std::to_string(websocket_port()) + "/v1/jobs/" + id + "/events",
                         headers, std::move(h));
  });
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 20s, [&] { return got_stream; })) << server_->log();
  }
  // Text frames must be UTF-8 (RFC 6455 closes the socket otherwise), so the
  // bytes that are not go in a binary frame, whose header they then break.
  const std::vector<std::pair<std::string, bool>> frames = {
      {R"({"type":1})", false},   {R"({"type":null})", false}, {R"({"type":[1]})", false},
      {R"({"type":{"a":1},"stream_id":1})", false}, {"[]", false}, {std::string("\x02\0\0\0\xff\xfe", 6), true},
      {std::string("\x09\0\0\0{\"type\":7}", 13), true}};
  for (const auto& [f, binary] : frames) client.post([&client, f = f, binary = binary] { client.send(f, binary); });
  {
    std::unique_lock<std::mutex> lock(mu);
    auto rejected = [&] {
      size_t n = 0;
      for (const json& t : texts) n += t.is_object() && t.value("type", "") == "REJECTED";
      return n;
    };
    ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return rejected() == frames.size(); }))
        << "REJECTED answers: " << rejected() << " of " << frames.size() << "; last: "
        << (texts.empty() ? "none" : texts.back().dump()) << "\n" << server_->log();
  }
  client.stop();
  expect_serving();
  EXPECT_EQ(api("GET", "/v1/jobs/" + id, key_a_).json().value("state", ""), "RUNNING") << "the job stopped waiting";
  EXPECT_EQ(api("DELETE", "/v1/jobs/" + id, key_a_).json().value("state", ""), "CANCELLED");
}

TEST_F(HostileTest, AHugeCallbackUrlIsRefusedAtSubmit) {
  start();
  HttpResponse r = submit(tiny_job(40, "http://127.0.0.1:1/" + std::string(2 << 20, 'a')), key_a_);
  expect_error(r, 413, "RESOURCE_EXHAUSTED", {"the callback URL is 2097171 bytes, over the limit of 2048"});
  expect_serving();
}

TEST_F(HostileTest, CountBombsAreRefusedBeforeTheGraphIsBuilt) {
  start();
  const int64_t before = peak_rss_kib(server_->pid());
  ASSERT_GT(before, 0);
  std::vector<double> answer_ms;
  // A request for "tiny" with one invoke; `fill` writes its graph.
  auto bomb = [](const std::function<void(schema::Graph::Builder)>& fill) {
    capnp::MallocMessageBuilder message;
    auto req = message.initRoot<wire::JobRequest>();
    req.setProtocolVersion(transport::kProtocolVersion);
    req.setModelKey("tiny");
    auto g = req.initGraph();
    g.setVersion(1);
    g.setInvokes(1);
    fill(g);
    req.initInvokes(1);
    return zstd_capnp(message);
  };
  {  // 200,001 empty nodes: a few KB compressed
    std::string body = bomb([](auto g) { g.initNodes(200001); });
    ASSERT_LT(body.size(), 64u << 10);
    const auto t0 = std::chrono::steady_clock::now();
    HttpResponse r = submit(body, key_a_);
    answer_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    expect_error(r, 413, "RESOURCE_EXHAUSTED", {"200001 nodes, over the limit of 100000"});
  }
  {  // one op with 1,000,000 arguments
    std::string body = bomb([](auto g) {
      auto op = g.initNodes(1)[0].initOp();
      op.setSchema("aten::add.Tensor");
      op.initArgs(1000000);
    });
    const auto t0 = std::chrono::steady_clock::now();
    HttpResponse r = submit(body, key_a_);
    answer_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    expect_error(r, 413, "RESOURCE_EXHAUSTED", {"node 0", "1000000 arguments, over the limit of 64"});
  }
  // Reported, not a timing target (the issue's is 100 ms): the bound only
  // catches the defect this guards against, which took 7.6 s and more.
  for (double ms : answer_ms) {
    std::cout << "bomb answered in " << ms << " ms\n";
    EXPECT_LT(ms, 2000) << "the bomb was built before it was refused";
  }
  const int64_t after = peak_rss_kib(server_->pid());
  EXPECT_LT(after - before, 64 * 1024) << "peak RSS grew from " << before << " to " << after << " KiB";
  expect_serving();
}

TEST_F(HostileTest, AJobTheServerDiesInTwiceIsFailedNotRunAThirdTime) {
  start();
  std::string id = submit_ok(slow_job(41), key_a_);
  ASSERT_FALSE(id.empty());
  for (int death = 1; death <= 2; ++death) {
    wait_state(id, "RUNNING");
    server_->kill_hard();
    start();
  }
  json end = wait_terminal(id, key_a_);
  EXPECT_EQ(end.value("state", ""), "ERROR") << end.dump();
  EXPECT_NE(end["error"].value("message", "").find("stopped 2 times while running this job"), std::string::npos)
      << end.dump();
  // The first death ran it again, saying so.
  EventStreamOutcome ws = follow_job_events(websocket_port(), key_a_, id, 0, 10s);
  int reruns = 0;
  for (const json& ev : ws.events) reruns += ev.is_object() && ev.value("recovered_run", 0) == 1;
  EXPECT_EQ(reruns, 1);
  expect_serving();
}

}  // namespace
}  // namespace loom::testing

namespace loom::testing {
namespace {

TEST_F(HostileTest, CallbackUrlsToInternalAddressesAreRefusedUnlessAllowed) {
  allow_loopback_webhooks_ = false;
  start();
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"http://127.0.0.1:" + std::to_string(port_) + "/v1/jobs", "loopback"},  // the server's own API
      {"http://localhost/hook", "loopback"},
      {"http://10.1.2.3/hook", "private"},
      {"http://192.168.0.1:8080/", "private"},
      {"http://169.254.169.254/latest/meta-data/", "link-local"},  // cloud metadata
      {"http://0.0.0.0/", "unspecified"},
      {"http://[::1]:9/", "loopback"},
      {"http://[fd00::1]/", "unique-local"},
  };
  for (const auto& [url, rule] : refused) {
    expect_error(submit(tiny_job(50, url), key_a_), 400, "INVALID_ARGUMENT", {rule, "--webhook-allow"});
  }
  expect_error(submit(tiny_job(51, "file:///etc/passwd"), key_a_), 400, "INVALID_ARGUMENT", {"must be http://"});
  expect_error(submit(tiny_job(52, "gopher://127.0.0.1:6379/_FLUSHALL"), key_a_), 400, "INVALID_ARGUMENT",
               {"must be http://"});
  EXPECT_EQ(api("GET", "/v1/jobs", key_a_).json()["jobs"].size(), 0u) << "a refused request created a job";

  // The operator's range lets a receiver on loopback through.
  WebhookReceiver hook;
  allow_loopback_webhooks_ = true;
  start({"--webhook-allow", "127.0.0.1/32"});
  std::string id = submit_ok(tiny_job(53, hook.url()), key_a_);
  ASSERT_FALSE(id.empty());
  EXPECT_TRUE(hook.wait_for(1, 15s)) << server_->log();
}

TEST(CallbackPolicy, ChecksEveryAddressAgainstTheRulesAndTheAllowedRanges) {
  server::CallbackPolicy strict;
  EXPECT_FALSE(strict.check("http://127.0.0.1/").ok());
  EXPECT_FALSE(strict.check("http://[::ffff:127.0.0.1]/").ok());  // IPv4-mapped loopback
  EXPECT_FALSE(strict.check("http://172.20.0.1/").ok());
  EXPECT_TRUE(strict.check("http://8.8.8.8/hook").ok());
  auto t = strict.check("http://1.2.3.4:8080/a/b?c=d");
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(t->address, "1.2.3.4");
  EXPECT_EQ(t->port, 8080);
  EXPECT_EQ(t->target, "/a/b?c=d");
  EXPECT_FALSE(t->tls);
  auto secure = strict.check("https://8.8.8.8/hook");
  ASSERT_TRUE(secure.ok()) << secure.status().to_string();
  EXPECT_TRUE(secure->tls);
  EXPECT_EQ(secure->port, 443);
  EXPECT_FALSE(strict.check("https://127.0.0.1/").ok()) << "https is held to the same address rules";
  server::CallbackPolicy lab({*server::parse_cidr("10.0.0.0/8"), *server::parse_cidr("::1")});
  EXPECT_TRUE(lab.check("http://10.9.9.9/").ok());
  EXPECT_TRUE(lab.check("http://[::1]/").ok());
  EXPECT_FALSE(lab.check("http://127.0.0.1/").ok());
  EXPECT_FALSE(server::parse_cidr("10.0.0.0/33").ok());
  EXPECT_FALSE(server::parse_cidr("not-an-ip").ok());
  EXPECT_FALSE(strict.check("http://" + std::string(300, 'a') + "/").ok());
}

}  // namespace
}  // namespace loom::testing

namespace loom::testing {
namespace {

TEST_F(HostileTest, OneKeyCannotHoldMoreActiveJobsThanItsCap) {
  start({"--max-active-per-key", "2"});
  ASSERT_FALSE(submit_ok(slow_job(60), key_a_).empty());
  ASSERT_FALSE(submit_ok(slow_job(61), key_a_).empty());
  HttpResponse third = submit(slow_job(62), key_a_);
  expect_error(third, 429, "RESOURCE_EXHAUSTED", {"2 jobs queued or running", "--max-active-per-key"});
  EXPECT_EQ(third.header("retry-after"), "1");
  // Another key is not held back by alice's burst.
  EXPECT_FALSE(submit_ok(slow_job(63), key_b_).empty());
}

TEST_F(HostileTest, ConnectionsOverTheCapGet503AndTheServerRecovers) {
  start({"--max-http-connections", "4"});
  boost::asio::io_context io;
  std::vector<std::unique_ptr<boost::asio::ip::tcp::socket>> idle;
  for (int i = 0; i < 4; ++i) {
    auto s = std::make_unique<boost::asio::ip::tcp::socket>(io);
    s->connect({boost::asio::ip::address_v4::loopback(), port_});
    idle.push_back(std::move(s));
  }
  // The accept loop has taken them once a request on a fifth is answered.
  HttpResponse over;
  for (int attempt = 0; attempt < 50; ++attempt) {
    over = http_request(port_, "GET", "/healthz");
    if (over.status == 503) break;
    std::this_thread::sleep_for(20ms);
  }
  expect_error(over, 503, "UNAVAILABLE", {"limit of 4 open connections", "--max-http-connections"});
  idle.clear();  // the idle clients leave
  HttpResponse back;
  for (int attempt = 0; attempt < 50; ++attempt) {
    back = http_request(port_, "GET", "/healthz");
    if (back.status == 200) break;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(back.status, 200) << back.describe();
}

}  // namespace
}  // namespace loom::testing

namespace loom::testing {
namespace {

TEST_F(HostileTest, AJobsLogHistoryIsBounded) {
  start({"--max-log-events-per-job", "5"});
  Builder b;
  Value h = b.module("transformer.h.0").output(0);
  for (int i = 0; i < 40; ++i) b.log("step " + std::to_string(i), h.mean({0, 1, 2}));
  b.output().save("logits");
  std::string id = submit_ok(job_body("tiny", b.graph(), token_ids(1, 4, 70), true), key_a_);
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(wait_terminal(id, key_a_).value("state", ""), "COMPLETED");
  EventStreamOutcome ws = follow_job_events(websocket_port(), key_a_, id, 0, 10s);
  int logs = 0;
  bool notice = false;
  for (const json& ev : ws.events) {
    if (!ev.is_object() || ev.value("type", "") != "LOG") continue;
    ++logs;
    notice = notice || ev.value("text", "").find("are dropped") != std::string::npos;
  }
  EXPECT_EQ(logs, 6) << "5 LOG events and one notice";
  EXPECT_TRUE(notice);
}

}  // namespace
}  // namespace loom::testing

namespace loom::testing {
namespace {

std::string with_request_id(const graph::Graph& g, const at::Tensor& ids, const std::string& request_id) {
  transport::JobRequest req;
  req.model_key = "tiny";
  req.graph = g;
  req.invokes = {{runtime::to_tensor_data(ids).value()}};
  req.request_id = request_id;
  req.no_cache = true;  // the id, not the cache, must make the retry idempotent
  return transport::encode_request(req);
}

TEST_F(HostileTest, ARequestIdIsIdempotentForTheSameRequestAndAConflictForAnother) {
  start();
  Builder b;
  b.output().save("logits");
  std::string first = submit_ok(with_request_id(b.graph(), token_ids(1, 4, 80), "retry-1"), key_a_);
  ASSERT_FALSE(first.empty());
  HttpResponse again = submit(with_request_id(b.graph(), token_ids(1, 4, 80), "retry-1"), key_a_);
  ASSERT_EQ(again.status, 202) << again.describe();
  EXPECT_EQ(again.json().value("job_id", ""), first);
  EXPECT_TRUE(again.json().value("deduplicated", false));
  HttpResponse other = submit(with_request_id(b.graph(), token_ids(1, 4, 81), "retry-1"), key_a_);
  expect_error(other, 409, "FAILED_PRECONDITION", {"request id \"retry-1\" was used for job " + first,
                                                   "different request"});
  // Request ids are per key: bob's "retry-1" is his own job.
  std::string bobs = submit_ok(with_request_id(b.graph(), token_ids(1, 4, 81), "retry-1"), key_b_);
  EXPECT_FALSE(bobs.empty());
  EXPECT_NE(bobs, first);
}

TEST_F(HostileTest, ASwappedCheckpointIsNotAnsweredFromTheOldOnesResults) {
  // A model of this test's own, so the shared checkpoints stay as they are.
  const std::string ckpt = dir_.file("swapped");
  ASSERT_TRUE(runtime::write_random_gpt2_checkpoint(ckpt, runtime::Gpt2Config::tiny(), 90).ok());
  const std::string models = dir_.file("swapped.json");
  std::ofstream(models) << json{{"models", {{{"key", "tiny"}, {"path", ckpt}, {"device", "cpu"}}}}}.dump();
  auto run = [&](const std::string& body) {
    server_.reset();
    server_ = std::make_unique<ServerProcess>(ServerArgs{models, data_dir_, dir_.file("server.log"), {}});
    port_ = server_->http_port();
    HttpResponse r = http_request(port_, "POST", "/v1/jobs?wait_ms=5000", loom_headers(key_a_), body);
    EXPECT_EQ(r.status, 200) << r.describe();
    return r.json();
  };
  const std::string body = tiny_job(91);
  json before = run(body);
  EXPECT_FALSE(before.value("deduplicated", true));
  EXPECT_TRUE(run(body).value("deduplicated", false)) << "the same checkpoint answers from its result";
  ASSERT_TRUE(runtime::write_random_gpt2_checkpoint(ckpt, runtime::Gpt2Config::tiny(), 92).ok());
  json after = run(body);
  EXPECT_FALSE(after.value("deduplicated", true)) << "new weights under the same key reused an old result";
  EXPECT_NE(after["event"].value("result_sha256", ""), before["event"].value("result_sha256", ""));
}

// Scans take the submit's hostile inputs and more: garbage, a session count
// bomb, a wrong-shape set, a generation, an unknown model. Each is a clear
// error, nothing is queued, and the server goes on serving.
TEST_F(HostileTest, HostileScansAreRefusedAndQueueNothing) {
  start();
  auto scan = [&](const std::string& body) { return http_request(port_, "POST", "/v1/jobs?scan=1", loom_headers(key_a_), body); };
  expect_error(scan("not a request at all"), 400, "INVALID_ARGUMENT", {});
  {  // 100,000 traces in a few bytes
    capnp::MallocMessageBuilder message;
    auto req = message.initRoot<wire::JobRequest>();
    req.setProtocolVersion(transport::kProtocolVersion);
    req.setModelKey("tiny");
    auto g = req.initGraph();
    g.setVersion(1);
    g.setInvokes(1);
    g.initTraceInvokes(100000);
    req.initInvokes(1);
    expect_error(scan(zstd_capnp(message)), 413, "RESOURCE_EXHAUSTED", {"100000 traces, over the limit of 64"});
  }
  {  // a set of the wrong shape: found on shapes, before anything runs
    Builder b;
    Value h = b.module("transformer.h.0").output(0);
    b.module("transformer.h.1").output(0).set(h.mean({1}));
    expect_error(scan(job_body("tiny", b.graph(), token_ids(1, 5, 3))), 400, "INVALID_ARGUMENT",
                 {"the new value has shape [1, 64], but the output it replaces has shape [1, 5, 64]"});
  }
  {  // token ids outside the vocabulary are checked on the real inputs
    Builder b;
    b.output().save("logits");
    expect_error(scan(job_body("tiny", b.graph(), at::full({1, 3}, 5000, at::kLong))), 400, "INVALID_ARGUMENT",
                 {"outside the vocabulary"});
  }
  {  // unknown model
    Builder b;
    b.output().save("logits");
    expect_error(scan(job_body("nope", b.graph(), token_ids(1, 3, 1))), 404, "NOT_FOUND", {"unknown model"});
  }
  // A good one answers with shapes.
  Builder b;
  build_tiny_graph(b);
  HttpResponse ok = scan(job_body("tiny", b.graph(), token_ids(2, 6, 4)));
  ASSERT_EQ(ok.status, 200) << ok.describe();
  EXPECT_EQ(ok.json()["saves"][0]["shape"], json::array({2, 6, 64}));
  EXPECT_GT(ok.json()["estimate"]["peak_bytes"].get<int64_t>(), 0);
  EXPECT_EQ(api("GET", "/v1/jobs", key_a_).json()["jobs"].size(), 0u) << "a scan created a job";
  expect_serving();
}

}  // namespace
}  // namespace loom::testing
