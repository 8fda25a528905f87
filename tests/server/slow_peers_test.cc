// Peers that never answer, and shutdown with work in flight, against the
// real loom-server: a webhook receiver that accepts and stays silent delays
// neither the other webhooks nor SIGTERM; a job still running at the drain
// deadline ends in ERROR saying the server shut down.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <thread>

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

}  // namespace
}  // namespace loom::testing
