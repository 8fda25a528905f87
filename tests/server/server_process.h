// A real loom-server child process for the integration tests
// (tests/server/server_test.cc), and `loom-server keys create` to make its API keys.
//
// The server is started with fork/exec, its stdout on a pipe the test reads
// until "listening on http://HOST:PORT" and "websocket on ws://HOST:PORT";
// its stderr goes to a log file whose tail is shown when something fails.
// The pipe stays open while the child lives: closing it would make the
// server's next write to stdout raise SIGPIPE.
// Thread safety: one thread owns a ServerProcess; it must be the thread that
// outlives the child (PR_SET_PDEATHSIG follows the forking thread).
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/server/temp_dir.h"

namespace loom::testing {

struct ServerArgs {
  std::string models_file;
  std::string data_dir;
  std::string log_file;                  // the server's stderr (appended to)
  std::vector<std::string> extra;        // e.g. {"--queue-capacity", "1"}
  uint64_t max_fds = 0;                  // > 0: the server's descriptor limit, soft and hard
  std::string listen = "127.0.0.1:0";
};

// `loom-server ARGS` run to completion: its exit code and stdout+stderr.
inline std::pair<int, std::string> run_loom_server(const std::string& args) {
  std::string cmd = std::string(LOOM_BIN_DIR) + "/loom-server " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while (p != nullptr && (n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = p == nullptr ? -1 : ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

class ServerProcess {
 public:
  // Starts the server and waits (up to `startup`) for its ports; throws
  // std::runtime_error with the log's tail if it exits or stays silent.
  explicit ServerProcess(ServerArgs args, std::chrono::seconds startup = std::chrono::seconds(60))
      : args_(std::move(args)) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    out_fd_ = fds[0];
    std::vector<std::string> argv_s = {std::string(LOOM_BIN_DIR) + "/loom-server", "--models", args_.models_file,
                                       "--data-dir", args_.data_dir, "--listen", args_.listen};
    argv_s.insert(argv_s.end(), args_.extra.begin(), args_.extra.end());
    std::vector<char*> argv;
    for (auto& s : argv_s) argv.push_back(s.data());
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      // Only async-signal-safe calls until exec. The server dies with the
      // test process, even one killed by a ctest timeout.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      if (args_.max_fds > 0) {
        rlimit r{args_.max_fds, args_.max_fds};
        if (::setrlimit(RLIMIT_NOFILE, &r) != 0) ::_exit(127);
      }
      int log_fd = ::open(args_.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (::dup2(fds[1], STDOUT_FILENO) < 0 || log_fd < 0 || ::dup2(log_fd, STDERR_FILENO) < 0) ::_exit(127);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    if (pid_ < 0) {
      ::close(out_fd_);
      throw std::runtime_error("fork failed for " + argv_s[0]);
    }
    std::string why = read_ports(std::chrono::steady_clock::now() + startup);
    if (!why.empty()) {
      kill_now();
      throw std::runtime_error("loom-server did not start: " + why + "\n--- server log ---\n" + log());
    }
  }

  ~ServerProcess() {
    if (pid_ > 0) stop();
    if (out_fd_ >= 0) ::close(out_fd_);
  }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  uint16_t http_port() const { return http_port_; }
  uint16_t ws_port() const { return ws_port_; }  // as printed; tests read /v1/env
  bool running() const { return pid_ > 0; }
  int pid() const { return pid_; }

  // SIGTERM (the server drains), then waits up to `timeout` before SIGKILL.
  // Returns the exit code, or -1 if it was killed or died of a signal.
  int stop(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    if (pid_ <= 0) return exit_code_;
    ::kill(pid_, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        return exit_code_;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill_now();
    return exit_code_;
  }

  // SIGKILL: the process dies mid-whatever, as on a crash or a lost node.
  void kill_hard() { kill_now(); }

  // The server's stderr so far (last 4 KiB).
  std::string log() const {
    std::string all = read_file_bytes(args_.log_file);
    return all.size() > 4096 ? all.substr(all.size() - 4096) : all;
  }

 private:
  void kill_now() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    exit_code_ = -1;
  }

  // "" once both ports are known, else why not.
  std::string read_ports(std::chrono::steady_clock::time_point deadline) {
    static const std::regex kHttp("listening on https?://[0-9.]+:([0-9]+)");
    static const std::regex kWs("websocket on wss?://[0-9.]+:([0-9]+)");
    std::string text;
    while (http_port_ == 0 || ws_port_ == 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return "no port lines within the startup time; stdout so far: " + text;
      pollfd p{out_fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      std::array<char, 512> buf;
      ssize_t n = ::read(out_fd_, buf.data(), buf.size());
      if (n <= 0) return "the server exited (stdout closed); stdout: " + text;
      text.append(buf.data(), static_cast<size_t>(n));
      std::smatch m;
      if (http_port_ == 0 && std::regex_search(text, m, kHttp) && text.find('\n', m.position(0)) != std::string::npos) {
        http_port_ = static_cast<uint16_t>(std::stoi(m[1]));
      }
      if (ws_port_ == 0 && std::regex_search(text, m, kWs) && text.find('\n', m.position(0)) != std::string::npos) {
        ws_port_ = static_cast<uint16_t>(std::stoi(m[1]));
      }
    }
    return "";
  }

  ServerArgs args_;
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int exit_code_ = -1;
  uint16_t http_port_ = 0;
  uint16_t ws_port_ = 0;
};

// `loom-server keys create NAME --data-dir DIR`: returns the key (its last output
// line); throws std::runtime_error with the output if it fails.
inline std::string create_api_key(const std::string& data_dir, const std::string& name) {
  std::string cmd = std::string(LOOM_BIN_DIR) + "/loom-server keys create " + name + " --data-dir " + data_dir + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) throw std::runtime_error("popen failed: " + cmd);
  std::string out;
  std::array<char, 1024> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int status = ::pclose(p);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw std::runtime_error(cmd + " failed:\n" + out);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  std::string last = out.substr(out.rfind('\n') == std::string::npos ? 0 : out.rfind('\n') + 1);
  if (last.empty() || last.find(' ') != std::string::npos) throw std::runtime_error(cmd + " printed no key:\n" + out);
  return last;
}

}  // namespace loom::testing
