// The real loom-server the remote benchmark suites run against: a seeded
// tiny GPT-2 ("gpt2-tiny") in a temporary directory, an API key, and the
// server as a subprocess on loopback. `blas_threads` > 0 sets OpenBLAS's
// thread count in the server and in this process alike (so local runs
// compute what the server does).
#pragma once

#include <fstream>
#include <stdexcept>
#include <cstdlib>
#include <sstream>
#include <string>
#include <thread>

#include "client/job_client.h"
#include "runtime/gpt2_config.h"
#include "tests/bench/bench.h"
#include "tests/server/server_process.h"

namespace loom::bench {

class BenchServer {
 public:
  explicit BenchServer(int blas_threads = 0) : blas_threads_(blas_threads) {
    ckpt_ = dir_.file("gpt2-tiny");
    if (!runtime::write_random_gpt2_checkpoint(ckpt_, runtime::Gpt2Config::tiny(), 99).ok()) {
      throw std::runtime_error("cannot write checkpoint");
    }
    std::ofstream(dir_.file("models.json")) << "{\"models\": [{\"key\": \"gpt2-tiny\", \"path\": \"" << ckpt_ << "\"}]}";
    std::string data = dir_.file("data");
    key_ = loom::testing::create_api_key(data, "bench");
    loom::testing::ServerArgs args{dir_.file("models.json"), data, dir_.file("server.log"), {}};
    if (blas_threads_ > 0) {
      set_blas_threads(blas_threads_);
      args.extra = {"--blas-threads", std::to_string(blas_threads_)};
    }
    // LOOM_BENCH_SERVER_FLAGS="--io-workers 2": server flags to compare settings.
    if (const char* flags = std::getenv("LOOM_BENCH_SERVER_FLAGS")) {
      std::istringstream words(flags);
      for (std::string w; words >> w;) args.extra.push_back(w);
    }
    server_ = std::make_unique<loom::testing::ServerProcess>(args);
  }
  ~BenchServer() {
    server_->stop();
    if (blas_threads_ > 0) set_blas_threads(static_cast<int>(std::thread::hardware_concurrency()));
  }

  client::ClientOptions client_options() const {
    client::ClientOptions co;
    co.host = "http://127.0.0.1:" + std::to_string(server_->http_port());
    co.api_key = key_;
    co.quiet = true;
    return co;
  }
  const std::string& checkpoint() const { return ckpt_; }
  uint16_t http_port() const { return server_->http_port(); }
  const std::string& api_key() const { return key_; }
  std::string work_dir() const { return dir_.path(); }

 private:
  int blas_threads_;
  loom::testing::ServerTempDir dir_;
  std::string ckpt_, key_;
  std::unique_ptr<loom::testing::ServerProcess> server_;
};

}  // namespace loom::bench
