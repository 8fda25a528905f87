// The scale-out deployment end to end, with real processes on loopback: a
// redis-server (AOF), two stateless loom-servers and two or three
// loom-workers (tests/client/cluster_util.h). The client library is the
// same as against an embedded server; the faults are real kill -9s.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "client/client.h"
#include "client/event_stream.h"
#include "client/trace.h"
#include "runtime/gpt2_config.h"
#include "runtime/model.h"
#include "server/blob_store.h"
#include "tests/client/cluster_util.h"
#include "transport/http_client.h"

namespace loom::client {
namespace {

using loom::testing::bitwise_equal;
using loom::testing::Cluster;
using loom::testing::TempDir;
using namespace std::chrono_literals;

at::Tensor ids(int64_t batch = 2, int64_t seq = 6) {
  return at::arange(batch * seq, at::kLong).remainder(1000).view({batch, seq});
}

ClientOptions options(const Cluster& c, size_t server = 0) {
  ClientOptions o;
  o.host = c.url(server);
  o.api_key = c.key();
  o.quiet = true;
  o.timeout = 60s;
  return o;
}

// Every event of a job, from the start, through `server`'s WebSocket.
std::vector<nlohmann::json> all_events(const Cluster& c, size_t server, const std::string& id) {
  return loom::testing::job_events(c.ws_port(server), c.key(), id);
}

// The job's status once it has ended (wait_for throws for ERROR and CANCELLED).
JobStatus ended(Client& client, const std::string& id, std::chrono::seconds timeout = 60s) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  JobStatus st = client.status(id);
  while (!st.terminal() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(20ms);
    st = client.status(id);
  }
  return st;
}

class ClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    ASSERT_TRUE(runtime::write_random_gpt2_checkpoint(dir_->file("tiny"), runtime::Gpt2Config::tiny(), 3).ok());
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string tiny() { return dir_->file("tiny"); }
  static TempDir* dir_;
};
TempDir* ClusterTest::dir_ = nullptr;

TEST_F(ClusterTest, ATraceThroughEitherServerEqualsTheLocalRunBitwise) {
  TempDir d;
  Cluster cluster({{"gpt2-tiny", tiny()}}, d.path(), 2, 2);
  auto local_model = runtime::load_model(tiny());
  ASSERT_TRUE(local_model.ok());
  for (size_t s = 0; s < 2; ++s) {
    Client client(options(cluster, s));
    RemoteModel m = client.model("gpt2-tiny");
    EXPECT_EQ(m.module_paths(), (*local_model)->module_paths());  // the tree the workers registered
    Trace tr = m.trace({ids()});
    HookPoint h0 = tr.module("transformer.h.0").output(0);
    tr.module("transformer.h.1").output(0).set(h0 * 2.0 + 1.0);
    tr.output().save("logits");
    h0.save("h0");
    tr.set_local_model(**local_model);
    runtime::TraceResult remote = tr.run({.remote = true});
    runtime::TraceResult local = tr.run();
    ASSERT_EQ(remote.saved.size(), 2u);
    for (size_t i = 0; i < remote.saved.size(); ++i) {
      EXPECT_EQ(remote.saved[i].name, local.saved[i].name);
      EXPECT_TRUE(bitwise_equal(remote.saved[i].tensor, local.saved[i].tensor)) << remote.saved[i].name;
    }
  }
  // GET /v1/models lists the model with both live workers and their tiers.
  auto endpoint = transport::parse_base_url(cluster.url(1));
  ASSERT_TRUE(endpoint.ok());
  transport::HttpClient http(*endpoint);
  transport::HttpRequest req;
  req.target = "/v1/models";
  req.headers = {{"Authorization", "Bearer " + cluster.key()}};
  transport::HttpResponse r = http.request(req);
  ASSERT_EQ(r.status, 200) << r.body;
  nlohmann::json models = nlohmann::json::parse(r.body);
  ASSERT_EQ(models["models"].size(), 1u);
  std::set<std::string> workers;
  for (const auto& w : models["models"][0]["workers"]) {
    workers.insert(w["name"].get<std::string>());
    EXPECT_EQ(w["tier"], "HOT");
  }
  EXPECT_EQ(workers, (std::set<std::string>{"w0", "w1"}));
}

