// Hostile background load against a loom-server on loopback, for the load
// test (slow_peers_test.cc) and the `load` benchmark: connections that
// never send a byte, slowloris clients that send a header line every
// half-second and never finish, and a zstd bomb (a small body that
// decompresses far past the limit, its frame not saying how far) posted
// again as soon as each is answered.
// Thread safety: start() and stop() from one thread; counters from any.
#pragma once

#include <sys/resource.h>
#include <zstd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/server/loopback_clients.h"

namespace loom::testing {

// Raises this process's descriptor limit to its hard limit (children, the
// server among them, inherit it); returns the soft limit now in force.
inline uint64_t raise_fd_limit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) != 0) return 0;
  r.rlim_cur = r.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &r);
  ::getrlimit(RLIMIT_NOFILE, &r);
  return r.rlim_cur;
}

// `bytes` zeros as one zstd frame whose header leaves the size out, so the
// server learns it only by decompressing.
inline std::string zstd_bomb(size_t bytes) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 1);
  std::string out(ZSTD_compressBound(1 << 20) + 64, '\0'), frame;
  const std::string zeros(1 << 20, '\0');
  for (size_t done = 0; done < bytes; done += zeros.size()) {
    ZSTD_inBuffer in{zeros.data(), zeros.size(), 0};
    const bool last = done + zeros.size() >= bytes;
    for (;;) {
      ZSTD_outBuffer o{out.data(), out.size(), 0};
      size_t left = ZSTD_compressStream2(cctx, &o, &in, last ? ZSTD_e_end : ZSTD_e_continue);
      frame.append(out.data(), o.pos);
      if (ZSTD_isError(left)) break;
      if (last ? left == 0 : in.pos == in.size) break;
    }
  }
  ZSTD_freeCCtx(cctx);
  return frame;
}

struct HostileLoadSpec {
  size_t idle = 2000;
  size_t slowloris = 50;
  bool bomb = true;
  std::string key;  // for the bomb's POST
};

class HostileLoad {
 public:
  HostileLoad(uint16_t port, HostileLoadSpec spec) : port_(port), spec_(std::move(spec)) {}
  ~HostileLoad() { stop(); }

  // Opens the idle and slowloris connections and makes the bomb (returns
  // once they are ready), then starts posting it.
  void start() {
    using tcp = boost::asio::ip::tcp;
    const tcp::endpoint ep(boost::asio::ip::address_v4::loopback(), port_);
    for (size_t i = 0; i < spec_.idle; ++i) {
      tcp::socket s(io_);
      boost::system::error_code ec;
      s.connect(ep, ec);
      if (ec) break;
      idle_.push_back(std::move(s));
    }
    for (size_t i = 0; i < spec_.slowloris; ++i) {
      auto c = std::make_shared<Slow>(io_);
      boost::system::error_code ec;
      c->socket.connect(ep, ec);
      if (ec) break;
      slow_.push_back(c);
      drip(c, 0);
    }
    io_thread_ = std::thread([this] { io_.run(); });
    if (spec_.bomb) {
      bomb_ = zstd_bomb(1ull << 30);  // 1 GiB of zeros, a few tens of KB on the wire
      bomb_thread_ = std::thread([this] {
        const std::string& body = bomb_;
        while (!stopping_) {
          HttpResponse r = http_request(port_, "POST", "/v1/jobs", loom_headers(spec_.key), body);
          ++bombs_;
          if (r.status == 413) ++bombs_refused_;
        }
      });
    }
  }

  void stop() {
    if (stopping_.exchange(true)) return;
    io_.stop();
    if (io_thread_.joinable()) io_thread_.join();
    if (bomb_thread_.joinable()) bomb_thread_.join();
  }

  size_t idle_open() const { return idle_.size(); }
  size_t slowloris_open() const { return slow_.size(); }
  size_t slowloris_lines() const { return lines_.load(); }
  size_t bomb_bytes() const { return bomb_.size(); }
  uint64_t bombs() const { return bombs_.load(); }
  uint64_t bombs_refused() const { return bombs_refused_.load(); }

 private:
  struct Slow {
    explicit Slow(boost::asio::io_context& io) : socket(io), timer(io) {}
    boost::asio::ip::tcp::socket socket;
    boost::asio::steady_timer timer;
    std::string line;
  };

  // One more header line every 500 ms, never the blank line that ends them.
  void drip(const std::shared_ptr<Slow>& c, size_t n) {
    c->line = n == 0 ? "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n" : "X-Drip-" + std::to_string(n) + ": 1\r\n";
    boost::asio::async_write(c->socket, boost::asio::buffer(c->line), [this, c, n](boost::system::error_code ec, size_t) {
      if (ec) return;  // the server closed it: fine
      ++lines_;
      c->timer.expires_after(std::chrono::milliseconds(500));
      c->timer.async_wait([this, c, n](boost::system::error_code e) {
        if (!e) drip(c, n + 1);
      });
    });
  }

  const uint16_t port_;
  const HostileLoadSpec spec_;
  std::string bomb_;
  boost::asio::io_context io_;
  std::vector<boost::asio::ip::tcp::socket> idle_;
  std::vector<std::shared_ptr<Slow>> slow_;
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> lines_{0};
  std::atomic<uint64_t> bombs_{0}, bombs_refused_{0};
  std::thread io_thread_, bomb_thread_;
};

}  // namespace loom::testing
