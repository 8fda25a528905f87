// Model tiers (server/model_tiers.h) end to end: a real loom-server (and
// loom-workers over a real redis-server) serving more tiny GPT-2s than its
// --device-memory and --host-memory budgets hold. Jobs for a model that is
// not HOT go through LOADING with progress, the least recently used models
// are demoted, GET /v1/models shows the tiers, and every result still
// equals the local run bitwise.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "client/client.h"
#include "client/errors.h"
#include "client/trace.h"
#include "runtime/gpt2_config.h"
#include "runtime/model.h"
#include "tests/client/cluster_util.h"
#include "transport/http_client.h"

namespace loom::client {
namespace {

using loom::testing::bitwise_equal;
using loom::testing::TempDir;
using namespace std::chrono_literals;

using loom::testing::job_events;

ClientOptions client_options(const std::string& url, const std::string& key) {
  ClientOptions o;
  o.host = url;
  o.api_key = key;
  o.quiet = true;
  o.timeout = 60s;
  return o;
}

nlohmann::json get_models(const std::string& url, const std::string& key) {
  auto endpoint = transport::parse_base_url(url);
  if (!endpoint.ok()) throw std::runtime_error(endpoint.status().message());
  transport::HttpClient http(*endpoint);
  transport::HttpRequest req;
  req.target = "/v1/models";
  req.headers = {{"Authorization", "Bearer " + key}};
  transport::HttpResponse r = http.request(req);
  if (r.status != 200) throw std::runtime_error("GET /v1/models: " + r.body);
  return nlohmann::json::parse(r.body);
}

// Embedded: key -> tier.
std::map<std::string, std::string> tiers(const std::string& url, const std::string& key) {
  std::map<std::string, std::string> out;
  const nlohmann::json models = get_models(url, key);
  for (const auto& m : models["models"]) out[m["key"]] = m["tier"];
  return out;
}

class TiersTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    for (const char* name : {"a", "b", "c"}) {
      const uint64_t seed = static_cast<uint64_t>(name[0]);
      ASSERT_TRUE(runtime::write_random_gpt2_checkpoint(dir_->file(name), runtime::Gpt2Config::tiny(), seed).ok());
    }
    auto m = runtime::load_model(dir_->file("a"));
    ASSERT_TRUE(m.ok());
    model_bytes_ = (*m)->parameter_bytes();
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string path(const std::string& name) { return dir_->file(name); }
  // Room for one model and a half.
  static std::string budget() { return std::to_string(model_bytes_ * 3 / 2); }

  // Runs a trace of model `key` on the server and locally; expects equal
  // results and returns the job's events.
  static std::vector<nlohmann::json> run_and_compare(Client& client, const std::string& key, uint16_t ws_port,
                                                     const std::string& api_key) {
    auto local = runtime::load_model(path(key));
    EXPECT_TRUE(local.ok());
    Trace tr = client.model(key).trace({at::arange(12, at::kLong).view({2, 6})});
    tr.module("transformer.h.0").output(0).save("h0");
    tr.output().save("logits");
    tr.set_local_model(**local);
    std::string id;
    RunOptions ro;
    ro.remote = true;
    ro.no_cache = true;
    ro.on_submitted = [&](const std::string& job_id) { id = job_id; };
    runtime::TraceResult remote = tr.run(ro);
    runtime::TraceResult here = tr.run();
    EXPECT_EQ(remote.saved.size(), 2u);
    for (size_t i = 0; i < remote.saved.size() && i < here.saved.size(); ++i) {
      EXPECT_TRUE(bitwise_equal(remote.saved[i].tensor, here.saved[i].tensor)) << key << " " << remote.saved[i].name;
    }
    return job_events(ws_port, api_key, id);
  }