TEST_F(ClusterTest, Kill9OfAWorkerMidRunLosesNoneOf200Jobs) {
  TempDir d;
  // 40 ms per job and a 2 s lease: the kill lands mid-job, the reclaim soon after.
  Cluster cluster({{"gpt2-tiny", tiny(), 40}}, d.path(), 2, 2, {"--lease", "2"});
  Client client(options(cluster, 0));
  Client other(options(cluster, 1));
  RemoteModel m = client.model("gpt2-tiny");
  std::vector<std::string> jobs;
  for (int i = 0; i < 200; ++i) {
    Trace tr = m.trace({ids(1, 6) + i});  // distinct: none is answered from the cache
    tr.output().save("logits");
    jobs.push_back(tr.submit());
  }
  // Kill worker 0 while it is running one of them, some way into the run.
  for (int i = 0; i < 500 && !client.status(jobs[20]).terminal(); ++i) std::this_thread::sleep_for(10ms);
  std::string victim;
  for (int i = 0; i < 2000 && victim.empty(); ++i) victim = cluster.running_on("w0", "gpt2-tiny");
  ASSERT_FALSE(victim.empty()) << cluster.logs();
  cluster.worker(0).stop(SIGKILL);
  int completed = 0;
  for (size_t i = 0; i < jobs.size(); ++i) {
    JobStatus st = ended(i % 2 ? other : client, jobs[i]);
    if (st.state == JobState::kCompleted) ++completed;
    else ADD_FAILURE() << "job " << jobs[i] << " ended " << job_state_name(st.state) << ": " << st.error_message;
  }
  EXPECT_EQ(completed, 200) << cluster.logs();
  // Each job ran once, or twice when its first worker died: a second RUNNING
  // comes only after the reclaim's LOG, and then on the other worker.
  int reclaimed = 0;
  for (const std::string& id : jobs) {
    std::vector<std::string> runners;
    bool recovered = false, ran_after_recovery = false;
    for (const auto& ev : all_events(cluster, 1, id)) {
      if (ev["type"] == "LOG" && ev.contains("recovered_run")) recovered = true;
      if (ev["type"] == "STATUS" && ev["state"] == "RUNNING") {
        runners.push_back(ev.value("worker", ""));
        if (recovered) ran_after_recovery = true;
      }
    }
    ASSERT_GE(runners.size(), 1u) << id;
    if (id == victim) {
      EXPECT_EQ(runners.size(), 2u) << "the job w0 was running when it died ran again";
    }
    if (runners.size() == 1) continue;
    ++reclaimed;
    EXPECT_EQ(runners.size(), 2u) << id;
    EXPECT_TRUE(ran_after_recovery) << id << " ran twice without a reclaim";
    EXPECT_EQ(runners[0], "w0");
    EXPECT_EQ(runners[1], "w1");
  }
  EXPECT_GE(reclaimed, 1);
  EXPECT_LE(reclaimed, 2) << "one job in hand (and at most one being taken) when w0 died";
  // Results are stored once and download through either server.
  runtime::TraceResult a = client.result(jobs[0]);
  runtime::TraceResult b = other.result(jobs[0]);
  EXPECT_TRUE(bitwise_equal(a.saved[0].tensor, b.saved[0].tensor));
}

TEST_F(ClusterTest, AJobRunningWhenTwoWorkersDiedEndsInErrorNotAThirdRun) {
  TempDir d;
  Cluster cluster({{"gpt2-tiny", tiny(), 3000}}, d.path(), 1, 3, {"--lease", "1"});
  Client client(options(cluster));
  Trace tr = client.model("gpt2-tiny").trace({ids()});
  tr.output().save("logits");
  std::string id = tr.submit();
  // Kill whichever worker runs it, twice.
  std::set<std::string> killed;
  for (int round = 0; round < 2; ++round) {
    std::string runner;
    for (int i = 0; i < 3000 && runner.empty(); ++i) {
      for (const std::string w : {"w0", "w1", "w2"}) {
        if (!killed.count(w) && cluster.running_on(w, "gpt2-tiny") == id) runner = w;
      }
      if (runner.empty()) std::this_thread::sleep_for(5ms);
    }
    ASSERT_FALSE(runner.empty()) << "round " << round << "\n" << cluster.logs();
    ASSERT_FALSE(client.status(id).terminal());
    cluster.worker(std::stoul(runner.substr(1))).stop(SIGKILL);
    killed.insert(runner);
  }
  JobStatus st = ended(client, id);
  std::string history;
  for (const auto& ev : all_events(cluster, 0, id)) {
    history += ev.value("type", "") + " " + ev.value("state", "") + " " + ev.value("worker", "") + " " +
               ev.value("text", "") + ev.value("message", "") + "\n";
  }
  EXPECT_EQ(st.state, JobState::kError) << history << cluster.logs();
  EXPECT_NE(st.error_message.find("2 workers stopped while running this job"), std::string::npos) << st.error_message;
}

