// A scale-out deployment for tests, all real processes on this machine: a
// redis-server with AOF (tests/server/redis_process.h), N loom-servers with
// --redis and M loom-workers sharing one blob directory. Processes can be
// killed (-9) and started again to inject the faults the cluster must ride
// out.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "client/event_stream.h"
#include "tests/client/remote_test_util.h"
#include "tests/server/redis_process.h"

namespace loom::testing {

// A child process with stdout and stderr in files; waits for a line of its
// stdout that starts with `ready_prefix`.
class Child {
 public:
  Child(std::vector<std::string> args, const std::string& out_file, const std::string& err_file,
        const std::string& ready_prefix)
      : out_file_(out_file), err_file_(err_file) {
    pid_ = ::fork();
    if (pid_ == 0) {
      std::freopen(out_file.c_str(), "w", stdout);
      std::freopen(err_file.c_str(), "w", stderr);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      std::_Exit(127);
    }
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < until) {
      std::ifstream in(out_file);
      std::string line;
      while (std::getline(in, line)) {
        if (line.rfind(ready_prefix, 0) == 0) lines_.push_back(line);
      }
      if (!lines_.empty()) return;
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    throw std::runtime_error(args[0] + " did not start: " + err());
  }
  ~Child() { stop(SIGTERM); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // Sends `sig` and reaps (SIGKILL after 10 s when it does not end).
  void stop(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    for (int i = 0; i < 1000; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  const std::string& ready_line() const { return lines_.front(); }
  std::string out() const { return slurp(out_file_); }
  std::string err() const { return slurp(err_file_); }

 private:
  static std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  pid_t pid_ = -1;
  std::string out_file_, err_file_;
  std::vector<std::string> lines_;
};

// Every event of job `id`, from the start, through the WebSocket on `ws_port`.
inline std::vector<nlohmann::json> job_events(uint16_t ws_port, const std::string& api_key, const std::string& id) {
  client::EventStreamOptions eo;
  eo.endpoint = {"127.0.0.1", ws_port};
  eo.api_key = api_key;
  eo.job_id = id;
  client::EventStream events(eo);
  events.start();
  std::vector<nlohmann::json> out;
  nlohmann::json ev;
  while (events.next(ev, std::chrono::seconds(30)) == client::EventStream::Next::kEvent) out.push_back(ev);
  return out;
}

struct ClusterModel {
  std::string key;
  std::string path;
  uint32_t forward_delay_ms = 0;  // test_forward_delay_ms
};

class Cluster {
 public:
  // appendfsync: the Redis's AOF policy (RedisProcess).
  Cluster(std::vector<ClusterModel> models, const std::string& dir, int servers, int workers,
          std::vector<std::string> worker_flags = {}, std::vector<std::string> server_flags = {},
          const std::string& appendfsync = "always")
      : dir_(dir), worker_flags_(std::move(worker_flags)), server_flags_(std::move(server_flags)) {
    std::filesystem::create_directories(dir_ + "/redis");
    std::filesystem::create_directories(dir_ + "/blobs");
    redis_ = std::make_unique<RedisProcess>(dir_ + "/redis", appendfsync);
    {
      std::ofstream f(dir_ + "/models.json");
      f << "{\"models\": [";
      for (size_t i = 0; i < models.size(); ++i) {
        f << (i ? ", " : "") << "{\"key\": \"" << models[i].key << "\", \"path\": \"" << models[i].path
          << "\", \"test_forward_delay_ms\": \"" << models[i].forward_delay_ms << "\"}";
      }
      f << "]}\n";
    }
    for (int i = 0; i < workers; ++i) start_worker();
    for (int i = 0; i < servers; ++i) start_server();
    Ran r = run_loom("keys create tester --redis " + redis_->url(), "", "loom-server");
    if (r.code != 0) throw std::runtime_error("keys create: " + r.output);
    std::string out = r.stdout_only;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    key_ = out.substr(out.rfind('\n') + 1);
  }

  // Worker i is named w<i>.
  size_t start_worker() {
    const size_t i = workers_.size();
    const std::string name = "w" + std::to_string(i);
    std::vector<std::string> args = {std::string(LOOM_BIN_DIR) + "/loom-worker", "--redis", redis_->url(),
                                     "--models", dir_ + "/models.json", "--blob-dir", dir_ + "/blobs",
                                     "--name", name};
    args.insert(args.end(), worker_flags_.begin(), worker_flags_.end());
    workers_.push_back(std::make_unique<Child>(args, dir_ + "/" + name + ".out", dir_ + "/" + name + ".err", "worker "));
    return i;
  }
  size_t start_server() {
    const size_t i = servers_.size();
    const std::string name = "s" + std::to_string(i);
    std::vector<std::string> args = {std::string(LOOM_BIN_DIR) + "/loom-server", "--redis", redis_->url(),
                                     "--blob-dir", dir_ + "/blobs", "--listen", "127.0.0.1:0"};
    args.insert(args.end(), server_flags_.begin(), server_flags_.end());
    servers_.push_back(std::make_unique<Child>(args, dir_ + "/" + name + ".out", dir_ + "/" + name + ".err",
                                               "listening on "));
    return i;
  }

  std::string url(size_t server = 0) const { return servers_[server]->ready_line().substr(13); }
  uint16_t ws_port(size_t server = 0) const {
    std::istringstream in(servers_[server]->out());
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("websocket on ", 0) == 0) return static_cast<uint16_t>(std::stoi(line.substr(line.rfind(':') + 1)));
    }
    return 0;
  }
  const std::string& key() const { return key_; }
  // A job that worker `name` is running now for `model` (its stream entry
  // is pending with that worker and its record says RUNNING on it), or "".
  std::string running_on(const std::string& name, const std::string& model) {
    auto c = server::RedisConnection::connect(server::RedisAddress{"127.0.0.1", redis_->port(), 0},
                                              std::chrono::milliseconds(1000));
    if (!c.ok()) return "";
    const std::string stream = "loom:queue:" + model;
    auto pending = (*c)->command({"XPENDING", stream, "workers", "-", "+", "10", name});
    if (!pending.ok()) return "";
    for (const auto& p : pending->elements) {
      if (p.elements.empty()) continue;
      auto entry = (*c)->command({"XRANGE", stream, p.elements[0].str, p.elements[0].str});
      if (!entry.ok() || entry->elements.empty()) continue;
      for (auto& [k, v] : server::reply_pairs(entry->elements[0].elements[1])) {
        if (k != "job") continue;
        // RUNNING, and the RUNNING event (the last one) names this worker:
        // not a job it has just claimed and not started yet.
        auto state = (*c)->command({"HGET", "loom:job:" + v, "state"});
        if (!state.ok() || state->str != "RUNNING") continue;
        auto last = (*c)->command({"XREVRANGE", "loom:ev:" + v, "+", "-", "COUNT", "1"});
        if (!last.ok() || last->elements.empty()) continue;
        for (auto& [f, json] : server::reply_pairs(last->elements[0].elements[1])) {
          if (f == "json" && json.find("\"worker\":\"" + name + "\"") != std::string::npos) return v;
        }
      }
    }
    return "";
  }
  // How many of `model`'s stream entries worker `name` holds (running or taken).
  size_t held_by(const std::string& name, const std::string& model) {
    auto c = server::RedisConnection::connect(server::RedisAddress{"127.0.0.1", redis_->port(), 0},
                                              std::chrono::milliseconds(1000));
    if (!c.ok()) return 0;
    auto pending = (*c)->command({"XPENDING", "loom:queue:" + model, "workers", "-", "+", "100", name});
    return pending.ok() ? pending->elements.size() : 0;
  }
  Child& worker(size_t i) { return *workers_[i]; }
  Child& server(size_t i) { return *servers_[i]; }
  RedisProcess& redis() { return *redis_; }
  std::string logs() const {
    std::string all;
    for (size_t i = 0; i < workers_.size(); ++i) all += "--- w" + std::to_string(i) + "\n" + workers_[i]->err();
    for (size_t i = 0; i < servers_.size(); ++i) all += "--- s" + std::to_string(i) + "\n" + servers_[i]->err();
    return all;
  }

 private:
  std::string dir_;
  std::vector<std::string> worker_flags_, server_flags_;
  std::unique_ptr<RedisProcess> redis_;
  std::vector<std::unique_ptr<Child>> workers_;
  std::vector<std::unique_ptr<Child>> servers_;
  std::string key_;
};

}  // namespace loom::testing
