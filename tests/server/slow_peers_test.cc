// Peers that never answer, and shutdown with work in flight, against the
// real loom-server: a webhook receiver that accepts and stays silent delays
// neither the other webhooks nor SIGTERM; a job still running at the drain
// deadline ends in ERROR saying the server shut down; a normal client's
// runs succeed while idle connections, slowloris clients and a zstd bomb
// are in flight (its latency under that load is `scripts/bench load`).
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <fstream>
#include <sstream>
#include <thread>

#include <unistd.h>

#include "tests/server/hostile_load.h"
#include "tests/server/server_fixture.h"

namespace loom::testing {
namespace {

// Accepts connections and never reads or answers: the worst webhook receiver.
class SilentReceiver {
 public:
  SilentReceiver() : acceptor_(io_) {
    using tcp = boost::asio::ip::tcp;
    tcp::endpoint ep(boost::asio::ip::address_v4::loopback(), 0);
    acceptor_.open(ep.protocol());
    acceptor_.bind(ep);
    acceptor_.listen();
    accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~SilentReceiver() {
    io_.stop();
    thread_.join();
  }
  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + "/silent";
  }
  size_t accepted() const { return accepted_.load(); }

 private:
  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, boost::asio::ip::tcp::socket s) {
      if (ec) return;
      held_.push_back(std::move(s));
      ++accepted_;
      accept();
    });
  }
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::vector<boost::asio::ip::tcp::socket> held_;
  std::atomic<size_t> accepted_{0};
  std::thread thread_;
};

using SlowPeersTest = ServerTest;

TEST_F(SlowPeersTest, ASilentWebhookReceiverDelaysNeitherOtherWebhooksNorShutdown) {
  SilentReceiver silent;
  WebhookReceiver hook;
  // Each step of an attempt may take 60 s: were deliveries in line, the
  // other receiver would wait a minute, and so would the drain.
  start({"--webhook-timeout-ms", "60000", "--drain-timeout-ms", "2000"});
  std::string first = submit_ok(tiny_job(60, silent.url()), key_a_);
  ASSERT_FALSE(first.empty());
  EXPECT_EQ(wait_terminal(first, key_a_).value("state", ""), "COMPLETED");
  const auto silent_deadline = std::chrono::steady_clock::now() + 10s;
  while (silent.accepted() == 0 && std::chrono::steady_clock::now() < silent_deadline) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(silent.accepted(), 1u) << "the first webhook never reached the silent receiver\n" << server_->log();

  std::vector<std::string> others;
  for (int i = 0; i < 3; ++i) others.push_back(submit_ok(tiny_job(61 + i, hook.url()), key_a_));
  ASSERT_TRUE(hook.wait_for(3, 20s)) << hook.requests().size() << " of 3 webhooks arrived while one receiver "
                                     << "was silent\n" << server_->log();
  std::set<std::string> delivered;
  for (const auto& r : hook.requests()) delivered.insert(json::parse(r.body, nullptr, false).value("job_id", ""));
  EXPECT_EQ(delivered, std::set<std::string>(others.begin(), others.end()));

  // SIGTERM with the silent delivery still in flight: the process ends well
  // within the 60 s webhook timeout (the drain has nothing running).
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(server_->stop(30s), 0) << server_->log();
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  EXPECT_LT(took.count(), 10000) << "SIGTERM waited for the silent webhook receiver";
}

TEST_F(SlowPeersTest, AJobStillRunningAtTheDrainDeadlineEndsInErrorSayingSo) {
  start({"--drain-timeout-ms", "1000"});
  // A STREAM nobody answers: the job waits (up to its 60 s stream timeout).
  Builder b;
  Value h = b.module("transformer.h.0").output(0);
  b.stream("never_answered", h).save("back");
  std::string id = submit_ok(job_body("tiny", b.graph(), token_ids(1, 4, 70), true), key_a_);
  ASSERT_FALSE(id.empty());
  wait_state(id, "RUNNING");
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(server_->stop(30s), 0) << server_->log();
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  EXPECT_LT(took.count(), 10000) << "the drain did not stop the job at its deadline";
  start();
  json end = wait_terminal(id, key_a_);
  EXPECT_EQ(end.value("state", ""), "ERROR") << end.dump();
  EXPECT_EQ(end["error"].value("code", ""), "UNAVAILABLE") << end.dump();
  EXPECT_NE(end["error"].value("message", "").find("drain deadline"), std::string::npos) << end.dump();
}