TEST_F(ClusterTest, AStoppingWorkerHandsBackTheJobItTookButHadNotStarted) {
  TempDir d;
  // The default 30 s lease: a job left with the stopped worker would wait it out.
  Cluster cluster({{"gpt2-tiny", tiny(), 1500}}, d.path(), 1, 1);
  Client client(options(cluster));
  RemoteModel m = client.model("gpt2-tiny");
  std::vector<std::string> jobs;
  for (int i = 0; i < 2; ++i) {
    Trace tr = m.trace({ids(1, 6) + i});
    tr.output().save("logits");
    jobs.push_back(tr.submit());
  }
  // w0 runs one and holds the next beside it.
  std::string first;
  for (int i = 0; i < 3000 && (first.empty() || cluster.held_by("w0", "gpt2-tiny") < 2); ++i) {
    if (first.empty()) first = cluster.running_on("w0", "gpt2-tiny");
    std::this_thread::sleep_for(2ms);
  }
  ASSERT_FALSE(first.empty()) << cluster.logs();
  ASSERT_EQ(cluster.held_by("w0", "gpt2-tiny"), 2u) << cluster.logs();
  const std::string second = first == jobs[0] ? jobs[1] : jobs[0];
  cluster.start_worker();
  const auto t0 = std::chrono::steady_clock::now();
  cluster.worker(0).stop(SIGTERM);  // drains: the running job ends on w0
  for (const std::string& id : jobs) {
    JobStatus st = ended(client, id, 20s);
    EXPECT_EQ(st.state, JobState::kCompleted) << id << ": " << st.error_message << cluster.logs();
  }
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(took, 15) << "both jobs ended " << took << " s after SIGTERM: the second waited for the lease";
  std::vector<std::string> runners;
  for (const auto& ev : all_events(cluster, 0, second)) {
    if (ev["type"] == "STATUS" && ev["state"] == "RUNNING") runners.push_back(ev.value("worker", ""));
  }
  EXPECT_EQ(runners, std::vector<std::string>{"w1"}) << "the job handed back ran once, on w1";
}

