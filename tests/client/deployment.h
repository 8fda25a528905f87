// What the remote suites run against. By default one embedded loom-server
// (tests/client/remote_test_util.h); with LOOM_TEST_BACKEND=redis, the
// scale-out deployment of tests/client/cluster_util.h: a real redis-server,
// two loom-servers and two loom-workers, with each test talking to one of
// the servers in turn (next()). ctest runs those suites both ways.
#pragma once

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "tests/client/cluster_util.h"

namespace loom::testing {

class Deployment {
 public:
  // `flags` are given to loom-server, and in a cluster to loom-worker too:
  // only those both take (--max-stream-bytes, --max-token-ids-per-job, ...).
  Deployment(const std::vector<std::pair<std::string, std::string>>& models, const std::string& dir,
             const std::vector<std::string>& flags = {}) {
    if (!clustered()) {
      embedded_ = std::make_unique<ServerProcess>(models, dir, flags);
      return;
    }
    std::vector<ClusterModel> cm;
    for (const auto& [key, path] : models) cm.push_back({key, path, 0});
    cluster_ = std::make_unique<Cluster>(cm, dir + "/cluster", 2, 2, flags, flags);
  }
  static bool clustered() {
    const char* b = std::getenv("LOOM_TEST_BACKEND");
    return b != nullptr && std::string(b) == "redis";
  }
  // The next test talks to the other server (a no-op when embedded).
  void next() { current_ = (current_ + 1) % 2; }

  std::string url() const { return embedded_ ? embedded_->url() : cluster_->url(current_); }
  uint16_t port() const {
    if (embedded_) return embedded_->port();
    const std::string u = url();
    return static_cast<uint16_t>(std::stoi(u.substr(u.rfind(':') + 1)));
  }
  uint16_t ws_port() const { return embedded_ ? embedded_->ws_port() : cluster_->ws_port(current_); }
  // A new API key named `name`.
  std::string create_key(const std::string& name) const {
    Ran r = embedded_ ? run_loom("keys create " + name + " --data-dir " + embedded_->data_dir(), "", "loom-server")
                      : run_loom("keys create " + name + " --redis " + cluster_->redis().url(), "", "loom-server");
    if (r.code != 0) throw std::runtime_error("loom-server keys create failed: " + r.output);
    std::string out = r.stdout_only;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out.substr(out.rfind('\n') + 1);
  }
  std::string logs() const { return embedded_ ? embedded_->log() : cluster_->logs(); }

 private:
  std::unique_ptr<ServerProcess> embedded_;
  std::unique_ptr<Cluster> cluster_;
  size_t current_ = 0;
};

}  // namespace loom::testing