TEST_F(SlowPeersTest, UnderHostileLoadANormalClientsBlockingRunsSucceed) {
  ASSERT_GE(raise_fd_limit(), 2200u) << "this test holds 2,050 connections: raise the descriptor limit";
  start();
  HostileLoad load(port_, {2000, 50, true, key_b_});
  load.start();
  ASSERT_EQ(load.idle_open(), 2000u);
  ASSERT_EQ(load.slowloris_open(), 50u);
  for (int i = 0; i < 40; ++i) {
    Builder b;
    build_tiny_graph(b);
    HttpResponse r = api("POST", "/v1/jobs?wait_ms=10000", key_a_, job_body("tiny", b.graph(), token_ids(2, 6, 900 + i), true));
    ASSERT_EQ(r.status, 200) << "run " << i << ": " << r.describe() << "\n" << server_->log();
    ASSERT_EQ(r.json().value("state", ""), "COMPLETED") << r.describe();
  }
  // The bomb was answered, each time with 413, and the load still holds.
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (load.bombs() == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(50ms);
  EXPECT_GE(load.bombs_refused(), 1u);
  EXPECT_EQ(load.bombs_refused(), load.bombs()) << "a bomb got an answer other than 413";
  EXPECT_GT(load.slowloris_lines(), 50u) << "the slowloris clients never got past their first line";
  load.stop();
  EXPECT_EQ(api("GET", "/healthz", "").status, 200);
}

// CPU seconds the process has used (user + system), from /proc.
double cpu_seconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));
  std::vector<std::string> f;
  for (std::string w; fields >> w;) f.push_back(w);
  if (f.size() < 13) return -1;
  return (std::stod(f[11]) + std::stod(f[12])) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

TEST_F(SlowPeersTest, OutOfDescriptorsTheAcceptLoopWaitsInsteadOfSpinningAndRecovers) {
  start({}, /*max_fds=*/96);
  const uint16_t ws_port = websocket_port();
  ASSERT_NE(ws_port, 0);
  // Connections to both ports until the server cannot accept more: each it
  // accepts costs it a descriptor; past its limit the kernel still
  // completes handshakes into the backlogs, so the connects go on succeeding.
  std::vector<std::unique_ptr<boost::asio::ip::tcp::socket>> held;
  boost::asio::io_context io;
  for (uint16_t port : {port_, ws_port}) {
    const boost::asio::ip::tcp::endpoint ep(boost::asio::ip::address_v4::loopback(), port);
    for (int i = 0; i < 150; ++i) {
      auto s = std::make_unique<boost::asio::ip::tcp::socket>(io);
      boost::system::error_code ec;
      s->connect(ep, ec);
      if (ec) break;
      held.push_back(std::move(s));
    }
  }
  ASSERT_GT(held.size(), 200u);
  std::this_thread::sleep_for(500ms);  // the server reaches EMFILE
  const double before = cpu_seconds(server_->pid());
  std::this_thread::sleep_for(2s);
  const double used = cpu_seconds(server_->pid()) - before;
  EXPECT_LT(used, 0.5) << "the server used " << used << " s of CPU in 2 s out of descriptors: the accept loop spins";
  held.clear();  // descriptors come back
  HttpResponse r;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    r = api("GET", "/healthz", "");
    if (r.status == 200) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(r.status, 200) << r.describe() << "\n" << server_->log();
  std::string id = submit_ok(tiny_job(95), key_a_);
  EXPECT_EQ(wait_terminal(id, key_a_).value("state", ""), "COMPLETED");
}

TEST_F(SlowPeersTest, PlaintextOnANonLoopbackAddressIsRefusedWithoutTheFlag) {
  const std::string base = "--models " + models_->file("models.json") + " --data-dir " + data_dir_;
  for (const char* listen : {"0.0.0.0:0", "[::]:0"}) {
    auto [code, out] = run_loom_server(base + " --listen " + listen);
    EXPECT_EQ(code, 1) << out;
    EXPECT_NE(out.find("refusing to serve plaintext HTTP on a non-loopback address"), std::string::npos) << out;
    EXPECT_NE(out.find("--allow-plaintext"), std::string::npos) << out;
  }
  auto [code, out] = run_loom_server(base + " --listen not-an-address:0");
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find("is not an IP address"), std::string::npos) << out;
  // With the operator's consent it serves (on every address, loopback included).
  ServerProcess open(ServerArgs{models_->file("models.json"), data_dir_, dir_.file("server.log"),
                                {"--allow-plaintext"}, 0, "0.0.0.0:0"});
  EXPECT_EQ(http_request(open.http_port(), "GET", "/healthz").status, 200);
}

}  // namespace
}  // namespace loom::testing
