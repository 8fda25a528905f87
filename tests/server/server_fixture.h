// The fixture of the loom-server wire-level tests (server_test.cc,
// api_surface_test.cc): generated checkpoints, request builders, a server
// process per test on its own data directory, and error assertions.
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <ctime>
#include <fstream>
#include <regex>
#include <sstream>

#include "graph/builder.h"
#include "graph/codec.h"
#include "graph/sha256.h"
#include "runtime/execute.h"
#include "runtime/gpt2_config.h"
#include "runtime/model.h"
#include "runtime/safetensors.h"
#include "runtime/tensor_data.h"
#include "server/sqlite_job_store.h"
#include "tests/server/loopback_clients.h"
#include "tests/server/server_process.h"
#include "transport/base64.h"
#include "transport/presign.h"
#include "transport/request.h"
#include "transport/zstd_codec.h"

namespace loom::testing {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr int64_t kSlowBatch = 1;
constexpr int64_t kSlowSeq = 1024;

// Token ids [batch, seq] below 1000 (both vocabularies), varied by `salt`
// so that otherwise equal requests differ.
inline at::Tensor token_ids(int64_t batch, int64_t seq, int64_t salt) {
  return (at::arange(batch * seq, at::kLong) * 7 + salt).remainder(1000).view({batch, seq});
}

inline std::string job_body(const std::string& model, const graph::Graph& g, const at::Tensor& ids, bool no_cache = false,
                     const std::string& callback = "") {
  transport::JobRequest req;
  req.model_key = model;
  req.graph = g;
  req.invokes = {{runtime::to_tensor_data(ids).value()}};
  req.no_cache = no_cache;
  req.callback_url = callback;
  return transport::encode_request(req);
}

// Saves a layer output, an op on it and the last position's logits; logs a
// scalar. The compressed result (~12 KB) is small enough to ride inline.
inline void build_tiny_graph(Builder& b) {
  Value h0 = b.module("transformer.h.0").output(0);
  h0.save("h0");
  (h0 * 2.0).mean({-1}).save("h0_mean2");
  b.log("h0 mean", h0.mean({0, 1, 2}));
  b.output().index({Slice{}, -1}).save("last_logits");
}

inline std::string tiny_job(int64_t salt = 0, const std::string& callback = "") {
  Builder b;
  build_tiny_graph(b);
  return job_body("tiny", b.graph(), token_ids(2, 6, salt), false, callback);
}

// A job on the slow model; never served from the result cache.
inline std::string slow_job(int64_t salt, const std::string& callback = "") {
  Builder b;
  b.output().index({Slice{}, -1}).save("last_logits");
  return job_body("slow", b.graph(), token_ids(kSlowBatch, kSlowSeq, salt), true, callback);
}

// "2024-05-01T12:00:00.123Z" -> Unix milliseconds; -1 if malformed.
inline int64_t rfc3339_ms(const std::string& s) {
  static const std::regex kTime("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z");
  if (!std::regex_match(s, kTime)) return -1;
  std::tm tm{};
  ::strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  return static_cast<int64_t>(::timegm(&tm)) * 1000 + std::stoi(s.substr(20, 3));
}

// The value of sample `name` (labels included) in Prometheus text; -1 if absent.
inline double metric(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  }
  return -1;
}

// The time of the first event with this type and (if given) state; -1 if none.
inline int64_t event_time(const std::vector<json>& events, const std::string& type, const std::string& state = "") {
  for (const json& e : events) {
    if (e.value("type", "") == type && (state.empty() || e.value("state", "") == state)) {
      return rfc3339_ms(e.value("time", ""));
    }
  }
  return -1;
}

inline bool has_state(const std::vector<json>& events, const std::string& state) {
  for (const json& e : events) {
    if (e.value("state", "") == state) return true;
  }
  return false;
}

