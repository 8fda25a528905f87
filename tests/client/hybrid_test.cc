// Hybrid execution against a real loom-server (a subprocess on 127.0.0.1:0):
// stream nodes whose callbacks run here while the server waits, LOG events,
// deadlines, a dropped socket and reattach, malformed replies, and several
// jobs streaming at once. Every remote result is checked against the same
// trace run locally.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <thread>

#include "client/client.h"
#include "client/event_stream.h"
#include "client/internal/stream_answerer.h"
#include "client/trace.h"
#include "runtime/gpt2_config.h"
#include "runtime/model.h"
#include "runtime/safetensors.h"
#include "tests/client/deployment.h"
#include "transport/stream_frames.h"

namespace loom::client {
namespace {

using loom::testing::bitwise_equal;
using loom::testing::FaultyRelay;
using loom::testing::ServerProcess;
using loom::testing::TempDir;
using namespace std::chrono_literals;


// Zeroes head 1 of an attention output [batch, seq, n_embd] (tiny: 4 heads of 16).
at::Tensor zero_head(const at::Tensor& attn) {
  at::Tensor out = attn.clone();
  out.slice(-1, 16, 32).zero_();
  return out;
}

class HybridTest : public ::testing::Test {
 protected:
  // Against a cluster, each test goes through the other server.
  void SetUp() override { server_->next(); }
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    ASSERT_TRUE(runtime::write_random_gpt2_checkpoint(dir_->file("tiny"), runtime::Gpt2Config::tiny(), 5).ok());
    server_ = new loom::testing::Deployment({{"gpt2-tiny", dir_->file("tiny")}}, dir_->path(), {"--max-stream-bytes", "65536"});
    key_ = new std::string(server_->create_key("hybrid"));
    local_ = runtime::load_model(dir_->file("tiny")).value().release();
  }
  static void TearDownTestSuite() {
    delete local_;
    delete key_;
    delete server_;
    delete dir_;
  }
  static ClientOptions options() {
    ClientOptions o;
    o.host = server_->url();
    o.api_key = *key_;
    o.quiet = true;
    o.timeout = 20s;
    return o;
  }
  static at::Tensor ids(int64_t batch = 2, int64_t seq = 6) {
    return at::arange(batch * seq, at::kLong).remainder(1000).view({batch, seq});
  }
  // Streams block 0's attention output to "edit_attn" and puts the reply back.
  static void stream_attention(Trace& tr) {
    HookPoint attn = tr.module("transformer.h.0.attn").output(0);
    attn.set(tr.stream("edit_attn", attn));
    tr.output().save("logits");
  }
  // Follows job `id` with a raw event stream; returns it started.
  static std::unique_ptr<EventStream> follow_raw(const std::string& id, uint16_t port = 0) {
    EventStreamOptions eo;
    eo.endpoint = {"127.0.0.1", port != 0 ? port : server_->ws_port()};
    eo.api_key = *key_;
    eo.job_id = id;
    eo.initial_backoff = 20ms;
    auto events = std::make_unique<EventStream>(eo);
    events->start();
    return events;
  }
  // The next event of `type` (others skipped); fails the test on an end or timeout.
  static nlohmann::json next_of(EventStream& events, const std::string& type) {
    nlohmann::json ev;
    for (;;) {
      auto got = events.next(ev, 15s);
      if (got != EventStream::Next::kEvent) {
        ADD_FAILURE() << "no " << type << " event: " << events.end_status().to_string();
        return {};
      }
      if (ev.value("type", "") == type) return ev;
    }
  }
  static std::string reply_frame(uint64_t stream_id, const at::Tensor& t) {
    transport::StreamReply r;
    r.stream_id = stream_id;
    r.tensors = runtime::encode_safetensors({{"value", t}}).value();
    return transport::encode_stream_reply(r);
  }
  static at::Tensor streamed_tensor(const nlohmann::json& stream_event) {
    auto req = transport::decode_stream_request(stream_event);
    EXPECT_TRUE(req.ok()) << req.status().to_string();
    return runtime::read_safetensors_buffer(req->tensors).value().tensors.at(0).tensor;
  }