TEST_F(ClusterTest, AKilledServersFollowersReattachThroughTheOtherAndLoseNoEvent) {
  TempDir d;
  Cluster cluster({{"gpt2-tiny", tiny(), 1500}}, d.path(), 2, 1);
  Client client(options(cluster, 0));
  Trace tr = client.model("gpt2-tiny").trace({ids()});
  tr.log("hello from the worker", tr.module("transformer.h.0").output(0));
  tr.output().save("logits");
  std::string id = tr.submit();
  EventStreamOptions eo;
  eo.endpoint = {"127.0.0.1", cluster.ws_port(0)};
  eo.api_key = cluster.key();
  eo.job_id = id;
  eo.max_reconnects = 0;
  std::vector<uint64_t> seqs;
  {
    EventStream first(eo);
    first.start();
    nlohmann::json ev;
    ASSERT_EQ(first.next(ev, 10s), EventStream::Next::kEvent);
    seqs.push_back(ev["seq"]);
    cluster.server(0).stop(SIGKILL);  // mid-job: the worker keeps running it
    while (first.next(ev, 2s) == EventStream::Next::kEvent) seqs.push_back(ev["seq"]);
  }
  eo.endpoint = {"127.0.0.1", cluster.ws_port(1)};
  eo.after_seq = seqs.back();
  eo.max_reconnects = 8;
  EventStream second(eo);
  second.start();
  nlohmann::json ev;
  std::string last_type;
  while (second.next(ev, 20s) == EventStream::Next::kEvent) {
    seqs.push_back(ev["seq"]);
    last_type = ev["type"];
  }
  EXPECT_TRUE(second.end_status().ok()) << second.end_status().to_string();
  EXPECT_EQ(last_type, "COMPLETED");
  for (size_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(seqs[i], i + 1) << "seq " << i;
  Client other(options(cluster, 1));
  EXPECT_EQ(other.result(id).saved.size(), 1u);
}

TEST_F(ClusterTest, RestartingRedisWithAofLosesNoJob) {
  TempDir d;
  Cluster cluster({{"gpt2-tiny", tiny(), 100}}, d.path(), 2, 2);
  Client client(options(cluster, 0));
  RemoteModel m = client.model("gpt2-tiny");
  std::vector<std::string> jobs;
  for (int i = 0; i < 30; ++i) {
    Trace tr = m.trace({ids() + i});
    tr.output().save("logits");
    jobs.push_back(tr.submit());
  }
  std::this_thread::sleep_for(400ms);
  cluster.redis().restart(/*hard=*/true);  // kill -9; everything acknowledged is in the AOF
  Client other(options(cluster, 1));
  for (const std::string& id : jobs) {
    JobStatus st = ended(other, id);
    EXPECT_EQ(st.state, JobState::kCompleted) << id << ": " << st.error_message << "\n" << cluster.logs();
  }
  EXPECT_EQ(other.result(jobs.back()).saved.size(), 1u);
  // Keys and models survived too: a new job runs.
  Trace tr = m.trace({ids()});
  tr.output().save("logits");
  EXPECT_EQ(tr.run({.remote = true}).saved.size(), 1u);
}

// A counter of `server`'s /metrics.
long long counter(const Cluster& c, size_t server, const std::string& metric) {
  auto endpoint = transport::parse_base_url(c.url(server));
  if (!endpoint.ok()) return -1;
  transport::HttpClient http(*endpoint);
  transport::HttpRequest req;
  req.target = "/metrics";
  const std::string body = http.request(req).body;
  const std::string name = "\n" + metric + " ";  // the sample, not its # TYPE line
  const size_t at = body.find(name);
  return at == std::string::npos ? -1 : std::stoll(body.substr(at + name.size()));
}

// The HTTP requests `server` has answered.
long long http_requests(const Cluster& c, size_t server) { return counter(c, server, "loom_http_requests_total"); }

// Redis holds small results only: one over --small-blob-bytes (16 KiB with
// --redis) is a file in the shared blob directory. Each comes back bitwise
// equal to the local run: small and mid-sized ones inline in the submit's
// answer (the mid one read from its file), a big one downloaded.
TEST_F(ClusterTest, ResultsOverSixteenKibAreFilesInTheBlobDirSmallerOnesLiveInRedis) {
  TempDir d;
  Cluster cluster({{"gpt2-tiny", tiny()}}, d.path(), 2, 1);
  auto local_model = runtime::load_model(tiny());
  ASSERT_TRUE(local_model.ok());
  auto blobs = server::BlobStore::open(d.path() + "/blobs");
  ASSERT_TRUE(blobs.ok());
  auto redis = server::RedisConnection::connect(server::RedisAddress{"127.0.0.1", cluster.redis().port(), 0},
                                                std::chrono::milliseconds(1000));
  ASSERT_TRUE(redis.ok());
  struct Case {
    const char* what;
    int64_t seq;         // logits are seq x 1000 floats, noise zstd barely shrinks
    bool file;
  };
  std::vector<long long> requests;  // HTTP requests each run made, the /metrics GET included
  for (Case c : {Case{"small", 2, false}, Case{"mid (24 KB)", 6, true}, Case{"big (128 KB)", 32, true}}) {
    Client client(options(cluster, c.file ? 1 : 0));
    Trace tr = client.model("gpt2-tiny").trace({ids(1, c.seq)});
    if (c.file) {
      tr.output().save("logits");
    } else {
      tr.output().slice(2, 0, 8).save("logits");  // 2 x 8 floats
    }
    tr.set_local_model(**local_model);
    RunOptions ro;
    ro.remote = true;
    ro.no_cache = true;
    std::string id;
    ro.on_submitted = [&](const std::string& j) { id = j; };
    const long long before = http_requests(cluster, c.file ? 1 : 0);
    runtime::TraceResult remote = tr.run(ro);
    requests.push_back(http_requests(cluster, c.file ? 1 : 0) - before);
    runtime::TraceResult local = tr.run();
    EXPECT_TRUE(bitwise_equal(remote.at("logits"), local.at("logits"))) << c.what;
    ASSERT_FALSE(id.empty());
    auto file = blobs->size(server::BlobKind::kResult, id);
    auto in_redis = (*redis)->command({"EXISTS", "loom:blob:1:" + id});
    ASSERT_TRUE(in_redis.ok());
    if (c.file) {
      ASSERT_TRUE(file.ok()) << c.what << ": " << file.status().message();
      EXPECT_GT(*file, 16u << 10) << c.what;
      EXPECT_EQ(in_redis->integer, 0) << c.what;
    } else {
      EXPECT_FALSE(file.ok()) << c.what;
      EXPECT_EQ(in_redis->integer, 1) << c.what;
    }
  }
  // The small and mid results came inline in the submit's answer; the big
  // one (over --inline-max, 64 KiB) took one more request, its download.
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[1], requests[0]);
  EXPECT_EQ(requests[2], requests[1] + 1);
}