  static TempDir* dir_;
  static int64_t model_bytes_;
};
TempDir* TiersTest::dir_ = nullptr;
int64_t TiersTest::model_bytes_ = 0;

// The LOADING events of a job: their progress values in order (empty: it never loaded).
std::vector<double> loading_progress(const std::vector<nlohmann::json>& events) {
  std::vector<double> p;
  for (const auto& ev : events) {
    if (ev.value("type", "") == "STATUS" && ev.value("state", "") == "LOADING") p.push_back(ev.value("progress", -1.0));
  }
  return p;
}

TEST_F(TiersTest, EmbeddedServerDemotesLeastRecentlyUsedAndLoadsWithProgress) {
  ASSERT_GT(model_bytes_, 100000);
  TempDir d;
  loom::testing::ServerProcess server({{"a", path("a")}, {"b", path("b")}, {"c", path("c")}}, d.path(),
                                      {"--device-memory", budget(), "--host-memory", budget()});
  const std::string key = loom::testing::create_key("tiers", server.data_dir());
  // Placed in config order at start: one fits the device, one the host.
  using Tiers = std::map<std::string, std::string>;
  EXPECT_EQ(tiers(server.url(), key), (Tiers{{"a", "HOT"}, {"b", "WARM"}, {"c", "COLD"}}));
  EXPECT_EQ(get_models(server.url(), key)["models"][0]["bytes"], model_bytes_);

  Client client(client_options(server.url(), key));
  // HOT: no LOADING.
  EXPECT_TRUE(loading_progress(run_and_compare(client, "a", server.ws_port(), key)).empty());
  // WARM b is promoted; a (the least recently used HOT) goes WARM, and c stays COLD.
  std::vector<double> p = loading_progress(run_and_compare(client, "b", server.ws_port(), key));
  ASSERT_FALSE(p.empty());
  EXPECT_EQ(p.front(), 0.0);
  EXPECT_EQ(tiers(server.url(), key), (Tiers{{"a", "WARM"}, {"b", "HOT"}, {"c", "COLD"}}));
  // COLD c is read from disk with progress; b goes WARM, pushing a (older) to COLD.
  p = loading_progress(run_and_compare(client, "c", server.ws_port(), key));
  ASSERT_GE(p.size(), 3u) << "a load from disk reports its progress";
  EXPECT_EQ(p.front(), 0.0);
  EXPECT_EQ(p.back(), 1.0);
  EXPECT_TRUE(std::is_sorted(p.begin(), p.end()));
  EXPECT_EQ(tiers(server.url(), key), (Tiers{{"a", "COLD"}, {"b", "WARM"}, {"c", "HOT"}}));
  // And a again, from disk: the same numbers as before it was dropped.
  EXPECT_FALSE(loading_progress(run_and_compare(client, "a", server.ws_port(), key)).empty());
  EXPECT_EQ(tiers(server.url(), key), (Tiers{{"a", "HOT"}, {"b", "COLD"}, {"c", "WARM"}}));
}

TEST_F(TiersTest, AModelLargerThanTheDeviceBudgetFailsItsJobsAndTheServerServesOn) {
  TempDir d;
  const std::string half = std::to_string(model_bytes_ / 2);
  loom::testing::ServerProcess server({{"a", path("a")}}, d.path(), {"--device-memory", half});
  const std::string key = loom::testing::create_key("tiers", server.data_dir());
  EXPECT_EQ(tiers(server.url(), key)["a"], "WARM");
  Client client(client_options(server.url(), key));
  for (int i = 0; i < 2; ++i) {
    Trace tr = client.model("a").trace({at::arange(6, at::kLong).view({1, 6})});
    tr.output().save("logits");
    try {
      tr.run({.remote = true, .no_cache = true});
      ADD_FAILURE() << "ran a model larger than the device budget";
    } catch (const LoomError& e) {
      EXPECT_EQ(e.code(), StatusCode::kResourceExhausted) << e.what();
      EXPECT_NE(std::string(e.what()).find("--device-memory"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(tiers(server.url(), key)["a"], "WARM");
}

TEST_F(TiersTest, ACheckpointGoneFromDiskFailsItsLoadWithTheReasonAndTheServerServesOn) {
  TempDir d;
  const std::string gone = d.file("gone");
  ASSERT_TRUE(runtime::write_random_gpt2_checkpoint(gone, runtime::Gpt2Config::tiny(), 77).ok());
  loom::testing::ServerProcess server({{"a", path("a")}, {"x", gone}}, d.path(),
                                      {"--device-memory", budget(), "--host-memory", "1"});
  const std::string key = loom::testing::create_key("tiers", server.data_dir());
  EXPECT_EQ(tiers(server.url(), key), (std::map<std::string, std::string>{{"a", "HOT"}, {"x", "COLD"}}));
  std::filesystem::remove_all(gone);
  Client client(client_options(server.url(), key));
  Trace tr = client.model("x").trace({at::arange(6, at::kLong).view({1, 6})});
  tr.output().save("logits");
  try {
    tr.run({.remote = true, .no_cache = true});
    ADD_FAILURE() << "ran a model whose checkpoint is gone";
  } catch (const LoomError& e) {
    EXPECT_EQ(e.code(), StatusCode::kNotFound) << e.what();
    EXPECT_NE(std::string(e.what()).find("loading model \"x\" from " + gone), std::string::npos) << e.what();
  }
  // Nothing was demoted for it: a stays HOT and runs as before.
  EXPECT_EQ(tiers(server.url(), key), (std::map<std::string, std::string>{{"a", "HOT"}, {"x", "COLD"}}));
  EXPECT_TRUE(loading_progress(run_and_compare(client, "a", server.ws_port(), key)).empty());
}

TEST_F(TiersTest, TheBlockingCliShowsLoadingWithProgressInItsStatusLine) {
  TempDir d;
  loom::testing::ServerProcess server({{"a", path("a")}, {"b", path("b")}}, d.path(),
                                      {"--device-memory", budget(), "--host-memory", "1"});
  const std::string key = loom::testing::create_key("tiers", server.data_dir());
  EXPECT_EQ(tiers(server.url(), key), (std::map<std::string, std::string>{{"a", "HOT"}, {"b", "COLD"}}));
  loom::testing::Ran made = loom::testing::run_loom("make-inputs " + d.file("in.safetensors") +
                                                    " --batch 1 --seq 6 --vocab 100 --seed 2");
  ASSERT_EQ(made.code, 0) << made.output;
  loom::testing::Ran r = loom::testing::run_loom(
      "trace b --remote --no-cache --inputs " + d.file("in.safetensors") + " --save transformer.h.0.output.0 -o " +
          d.file("out.safetensors"),
      "LOOM_SUBMIT_WAIT_MS=0 LOOM_HOST=" + server.url() + " LOOM_API_KEY=" + key);
  ASSERT_EQ(r.code, 0) << r.output;
  // Not a terminal: one plain line per state and per progress step.
  EXPECT_NE(r.output.find("LOADING (model 0%)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("LOADING (model 100%)"), std::string::npos) << r.output;
  EXPECT_EQ(tiers(server.url(), key), (std::map<std::string, std::string>{{"a", "COLD"}, {"b", "HOT"}}));
}

TEST_F(TiersTest, WorkersPublishTheirTiersAndLoadOnDemand) {
  TempDir d;
  loom::testing::Cluster cluster({{"a", path("a")}, {"b", path("b")}}, d.path(), 1, 1,
                                 {"--device-memory", budget(), "--host-memory", budget()});
  auto worker_tier = [&](const std::string& model) {
    const nlohmann::json models = get_models(cluster.url(), cluster.key());
    for (const auto& m : models["models"]) {
      if (m["key"] == model && m["workers"].size() == 1) return m["workers"][0]["tier"].get<std::string>();
    }
    return std::string("?");
  };
  EXPECT_EQ(worker_tier("a"), "HOT");
  EXPECT_EQ(worker_tier("b"), "WARM");
  Client client(client_options(cluster.url(), cluster.key()));
  std::vector<double> p = loading_progress(run_and_compare(client, "b", cluster.ws_port(), cluster.key()));
  EXPECT_FALSE(p.empty());
  EXPECT_EQ(worker_tier("a"), "WARM");
  EXPECT_EQ(worker_tier("b"), "HOT");
}

TEST_F(TiersTest, AWorkerWithTheModelHotTakesItsJobsBeforeOneThatWouldLoadIt) {
  TempDir d;
  // Both workers: a HOT, b WARM. The first job for b makes it HOT on one of them.
  loom::testing::Cluster cluster({{"a", path("a")}, {"b", path("b")}}, d.path(), 1, 2,
                                 {"--device-memory", budget(), "--host-memory", budget()});
  Client client(client_options(cluster.url(), cluster.key()));
  EXPECT_FALSE(loading_progress(run_and_compare(client, "b", cluster.ws_port(), cluster.key())).empty());
  // One at a time, so the worker with b HOT is always idle: it runs them all
  // and none loads b again (without the preference, the other worker would
  // take about half and load b for each).
  for (int i = 0; i < 6; ++i) {
    EXPECT_TRUE(loading_progress(run_and_compare(client, "b", cluster.ws_port(), cluster.key())).empty()) << i;
  }
}

}  // namespace
}  // namespace loom::client