  static TempDir* dir_;
  static loom::testing::Deployment* server_;
  static std::string* key_;
  static runtime::Model* local_;
};

TempDir* HybridTest::dir_ = nullptr;
loom::testing::Deployment* HybridTest::server_ = nullptr;
std::string* HybridTest::key_ = nullptr;
runtime::Model* HybridTest::local_ = nullptr;

TEST_F(HybridTest, OneStreamRunsTheCallbackHereAndMatchesTheLocalRun) {
  Client client(options());
  Trace tr = client.model("gpt2-tiny").trace({ids()});
  stream_attention(tr);
  std::vector<std::vector<int64_t>> shapes;
  tr.on_stream("edit_attn", [&](const at::Tensor& t) {
    shapes.push_back(t.sizes().vec());
    return zero_head(t);
  });
  tr.set_local_model(*local_);
  runtime::TraceResult remote = tr.run({.remote = true});
  runtime::TraceResult local = tr.run();
  ASSERT_EQ(shapes.size(), 2u);  // once remotely, once locally
  EXPECT_EQ(shapes[0], (std::vector<int64_t>{2, 6, 64}));
  EXPECT_EQ(shapes[0], shapes[1]);
  EXPECT_TRUE(bitwise_equal(remote.at("logits"), local.at("logits")));

  Trace plain = client.model("gpt2-tiny").trace({ids()});
  plain.output().save("logits");
  plain.set_local_model(*local_);
  EXPECT_FALSE(bitwise_equal(plain.run().at("logits"), remote.at("logits")));  // the edit took effect
}

TEST_F(HybridTest, SeveralStreamsAreAnsweredInGraphOrder) {
  Client client(options());
  Trace tr = client.model("gpt2-tiny").trace({ids()});
  HookPoint a0 = tr.module("transformer.h.0.attn").output(0);
  a0.set(tr.stream("first", a0));
  HookPoint h1 = tr.module("transformer.h.1").output(0);
  h1.set(tr.stream("second", h1));
  Value summary = tr.stream("third", tr.output().mean({-1, -2}), /*any_shape=*/true);
  summary.save("summary");
  std::vector<std::string> order;
  tr.on_stream("first", [&](const at::Tensor& t) { order.push_back("first"); return zero_head(t); });
  tr.on_stream("second", [&](const at::Tensor& t) { order.push_back("second"); return t * 0.5; });
  tr.on_stream("third", [&](const at::Tensor& t) {
    order.push_back("third");
    return at::stack({t, t + 1.0});  // another shape: allowed by any_shape
  });
  runtime::TraceResult remote = tr.run({.remote = true});
  EXPECT_EQ(order, (std::vector<std::string>{"first", "second", "third"}));
  tr.set_local_model(*local_);
  runtime::TraceResult local = tr.run();
  EXPECT_EQ(remote.at("summary").sizes(), (std::vector<int64_t>{2, 2}));
  EXPECT_TRUE(bitwise_equal(remote.at("summary"), local.at("summary")));
}

TEST_F(HybridTest, CallbackThatThrowsFailsTheJobWithItsMessage) {
  Client client(options());
  Trace tr = client.model("gpt2-tiny").trace({ids()});
  stream_attention(tr);
  tr.on_stream("edit_attn", [](const at::Tensor&) -> at::Tensor { throw std::runtime_error("callback exploded"); });
  try {
    tr.run({.remote = true});
    FAIL() << "the run succeeded";
  } catch (const RemoteError& e) {
    EXPECT_NE(std::string(e.what()).find("callback exploded"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("edit_attn"), std::string::npos) << e.what();
  }
  tr.set_local_model(*local_);
  EXPECT_THROW(tr.run(), ExecutionError);
}

TEST_F(HybridTest, ExpiredDeadlineFailsTheJobNamingTheCallback) {
  Client client(options());
  Trace tr = client.model("gpt2-tiny").trace({ids()});
  stream_attention(tr);
  std::string id = tr.submit({.stream_timeout = 300ms});  // nobody answers
  try {
    client.wait_for(id, 20ms, {}, 20s);
    FAIL() << "the job completed";
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.code(), StatusCode::kDeadlineExceeded) << e.what();
    EXPECT_NE(std::string(e.what()).find("\"edit_attn\" got no reply within 300 ms"), std::string::npos) << e.what();
  }
}

TEST_F(HybridTest, CancelStopsAJobWaitingForAReply) {
  Client client(options());
  Trace tr = client.model("gpt2-tiny").trace({ids()});
  stream_attention(tr);
  std::string id = tr.submit({.stream_timeout = 20s});
  auto events = follow_raw(id);
  next_of(*events, "STREAM");  // it waits for a reply now
  client.cancel(id);  // next_of gives up after 15 s, before the 20 s deadline
  nlohmann::json end = next_of(*events, "CANCELLED");
  EXPECT_NE(end.value("message", "").find("waiting for stream callback \"edit_attn\""), std::string::npos)
      << end.dump();
  EXPECT_EQ(client.status(id).state, JobState::kCancelled);
}

TEST_F(HybridTest, DroppedSocketThenReattachWithinTheDeadlineCompletes) {
  Client client(options());
  Trace tr = client.model("gpt2-tiny").trace({ids()});
  stream_attention(tr);
  std::string id = tr.submit({.stream_timeout = 20s});
  {
    auto events = follow_raw(id);
    nlohmann::json stream = next_of(*events, "STREAM");
    EXPECT_EQ(stream.value("callback", ""), "edit_attn");
    EXPECT_EQ(stream.value("stream_id", 0), 1);
    events->stop();  // gone without answering
  }
  EXPECT_EQ(client.status(id).state, JobState::kRunning);
  Client later(options());  // another process could do the same: attach by ID with handlers
  later.on_stream("edit_attn", zero_head);
  runtime::TraceResult remote = later.attach(id);
  tr.on_stream("edit_attn", zero_head);
  tr.set_local_model(*local_);
  EXPECT_TRUE(bitwise_equal(remote.at("logits"), tr.run().at("logits")));
}

TEST_F(HybridTest, SocketCutMidStreamReconnectsAndGetsTheRequestAgain) {
  Client client(options());
  Trace tr = client.model("gpt2-tiny").trace({ids(2, 64)});  // 32 KiB attention output: a long frame
  stream_attention(tr);
  std::string id = tr.submit({.stream_timeout = 20s});
  FaultyRelay relay(server_->ws_port());
  relay.cut_answers("GET /v1/jobs/", 6000, 1);  // inside the STREAM frame
  auto events = follow_raw(id, relay.port());
  internal::StreamAnswerer answerer({{"edit_attn", runtime::tensor_stream_fn(zero_head)}}, 1 << 30);
  int streams_seen = 0;
  nlohmann::json ev;
  for (;;) {
    auto got = events->next(ev, 15s);
    ASSERT_EQ(got, EventStream::Next::kEvent) << events->end_status().to_string();
    std::string type = ev.value("type", "");
    if (type == "STREAM") {
      ++streams_seen;
      events->send(answerer.answer(ev), true);
    }
    if (transport::is_terminal(transport::parse_event_type(type))) break;
  }
  EXPECT_EQ(ev.value("type", ""), "COMPLETED") << ev.dump();
  EXPECT_EQ(relay.cuts(), 1);
  EXPECT_GE(events->reconnects(), 1);
  EXPECT_EQ(streams_seen, 1);  // the cut one never arrived whole; the resent one did
}

TEST_F(HybridTest, MalformedRepliesAreRejectedAndTheJobKeepsWaiting) {
  Client client(options());
  Trace tr = client.model("gpt2-tiny").trace({ids()});
  stream_attention(tr);
  std::string id = tr.submit({.stream_timeout = 20s});
  auto events = follow_raw(id);
  nlohmann::json stream = next_of(*events, "STREAM");
  at::Tensor sent = streamed_tensor(stream);
  auto rejected = [&](const std::string& frame, bool binary = false) {
    events->send(frame, binary);
    nlohmann::json r = next_of(*events, "REJECTED");
    return r.value("message", "");
  };
  EXPECT_NE(rejected("not json at all").find("not a JSON object"), std::string::npos);
  EXPECT_NE(rejected(R"({"type":"HELLO"})").find("only send STREAM_REPLY"), std::string::npos);
  EXPECT_NE(rejected(R"({"type":"STREAM_REPLY"})").find("stream_id"), std::string::npos);
  EXPECT_NE(rejected(R"({"type":"STREAM_REPLY","stream_id":1,"tensors":"%%%"})").find("not base64"),
            std::string::npos);
  EXPECT_NE(rejected(reply_frame(7, sent), true).find("stream id 7 is unknown"), std::string::npos);
  EXPECT_NE(rejected(std::string("\xff\xff\0\0{}", 6), true).find("header length"), std::string::npos);
  EXPECT_EQ(client.status(id).state, JobState::kRunning);
  // A well-formed reply of the wrong shape fails the job, naming both shapes.
  events->send(reply_frame(1, sent.slice(1, 0, 3)), true);
  nlohmann::json end = next_of(*events, "ERROR");
  EXPECT_EQ(end.value("code", ""), "INVALID_ARGUMENT");
  EXPECT_NE(end.value("message", "").find("replied Float[2, 3, 64]"), std::string::npos) << end.dump();
  EXPECT_NE(end.value("message", "").find("sent as Float[2, 6, 64]"), std::string::npos) << end.dump();
}

TEST_F(HybridTest, WrongDtypeAndOversizedRepliesFailTheJobWithTheReason) {
  Client client(options());
  {
    Trace tr = client.model("gpt2-tiny").trace({ids()});
    stream_attention(tr);
    std::string id = tr.submit();
    auto events = follow_raw(id);
    at::Tensor sent = streamed_tensor(next_of(*events, "STREAM"));
    events->send(reply_frame(1, sent.to(at::kDouble)), true);
    nlohmann::json end = next_of(*events, "ERROR");
    EXPECT_NE(end.value("message", "").find("replied Double[2, 6, 64]"), std::string::npos) << end.dump();
  }
  {
    Trace tr = client.model("gpt2-tiny").trace({ids()});
    tr.stream("grow", tr.output().mean({-1, -2}), /*any_shape=*/true).save("big");
    std::string id = tr.submit();
    auto events = follow_raw(id);
    next_of(*events, "STREAM");
    events->send(reply_frame(1, at::zeros({40000})), true);  // 160 KB, over the server's 64 KiB
    nlohmann::json end = next_of(*events, "ERROR");
    EXPECT_EQ(end.value("code", ""), "RESOURCE_EXHAUSTED") << end.dump();
    EXPECT_NE(end.value("message", "").find("over the server's stream limit of 65536"), std::string::npos)
        << end.dump();
  }
  {
    // The client library refuses the same reply before sending it.
    Trace tr = client.model("gpt2-tiny").trace({ids()});
    tr.stream("grow", tr.output().mean({-1, -2}), /*any_shape=*/true).save("big");
    tr.on_stream("grow", [](const at::Tensor&) { return at::zeros({40000}); });
    try {
      tr.run({.remote = true});
      FAIL() << "the run succeeded";
    } catch (const RemoteError& e) {
      EXPECT_NE(std::string(e.what()).find("over the server's stream limit"), std::string::npos) << e.what();
    }
  }
}

TEST_F(HybridTest, ConcurrentJobsEachStreamToTheirOwnClient) {
  constexpr int kJobs = 4;
  std::vector<std::thread> threads;
  std::vector<at::Tensor> remote(kJobs), local(kJobs);
  std::vector<std::string> errors(kJobs);
  std::atomic<int> calls{0};
  for (int k = 0; k < kJobs; ++k) {
    threads.emplace_back([&, k] {
      try {
        Client client(options());
        Trace tr = client.model("gpt2-tiny").trace({ids() + k});
        stream_attention(tr);
        double factor = 1.0 + k;
        tr.on_stream("edit_attn", [&, factor](const at::Tensor& t) {
          ++calls;
          std::this_thread::sleep_for(20ms);  // let the jobs overlap
          return t * factor;
        });
        remote[k] = tr.run({.remote = true}).at("logits");
      } catch (const std::exception& e) {
        errors[k] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int k = 0; k < kJobs; ++k) {
    ASSERT_EQ(errors[k], "") << "job " << k;
    Trace tr(*local_, {ids() + k});
    stream_attention(tr);
    double factor = 1.0 + k;
    tr.on_stream("edit_attn", [factor](const at::Tensor& t) { return t * factor; });
    EXPECT_TRUE(bitwise_equal(remote[k], tr.run().at("logits"))) << "job " << k;
  }
  EXPECT_EQ(calls.load(), kJobs);
}

TEST_F(HybridTest, LogEventsReachTheClientLocallyAndRemotely) {
  Client client(options());
  Trace tr = client.model("gpt2-tiny").trace({ids()});
  tr.log("h0 mean", tr.module("transformer.h.0").output(0).mean({0, 1, 2}));
  tr.output().save("logits");
  std::vector<std::pair<std::string, std::string>> remote_logs, local_logs;
  tr.run({.remote = true, .on_log = [&](const std::string& t, const std::string& v) { remote_logs.emplace_back(t, v); }});
  tr.set_local_model(*local_);
  tr.run({.on_log = [&](const std::string& t, const std::string& v) { local_logs.emplace_back(t, v); }});
  ASSERT_EQ(remote_logs.size(), 1u);
  EXPECT_EQ(remote_logs[0].first, "h0 mean");
  EXPECT_EQ(remote_logs[0].second.rfind("Float[] ", 0), 0u) << remote_logs[0].second;
  EXPECT_EQ(remote_logs, local_logs);
}

TEST_F(HybridTest, MissingHandlerIsAValidationErrorBeforeSubmitting) {
  Client client(options());
  Trace tr = client.model("gpt2-tiny").trace({ids()});
  stream_attention(tr);
  EXPECT_THROW(tr.run({.remote = true}), ValidationError);
  tr.set_local_model(*local_);
  EXPECT_THROW(tr.run(), ValidationError);
}

}  // namespace
}  // namespace loom::client