// A quiet blocking run waits in its submit (ClientOptions::quiet_submit_wait,
// 10 s): a 600 ms job is one POST, with no WebSocket. Waiting only 250 ms,
// as a run with a status line does, it follows the job over a WebSocket.
TEST_F(ClusterTest, AQuietBlockingRunOfASecondLongJobNeedsNoWebSocket) {
  TempDir d;
  Cluster cluster({{"gpt2-tiny", tiny(), 600}}, d.path(), 1, 1);
  std::vector<long long> follows;
  for (std::chrono::milliseconds wait : {10000ms, 250ms}) {
    ClientOptions o = options(cluster);
    o.quiet_submit_wait = wait;
    Client client(o);
    Trace tr = client.model("gpt2-tiny").trace({ids(1, 4)});
    tr.output().save("logits");
    const long long followed = counter(cluster, 0, "loom_websocket_follows_total");
    EXPECT_EQ(tr.run({.remote = true, .quiet = true, .no_cache = true}).saved.size(), 1u);
    follows.push_back(counter(cluster, 0, "loom_websocket_follows_total") - followed);
  }
  EXPECT_EQ(follows[0], 0) << "the 600 ms job came back as the answer to its POST";
  EXPECT_EQ(follows[1], 1) << "a 250 ms wait ends before the job: it is followed";
}

TEST_F(ClusterTest, StreamCallbacksAndCancelCrossBetweenServerAndWorker) {
  TempDir d;
  Cluster cluster({{"gpt2-tiny", tiny()}, {"gpt2-slow", tiny(), 5000}}, d.path(), 2, 1);
  Client client(options(cluster, 1));
  auto local_model = runtime::load_model(tiny());
  ASSERT_TRUE(local_model.ok());
  Trace tr = client.model("gpt2-tiny").trace({ids()});
  HookPoint attn = tr.module("transformer.h.0.attn").output(0);
  attn.set(tr.stream("halve", attn));
  attn.save("attn");
  tr.output().save("logits");
  int calls = 0;
  tr.on_stream("halve", [&](const at::Tensor& t) {
    ++calls;
    return t * 0.5;
  });
  tr.set_local_model(**local_model);
  runtime::TraceResult remote = tr.run({.remote = true});
  runtime::TraceResult local = tr.run();
  EXPECT_EQ(calls, 2);
  ASSERT_EQ(remote.saved.size(), 2u);
  for (size_t i = 0; i < 2; ++i) EXPECT_TRUE(bitwise_equal(remote.saved[i].tensor, local.saved[i].tensor));

  // A cancel through one server stops the job the worker runs for another.
  Client first(options(cluster, 0));
  Trace slow = first.model("gpt2-slow").trace({ids()});
  slow.output().save("logits");
  std::string id = slow.submit();
  for (int i = 0; i < 500 && first.status(id).state != JobState::kRunning; ++i) std::this_thread::sleep_for(10ms);
  client.cancel(id);
  JobStatus st = ended(first, id, 20s);
  EXPECT_EQ(st.state, JobState::kCancelled) << st.error_message;
}

}  // namespace
}  // namespace loom::client
