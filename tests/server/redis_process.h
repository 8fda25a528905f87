// A real redis-server for tests: a child process on 127.0.0.1 at a free
// port, its AOF (appendfsync always) in its own directory, so a restart,
// even after kill -9, finds everything that was acknowledged.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "server/redis_client.h"

namespace loom::testing {

// A TCP port nothing listens on right now (bound to 0, then released).
inline uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

class RedisProcess {
 public:
  // appendfsync "always" (the default here: nothing acknowledged is lost,
  // even to a kill -9) or "everysec" (Redis's own default: up to a second).
  explicit RedisProcess(std::string dir, std::string appendfsync = "always")
      : dir_(std::move(dir)), appendfsync_(std::move(appendfsync)), port_(free_port()) {
    start();
  }
  ~RedisProcess() { stop(/*hard=*/true); }
  RedisProcess(const RedisProcess&) = delete;
  RedisProcess& operator=(const RedisProcess&) = delete;

  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  uint16_t port() const { return port_; }

  void start() {
    const std::string port = std::to_string(port_);
    std::vector<std::string> args = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                                     "--appendonly", "yes", "--appendfsync", appendfsync_, "--dir", dir_,
                                     "--daemonize", "no", "--logfile", dir_ + "/redis.log",
                                     // STREAM frames ride pub/sub: no output-buffer cap on subscribers.
                                     "--client-output-buffer-limit", "pubsub 0 0 0"};
    pid_ = ::fork();
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execvp(argv[0], argv.data());
      std::_Exit(127);
    }
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < until) {
      auto c = server::RedisConnection::connect(server::RedisAddress{"127.0.0.1", port_, 0},
                                                std::chrono::milliseconds(200));
      // Ready once the AOF is loaded (LOADING errors until then).
      if (c.ok() && (*c)->command({"PING"}).ok()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    throw std::runtime_error("redis-server did not start on port " + port);
  }

  // kill -9 (hard) or SIGTERM, and reap.
  void stop(bool hard) {
    if (pid_ <= 0) return;
    ::kill(pid_, hard ? SIGKILL : SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  void restart(bool hard) {
    stop(hard);
    start();
  }

 private:
  std::string dir_;
  std::string appendfsync_;
  uint16_t port_;
  pid_t pid_ = -1;
};

}  // namespace loom::testing
