// Helpers for the client's tests against a real loom-server: the server as a
// subprocess on 127.0.0.1:0 with its own data directory and API key, tiny
// generated checkpoints, and a TCP relay that injects faults (a connection
// cut after N bytes of a response) between the client and the server.
#pragma once

#include <ATen/ATen.h>
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <deque>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/runtime/test_util.h"

namespace loom::testing {

// Same dtype, shape and bytes.
inline bool bitwise_equal(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  at::Tensor ca = a.contiguous().cpu(), cb = b.contiguous().cpu();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) == 0;
}

struct Ran {
  int code;
  std::string output;  // stdout and stderr together
  std::string stdout_only;
};

// Runs `build/bin/loom ARGS` with `env` prefixed ("LOOM_HOST=... "), capturing output.
// Runs build/bin/`binary` ARGS (loom by default), capturing its output.
inline Ran run_loom(const std::string& args, const std::string& env = "", const std::string& binary = "loom") {
  TempDir d;
  std::string cmd = env + " " + std::string(LOOM_BIN_DIR) + "/" + binary + " " + args + " > " + d.file("out") +
                    " 2> " + d.file("err");
  int status = std::system(cmd.c_str());
  auto slurp = [](const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  Ran r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.stdout_only = slurp(d.file("out"));
  r.output = r.stdout_only + slurp(d.file("err"));
  return r;
}

// `loom-server keys create NAME --data-dir DIR`; the key is the last line.
inline std::string create_key(const std::string& name, const std::string& data_dir) {
  Ran r = run_loom("keys create " + name + " --data-dir " + data_dir, "", "loom-server");
  if (r.code != 0) throw std::runtime_error("loom-server keys create failed: " + r.output);
  std::string out = r.stdout_only;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out.substr(out.rfind('\n') + 1);
}

// loom-server as a child process. The destructor sends SIGTERM and reaps it.
class ServerProcess {
 public:
  // models: {key: checkpoint path}; extra: more command-line flags.
  ServerProcess(const std::vector<std::pair<std::string, std::string>>& models, const std::string& dir,
                const std::vector<std::string>& extra = {}) {
    std::string models_file = dir + "/models.json";
    {
      std::ofstream f(models_file);
      f << "{\"models\": [";
      for (size_t i = 0; i < models.size(); ++i) {
        f << (i ? ", " : "") << "{\"key\": \"" << models[i].first << "\", \"path\": \"" << models[i].second
          << "\", \"device\": \"cpu\"}";
      }
      f << "]}\n";
    }
    data_dir_ = dir + "/data";
    std::string out_file = dir + "/server.out";
    log_file_ = dir + "/server.log";
    std::vector<std::string> args = {std::string(LOOM_BIN_DIR) + "/loom-server", "--models", models_file,
                                     "--data-dir", data_dir_, "--listen", "127.0.0.1:0"};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      std::freopen(out_file.c_str(), "w", stdout);
      std::freopen(log_file_.c_str(), "w", stderr);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      std::_Exit(127);
    }
    // Wait for "listening on http://HOST:PORT" and "websocket on ws://HOST:PORT".
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      std::ifstream in(out_file);
      std::string line;
      while (std::getline(in, line)) {
        if (line.rfind("listening on ", 0) == 0) url_ = line.substr(13);
        if (line.rfind("websocket on ", 0) == 0) ws_port_ = std::stoi(line.substr(line.rfind(':') + 1));
      }
      if (!url_.empty() && ws_port_ != 0) break;
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (url_.empty()) throw std::runtime_error("loom-server did not start: " + log());
    port_ = static_cast<uint16_t>(std::stoi(url_.substr(url_.rfind(':') + 1)));
  }
  ~ServerProcess() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 200; ++i) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  const std::string& url() const { return url_; }  // http://127.0.0.1:PORT
  uint16_t port() const { return port_; }
  uint16_t ws_port() const { return ws_port_; }
  const std::string& data_dir() const { return data_dir_; }
  std::string log() const {
    std::ifstream in(log_file_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  pid_t pid_ = -1;
  std::string url_;
  uint16_t port_ = 0;
  uint16_t ws_port_ = 0;
  std::string data_dir_;
  std::string log_file_;
};

// A TCP relay on 127.0.0.1:0 in front of a server port. It forwards both
// ways and, when armed, cuts a connection after N bytes of the answer to a
// request whose first line starts with a given prefix: the fault a dropped
// download or WebSocket meets. It records request heads and answer status
// lines so tests can see the client's recovery (Range, fresh URLs).
class FaultyRelay {
 public:
  explicit FaultyRelay(uint16_t target_port) : target_port_(target_port) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listen_fd_, 16) != 0) {
      throw std::runtime_error("relay: bind/listen failed");
    }
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~FaultyRelay() {
    stopping_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    acceptor_.join();
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : pumps_) t.join();
    for (int fd : fds_) ::close(fd);
  }

  uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // The next `count` answers to requests starting with `prefix` ("GET /v1/blobs/")
  // are cut after `after_bytes` bytes (queued after earlier cut_answers calls).
  void cut_answers(const std::string& prefix, size_t after_bytes, int count) {
    std::lock_guard<std::mutex> lock(mu_);
    for (int i = 0; i < count; ++i) cuts_.push_back({prefix, after_bytes});
  }
  // The next answer to a request starting with `prefix` gets byte `at` (counted
  // from the start of the answer, headers included) flipped.
  void corrupt_answer(const std::string& prefix, size_t at) {
    std::lock_guard<std::mutex> lock(mu_);
    corruptions_.push_back({prefix, at});
  }
  int cuts() const { return cuts_done_; }
  std::vector<std::string> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  std::vector<std::string> status_lines() const {
    std::lock_guard<std::mutex> lock(mu_);
    return status_lines_;
  }

 private:
  struct Conn {
    int client = -1;
    int server = -1;
    std::atomic<long> budget{-1};  // bytes of answer left before the cut; -1 = no cut armed
    std::atomic<long> corrupt_at{-1};  // answer byte to flip, counted down; -1 = none
  };

  void accept_loop() {
    while (!stopping_) {
      int c = ::accept(listen_fd_, nullptr, nullptr);
      if (c < 0) return;
      int s = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(target_port_);
      if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(c);
        ::close(s);
        continue;
      }
      auto conn = std::make_shared<Conn>();
      conn->client = c;
      conn->server = s;
      std::lock_guard<std::mutex> lock(mu_);
      fds_.push_back(c);
      fds_.push_back(s);
      pumps_.emplace_back([this, conn] { pump_up(conn); });
      pumps_.emplace_back([this, conn] { pump_down(conn); });
    }
  }

  // client -> server: notes each request head; arms the cut when it matches.
  void pump_up(std::shared_ptr<Conn> conn) {
    std::array<char, 16384> buf;
    for (;;) {
      ssize_t n = ::recv(conn->client, buf.data(), buf.size(), 0);
      if (n <= 0) break;
      std::string chunk(buf.data(), static_cast<size_t>(n));
      if (chunk.rfind("GET ", 0) == 0 || chunk.rfind("POST ", 0) == 0 || chunk.rfind("DELETE ", 0) == 0) {
        std::lock_guard<std::mutex> lock(mu_);
        requests_.push_back(chunk.substr(0, chunk.find("\r\n\r\n")));
        if (!cuts_.empty() && chunk.rfind(cuts_.front().first, 0) == 0) {
          conn->budget = static_cast<long>(cuts_.front().second);
          cuts_.pop_front();
        }
        if (!corruptions_.empty() && chunk.rfind(corruptions_.front().first, 0) == 0) {
          conn->corrupt_at = static_cast<long>(corruptions_.front().second);
          corruptions_.pop_front();
        }
      }
      if (::send(conn->server, buf.data(), static_cast<size_t>(n), MSG_NOSIGNAL) != n) break;
    }
    ::shutdown(conn->server, SHUT_RDWR);
    ::shutdown(conn->client, SHUT_RDWR);
  }

  // server -> client: forwards, and cuts both sockets when the budget is spent.
  void pump_down(std::shared_ptr<Conn> conn) {
    std::array<char, 16384> buf;
    for (;;) {
      ssize_t n = ::recv(conn->server, buf.data(), buf.size(), 0);
      if (n <= 0) break;
      if (std::string_view(buf.data(), static_cast<size_t>(n)).substr(0, 9) == "HTTP/1.1 ") {
        std::string_view v(buf.data(), static_cast<size_t>(n));
        std::lock_guard<std::mutex> lock(mu_);
        status_lines_.emplace_back(v.substr(0, v.find("\r\n")));
      }
      long corrupt = conn->corrupt_at;
      if (corrupt >= 0 && corrupt < n) {
        buf[static_cast<size_t>(corrupt)] = static_cast<char>(buf[static_cast<size_t>(corrupt)] ^ 0xff);
        conn->corrupt_at = -1;
      } else if (corrupt >= 0) {
        conn->corrupt_at = corrupt - static_cast<long>(n);
      }
      long budget = conn->budget;
      size_t forward = static_cast<size_t>(n);
      bool cut = false;
      if (budget >= 0 && static_cast<long>(forward) >= budget) {
        forward = static_cast<size_t>(budget);
        cut = true;
      } else if (budget >= 0) {
        conn->budget = budget - static_cast<long>(forward);
      }
      if (forward > 0 && ::send(conn->client, buf.data(), forward, MSG_NOSIGNAL) != static_cast<ssize_t>(forward)) {
        break;
      }
      if (cut) {
        ++cuts_done_;
        break;
      }
    }
    ::shutdown(conn->client, SHUT_RDWR);
    ::shutdown(conn->server, SHUT_RDWR);
  }

  uint16_t target_port_;
  uint16_t port_ = 0;
  int listen_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  mutable std::mutex mu_;
  std::vector<int> fds_;
  std::vector<std::thread> pumps_;
  std::vector<std::string> requests_;
  std::vector<std::string> status_lines_;
  std::deque<std::pair<std::string, size_t>> cuts_;  // request prefix, bytes of answer before the cut
  std::deque<std::pair<std::string, size_t>> corruptions_;  // request prefix, answer byte to flip
  std::atomic<int> cuts_done_{0};
};

}  // namespace loom::testing
