// loom-server over TLS (--tls-cert/--tls-key) with a throwaway CA made by
// the openssl command at test time: a blocking run, a non-blocking run
// followed over wss://, STREAM callbacks, the presigned download and an
// https:// webhook; a client that does not trust the CA refuses the server.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "client/client.h"
#include "client/trace.h"
#include "runtime/gpt2_config.h"
#include "runtime/model.h"
#include "tests/client/remote_test_util.h"

namespace loom::client {
namespace {

using loom::testing::bitwise_equal;
using loom::testing::ServerProcess;
using loom::testing::TempDir;
using namespace std::chrono_literals;

// Runs `cmd` in `dir` (the test fails on a non-zero exit).
void sh(const std::string& dir, const std::string& cmd) {
  const std::string full = "cd " + dir + " && " + cmd + " > openssl.log 2>&1";
  ASSERT_EQ(std::system(full.c_str()), 0) << full;
}

// An https:// webhook receiver: one connection at a time, TLS with the
// test CA's certificate, answers 200 and keeps each body.
class TlsReceiver {
 public:
  TlsReceiver(const std::string& cert, const std::string& key)
      : ctx_(boost::asio::ssl::context::tls_server),
        acceptor_(io_, {boost::asio::ip::address_v4::loopback(), 0}) {
    ctx_.use_certificate_chain_file(cert);
    ctx_.use_private_key_file(key, boost::asio::ssl::context::pem);
    thread_ = std::thread([this] { serve(); });
  }
  ~TlsReceiver() {
    stop_ = true;
    boost::asio::ip::tcp::socket wake(io_);
    boost::system::error_code ec;
    wake.connect(acceptor_.local_endpoint(), ec);
    thread_.join();
  }
  std::string url() const { return "https://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + "/hook"; }
  bool wait_for(size_t n, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return bodies_.size() >= n; });
  }
  std::vector<std::string> bodies() {
    std::lock_guard<std::mutex> lock(mu_);
    return bodies_;
  }

 private:
  void serve() {
    namespace http = boost::beast::http;
    while (!stop_) {
      boost::asio::ip::tcp::socket socket(io_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      if (ec || stop_) return;
      boost::asio::ssl::stream<boost::asio::ip::tcp::socket> s(std::move(socket), ctx_);
      s.handshake(boost::asio::ssl::stream_base::server, ec);
      if (ec) continue;
      boost::beast::flat_buffer buffer;
      http::request<http::string_body> req;
      http::read(s, buffer, req, ec);
      if (ec) continue;
      {
        std::lock_guard<std::mutex> lock(mu_);
        bodies_.push_back(req.body());
      }
      cv_.notify_all();
      http::response<http::string_body> res{http::status::ok, 11};
      res.body() = "thanks";
      res.prepare_payload();
      http::write(s, res, ec);
      s.shutdown(ec);
    }
  }
  boost::asio::io_context io_;
  boost::asio::ssl::context ctx_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> bodies_;
  std::thread thread_;
};

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    const std::string d = dir_->path();
    // A CA, a server certificate it signs for 127.0.0.1 and localhost, and
    // a second CA that signed nothing here.
    sh(d, "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 -subj /CN=loom-test-ca");
    sh(d, "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1");
    sh(d, "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost' > san.ext && openssl x509 -req -in server.csr "
          "-CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 1 -extfile san.ext");
    sh(d, "openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 1 -subj /CN=other-ca");
    ASSERT_TRUE(runtime::write_random_gpt2_checkpoint(dir_->file("tiny"), runtime::Gpt2Config::tiny(), 5).ok());
    server_ = new ServerProcess({{"gpt2-tiny", dir_->file("tiny")}}, d,
                                {"--tls-cert", dir_->file("server.pem"), "--tls-key", dir_->file("server.key"),
                                 "--webhook-allow", "127.0.0.1/32", "--webhook-ca-file", dir_->file("ca.pem")});
    key_ = new std::string(loom::testing::create_key("tls", server_->data_dir()));
    local_ = runtime::load_model(dir_->file("tiny")).value().release();
  }
  static void TearDownTestSuite() {
    delete local_;
    delete key_;
    delete server_;
    delete dir_;
  }
  static ClientOptions options(const std::string& ca = "ca.pem") {
    ClientOptions o;
    o.host = server_->url();
    o.api_key = *key_;
    o.ca_file = dir_->file(ca);
    o.quiet = true;
    o.timeout = 20s;
    return o;
  }
  static at::Tensor ids() { return at::arange(12, at::kLong).view({2, 6}); }

  static TempDir* dir_;
  static ServerProcess* server_;
  static std::string* key_;
  static runtime::Model* local_;
};

