// Generation on a real loom-server (a subprocess on 127.0.0.1:0): TOKEN
// events arrive in step order and are replayed after a reconnect, a cancel
// stops a generation mid-way, and remote tokens and per-step saves equal a
// local run's bitwise.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <thread>

#include "client/client.h"
#include "client/event_stream.h"
#include "client/trace.h"
#include "runtime/llama_config.h"
#include "runtime/model.h"
#include "runtime/tensor_data.h"
#include "tests/client/deployment.h"

namespace loom::client {
namespace {

using loom::testing::bitwise_equal;
using loom::testing::FaultyRelay;
using loom::testing::ServerProcess;
using loom::testing::TempDir;
using namespace std::chrono_literals;

class RemoteGenerateTest : public ::testing::Test {
 protected:
  // Against a cluster, each test goes through the other server.
  void SetUp() override { server_->next(); }
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    runtime::LlamaConfig c = runtime::LlamaConfig::tiny();
    c.eos_token_ids = {};  // random weights: every row runs to max_new_tokens
    ASSERT_TRUE(runtime::write_random_llama_checkpoint(dir_->file("llama"), c, 41).ok());
    runtime::LlamaConfig slow = c;  // ~10 ms per step: time to cancel mid-way
    slow.hidden_size = 512;
    slow.intermediate_size = 2048;
    slow.num_hidden_layers = 6;
    slow.num_attention_heads = 8;
    slow.num_key_value_heads = 2;
    slow.max_position_embeddings = 4096;
    ASSERT_TRUE(runtime::write_random_llama_checkpoint(dir_->file("slow"), slow, 42).ok());
    server_ = new loom::testing::Deployment({{"llama-tiny", dir_->file("llama")}, {"llama-slow", dir_->file("slow")}}, dir_->path(),
                                {"--max-token-ids-per-job", "40"});
    key_ = new std::string(server_->create_key("tester"));
  }
  static void TearDownTestSuite() {
    delete key_;
    delete server_;
    delete dir_;
  }
  ClientOptions options() const {
    ClientOptions o;
    o.host = server_->url();
    o.api_key = *key_;
    o.quiet = true;
    o.timeout = 30s;
    return o;
  }
  static RunOptions generation(int64_t n, bool remote) {
    RunOptions ro;
    ro.remote = remote;
    ro.generation = graph::GenerateOptions{};
    ro.generation->max_new_tokens = n;
    return ro;
  }
  static TempDir* dir_;
  static loom::testing::Deployment* server_;
  static std::string* key_;
};
TempDir* RemoteGenerateTest::dir_ = nullptr;
loom::testing::Deployment* RemoteGenerateTest::server_ = nullptr;
std::string* RemoteGenerateTest::key_ = nullptr;

TEST_F(RemoteGenerateTest, RemoteTokensAndStepSavesEqualLocalAndTokenEventsComeInOrder) {
  Client client(options());
  auto local = runtime::load_model(dir_->file("llama"));
  ASSERT_TRUE(local.ok()) << local.status().message();
  at::Tensor a = at::arange(5, at::kLong).view({1, 5}) * 7, b = at::arange(8, at::kLong).view({1, 8}) * 3 + 1;
  Trace tr = client.model("llama-tiny").trace();
  tr.invoke({a});
  tr.invoke({b});
  auto h = tr.module("model.layers.0").all_steps().output(0);
  h.set(h + tr.constant(runtime::to_tensor_data(at::full({64}, 0.5f)).value()));
  tr.module("lm_head").all_steps().output().save("logits");
  tr.module("model.norm").step(3).output().save("norm@3");
  tr.set_local_model(**local);

  std::vector<TokenEvent> events;
  RunOptions remote = generation(10, true);
  remote.on_token = [&](const TokenEvent& t) { events.push_back(t); };
  runtime::TraceResult got = tr.run(remote);
  runtime::TraceResult want = tr.run(generation(10, false));
  ASSERT_EQ(got.saved.size(), want.saved.size());
  for (size_t i = 0; i < got.saved.size(); ++i) {
    EXPECT_EQ(got.saved[i].name, want.saved[i].name);
    EXPECT_TRUE(bitwise_equal(got.saved[i].tensor, want.saved[i].tensor)) << got.saved[i].name;
  }
  const at::Tensor tokens = got.at("tokens");
  ASSERT_EQ(tokens.sizes(), (std::vector<int64_t>{2, 18}));
  ASSERT_EQ(events.size(), 10u);
  for (int64_t k = 0; k < 10; ++k) {
    EXPECT_EQ(events[k].step, k);
    ASSERT_EQ(events[k].tokens.size(), 2u);
    EXPECT_EQ(events[k].tokens[0], tokens[0][8 + k].item<int64_t>());
    EXPECT_EQ(events[k].tokens[1], tokens[1][8 + k].item<int64_t>());
    if (k > 0) {
      EXPECT_GE(events[k].elapsed_ms, events[k - 1].elapsed_ms);
    }
  }
}

TEST_F(RemoteGenerateTest, TokenEventsAreReplayedAfterAReconnect) {
  Client client(options());
  Trace tr = client.model("llama-tiny").trace({at::arange(6, at::kLong).view({1, 6})});
  std::string id = tr.submit(generation(12, true));
  client.wait_for(id, 10ms);

  FaultyRelay relay(server_->ws_port());
  relay.cut_answers("GET /v1/jobs/", 400, 1);  // mid-replay of the first connection
  EventStreamOptions eo;
  eo.endpoint = {"127.0.0.1", relay.port()};
  eo.api_key = *key_;
  eo.job_id = id;
  eo.initial_backoff = 20ms;
  EventStream events(eo);
  events.start();
  std::vector<int64_t> steps;
  std::vector<uint64_t> seqs;
  nlohmann::json ev;
  for (;;) {
    auto got = events.next(ev, 10s);
    ASSERT_NE(got, EventStream::Next::kTimeout);
    if (got == EventStream::Next::kEnded) break;
    seqs.push_back(ev["seq"].get<uint64_t>());
    if (ev["type"] == "TOKEN") steps.push_back(ev["step"].get<int64_t>());
  }
  EXPECT_EQ(relay.cuts(), 1);
  EXPECT_GE(events.reconnects(), 1);
  for (size_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(seqs[i], i + 1) << "no event lost or repeated";
  std::vector<int64_t> expected(12);
  for (int64_t k = 0; k < 12; ++k) expected[k] = k;
  EXPECT_EQ(steps, expected);
}

TEST_F(RemoteGenerateTest, ACancelStopsAGenerationMidWay) {
  Client client(options());
  Trace tr = client.model("llama-slow").trace({at::arange(64, at::kLong).view({1, 64})});
  RunOptions ro = generation(2000, true);
  std::string id = tr.submit(ro);
  std::atomic<int64_t> seen{0};
  // Follow the job's events until a few tokens came, then cancel.
  std::thread canceller([&] {
    for (int i = 0; i < 3000 && seen.load() < 3; ++i) std::this_thread::sleep_for(5ms);
    client.cancel(id);
  });
  WaitOptions wo;
  wo.quiet = true;
  wo.timeout = 60s;
  wo.on_token = [&](const TokenEvent& t) { seen = t.step + 1; };
  EXPECT_THROW(client.wait(id, wo), CancelledError);
  canceller.join();
  JobStatus st = client.status(id);
  EXPECT_EQ(st.state, JobState::kCancelled);
  EXPECT_GE(seen.load(), 3);
  EXPECT_LT(seen.load(), 2000) << "the run stopped at a step, not at the end";
}

// A huge batch over many steps must not grow the stored history without
// bound: past --max-token-ids-per-job the events keep only step and time.
TEST_F(RemoteGenerateTest, TokenIdsInEventsAreBoundedPerJob) {
  Client client(options());
  Trace tr = client.model("llama-tiny").trace({at::arange(12, at::kLong).view({2, 6})});
  std::vector<TokenEvent> events;
  RunOptions ro = generation(30, true);
  ro.on_token = [&](const TokenEvent& t) { events.push_back(t); };
  runtime::TraceResult r = tr.run(ro);
  EXPECT_EQ(r.at("tokens").size(1), 36) << "the result holds every token";
  ASSERT_EQ(events.size(), 30u);
  for (size_t k = 0; k < events.size(); ++k) {
    EXPECT_EQ(events[k].step, static_cast<int64_t>(k));
    EXPECT_EQ(events[k].tokens.size(), k < 20 ? 2u : 0u) << "step " << k;  // 20 steps x 2 rows = the 40 allowed
  }
}

TEST_F(RemoteGenerateTest, BadGenerationOptionsAreRefusedAtSubmit) {
  Client client(options());
  Trace tr = client.model("llama-tiny").trace({at::arange(6, at::kLong).view({1, 6})});
  RunOptions ro = generation(4, true);
  ro.generation->stop_token_ids = std::vector<int64_t>{999999};
  try {
    tr.run(ro);
    FAIL() << "a stop id outside the vocabulary was accepted";
  } catch (const LoomError& e) {
    EXPECT_NE(std::string(e.what()).find("outside the vocabulary"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace loom::client