// Raw bytes of a CPU tensor, for bitwise comparison.
inline std::string tensor_bytes(const at::Tensor& t) {
  at::Tensor c = t.contiguous().cpu();
  return std::string(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
}

class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    models_ = new ServerTempDir();
    runtime::Gpt2Config slow = runtime::Gpt2Config::tiny();
    slow.n_layer = 8;
    slow.n_embd = 256;
    slow.n_head = 4;
    slow.n_positions = 1024;
    ASSERT_TRUE(runtime::write_random_gpt2_checkpoint(models_->file("tiny"), runtime::Gpt2Config::tiny(), 11).ok());
    ASSERT_TRUE(runtime::write_random_gpt2_checkpoint(models_->file("slow"), slow, 12).ok());
    json cfg = {{"models",
                 {{{"key", "tiny"}, {"path", models_->file("tiny")}, {"device", "cpu"}},
                  {{"key", "slow"}, {"path", models_->file("slow")}, {"device", "cpu"}}}}};
    std::ofstream(models_->file("models.json")) << cfg.dump();
  }
  static void TearDownTestSuite() {
    delete models_;
    models_ = nullptr;
  }

  void SetUp() override {
    data_dir_ = dir_.file("data");
    key_a_ = create_api_key(data_dir_, "alice");
    key_b_ = create_api_key(data_dir_, "bob");
    ASSERT_NE(key_a_, key_b_);
  }

  // (Re)starts the server on this test's data directory.
  // Webhook receivers in tests listen on loopback, which the server refuses
  // by default (SSRF): tests allow it unless they test that refusal.
  // `max_fds` > 0 caps the server's descriptors.
  void start(std::vector<std::string> extra = {}, uint64_t max_fds = 0) {
    if (allow_loopback_webhooks_) extra.insert(extra.end(), {"--webhook-allow", "127.0.0.0/8"});
    server_.reset();
    server_ = std::make_unique<ServerProcess>(
        ServerArgs{models_->file("models.json"), data_dir_, dir_.file("server.log"), std::move(extra), max_fds});
    port_ = server_->http_port();
  }

  // A request with the protocol header and, unless `key` is empty, the key.
  HttpResponse api(const std::string& method, const std::string& target, const std::string& key,
                   const std::string& body = "") {
    Headers h = key.empty() ? Headers{{"X-Loom-Protocol", "1"}} : loom_headers(key);
    if (method == "POST") h.push_back({"Content-Type", "application/x-loom-request"});
    return http_request(port_, method, target, h, body);
  }
  HttpResponse submit(const std::string& body, const std::string& key) { return api("POST", "/v1/jobs", key, body); }
  // Submits and returns the job id ("" plus a test failure if not 202).
  std::string submit_ok(const std::string& body, const std::string& key) {
    HttpResponse r = submit(body, key);
    json j = r.json();
    if (r.status != 202 || !j.is_object() || !j.contains("job_id")) {
      ADD_FAILURE() << "submit: " << r.describe();
      return "";
    }
    EXPECT_EQ(j.value("deduplicated", true), false);
    return j["job_id"].get<std::string>();
  }
  // Polls the snapshot until `done(state)`; returns the last snapshot.
  json wait_for(const std::string& id, const std::string& key, const std::function<bool(const std::string&)>& done,
                std::chrono::milliseconds timeout = 60s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    json snap;
    while (std::chrono::steady_clock::now() < deadline) {
      HttpResponse r = api("GET", "/v1/jobs/" + id, key);
      snap = r.json();
      if (r.status != 200 || !snap.is_object()) {
        ADD_FAILURE() << "snapshot of " << id << ": " << r.describe();
        return snap;
      }
      if (done(snap.value("state", ""))) return snap;
      std::this_thread::sleep_for(10ms);
    }
    ADD_FAILURE() << "job " << id << " still " << snap.dump() << " after " << timeout.count() << " ms\n" << server_->log();
    return snap;
  }
  json wait_terminal(const std::string& id, const std::string& key, std::chrono::milliseconds timeout = 60s) {
    return wait_for(
        id, key, [](const std::string& s) { return s == "COMPLETED" || s == "ERROR" || s == "CANCELLED"; }, timeout);
  }
  json wait_state(const std::string& id, const std::string& state) {
    return wait_for(id, key_a_, [&](const std::string& s) { return s == state; });
  }
  // First line of DATA_DIR/name.
  std::string secret(const std::string& name) {
    std::string s = read_file_bytes(data_dir_ + "/" + name);
    return s.substr(0, s.find('\n'));
  }
  uint16_t websocket_port() {
    json env = api("GET", "/v1/env", key_a_).json();
    return env.is_object() ? env.value("websocket_port", 0) : 0;
  }

  static inline ServerTempDir* models_ = nullptr;
  ServerTempDir dir_;
  std::string data_dir_, key_a_, key_b_;
  std::unique_ptr<ServerProcess> server_;
  uint16_t port_ = 0;
  bool allow_loopback_webhooks_ = true;
};


// Asserts a JSON error answer: status, code, and each of `fragments` in the message.
inline void expect_error(const HttpResponse& r, int status, const std::string& code, const std::vector<std::string>& fragments) {
  EXPECT_EQ(r.status, status) << r.describe();
  json j = r.json();
  ASSERT_TRUE(j.is_object() && j.contains("error")) << r.describe();
  EXPECT_EQ(j["error"].value("code", ""), code) << r.describe();
  std::string message = j["error"].value("message", "");
  for (const std::string& f : fragments) EXPECT_NE(message.find(f), std::string::npos) << "\"" << f << "\" not in: " << message;
}

}  // namespace loom::testing