TempDir* TlsTest::dir_ = nullptr;
ServerProcess* TlsTest::server_ = nullptr;
std::string* TlsTest::key_ = nullptr;
runtime::Model* TlsTest::local_ = nullptr;

TEST_F(TlsTest, TheServerAnnouncesHttpsAndWss) {
  EXPECT_EQ(server_->url().rfind("https://127.0.0.1:", 0), 0u) << server_->url();
}

TEST_F(TlsTest, BlockingAndNonBlockingRunsAndTheDownloadGoOverTls) {
  Client client(options());
  Trace tr = client.model("gpt2-tiny").trace({ids()});
  tr.module("transformer.h.0").output(0).save("h0");
  tr.output().save("logits");
  tr.set_local_model(*local_);
  runtime::TraceResult local = tr.run();
  runtime::TraceResult blocking = tr.run({.remote = true, .no_cache = true});
  EXPECT_TRUE(bitwise_equal(blocking.at("logits"), local.at("logits")));
  // Non-blocking: submitted, followed over wss:// (no submit wait), then the
  // result fetched from its presigned https:// URL.
  ClientOptions o = options();
  o.submit_wait = 0ms;
  Client follower(o);
  Trace tr2 = follower.model("gpt2-tiny").trace({ids()});
  tr2.module("transformer.h.0").output(0).save("h0");
  tr2.output().save("logits");
  std::string id = tr2.submit();
  JobStatus done = follower.wait(id);
  EXPECT_EQ(done.state, JobState::kCompleted) << done.state_name;
  EXPECT_EQ(done.result_url.rfind("/v1/blobs/results/" + id + "?", 0), 0u) << done.result_url;
  runtime::TraceResult fetched = follower.result(id);
  EXPECT_TRUE(bitwise_equal(fetched.at("h0"), local.at("h0")));
  EXPECT_TRUE(bitwise_equal(fetched.at("logits"), local.at("logits")));
}

TEST_F(TlsTest, StreamCallbacksAnswerOverWss) {
  ClientOptions o = options();
  o.submit_wait = 0ms;
  Client client(o);
  Trace tr = client.model("gpt2-tiny").trace({ids()});
  HookPoint attn = tr.module("transformer.h.0.attn").output(0);
  attn.set(tr.stream("edit_attn", attn));
  tr.output().save("logits");
  int calls = 0;
  tr.on_stream("edit_attn", [&](const at::Tensor& t) {
    ++calls;
    return t * 0.5;
  });
  tr.set_local_model(*local_);
  runtime::TraceResult remote = tr.run({.remote = true, .no_cache = true});
  runtime::TraceResult local = tr.run();
  EXPECT_EQ(calls, 2);  // once remotely, once locally
  EXPECT_TRUE(bitwise_equal(remote.at("logits"), local.at("logits")));
}

TEST_F(TlsTest, AWebhookGoesToAnHttpsReceiverThatTheServerVerifies) {
  TlsReceiver hook(dir_->file("server.pem"), dir_->file("server.key"));
  Client client(options());
  Trace tr = client.model("gpt2-tiny").trace({ids()});
  tr.output().save("logits");
  std::string job;
  RunOptions ro;
  ro.remote = true;
  ro.no_cache = true;
  ro.callback_url = hook.url();
  ro.on_submitted = [&](const std::string& id) { job = id; };
  (void)tr.run(ro);
  ASSERT_TRUE(hook.wait_for(1, 20s)) << "no webhook over https\n" << server_->log();
  nlohmann::json body = nlohmann::json::parse(hook.bodies().at(0), nullptr, false);
  EXPECT_EQ(body.value("job_id", ""), job) << hook.bodies().at(0);
  EXPECT_EQ(body.value("state", ""), "COMPLETED");
}

TEST_F(TlsTest, AClientThatDoesNotTrustTheCaRefusesTheServer) {
  try {
    Client client(options("other.pem"));
    Trace tr = client.model("gpt2-tiny").trace({ids()});
    tr.output().save("logits");
    (void)tr.run({.remote = true, .no_cache = true});
    ADD_FAILURE() << "a run against a server signed by an untrusted CA succeeded";
  } catch (const ConnectionError& e) {
    EXPECT_NE(std::string(e.what()).find("TLS handshake"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("certificate verify failed"), std::string::npos) << e.what();
  }
  // And plain http:// to the TLS port gets no answer it can use.
  ClientOptions plain = options();
  plain.host = "http://127.0.0.1:" + std::to_string(server_->port());
  plain.timeout = 3s;
  Client p(plain);
  EXPECT_THROW((void)p.models(), LoomError);
}

}  // namespace
}  // namespace loom::client
