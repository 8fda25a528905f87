// Fetching a large result to a file: a job whose result is a 1 GiB float
// tensor (pseudo-random, made on the server from the model's logits),
// fetched by `loom result ID -o FILE` as a child process. Reports the rate
// over the whole command (download of the compressed bytes, SHA-256 check,
// decompression into the file) and the child's peak resident memory
// (ru_maxrss, measured through a small Python parent).
#include <ATen/ATen.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "client/client.h"
#include "client/trace.h"
#include "tests/bench/bench.h"

namespace loom::bench {

void run_fetch(Context& ctx, const client::ClientOptions& co, const std::string& work_dir) {
  client::Client c(co);
  client::Trace tr = c.model("gpt2-tiny").trace({at::arange(16, at::kLong).view({1, 16})});
  // 16,000 logits repeated 16,800 times: 268.8 M floats, 1.0 GiB; the sine
  // of the scaled running sum does not repeat (zstd still halves it).
  Value repeated = tr.op("aten::repeat", {tr.output().flatten(), std::vector<int64_t>{16800}});
  tr.op("aten::sin", {tr.op("aten::cumsum", {repeated, 0}) * 1000.0}).save("noise");
  std::string id = tr.submit({.no_cache = true});
  client::JobStatus st = c.wait_for(id, std::chrono::milliseconds(100), {}, std::chrono::minutes(5));

  std::string out = work_dir + "/fetched.safetensors";
  std::string host_env = "LOOM_HOST=" + co.host, key_env = "LOOM_API_KEY=" + co.api_key;
  std::string loom_bin = std::string(LOOM_BIN_DIR) + "/loom";
  // The child's peak memory comes from a small Python parent: a child forked
  // from this process would count the page tables it inherits (Linux keeps
  // the pre-exec high-water mark in ru_maxrss), and this process holds
  // LibTorch. Python's own ~10 MiB at fork time is included: an upper bound.
  const std::string rss_file = work_dir + "/fetch.maxrss";
  const char* kMeasure =
      "import os, sys\n"
      "pid = os.fork()\n"
      "if pid == 0:\n"
      "    os.execv(sys.argv[1], sys.argv[1:])\n"
      "_, status, ru = os.wait4(pid, 0)\n"
      "open(os.environ['LOOM_BENCH_RSS'], 'w').write(str(ru.ru_maxrss))\n"
      "sys.exit(os.waitstatus_to_exitcode(status))\n";
  std::string rss_env = "LOOM_BENCH_RSS=" + rss_file;
  auto t0 = std::chrono::steady_clock::now();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::putenv(host_env.data());
    ::putenv(key_env.data());
    ::putenv(rss_env.data());
    ::execl("/usr/bin/python3", "python3", "-c", kMeasure, loom_bin.c_str(), "result", id.c_str(), "-o", out.c_str(),
            "--quiet", static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw std::runtime_error("loom result failed (status " + std::to_string(status) + ")");
  }
  double seconds = seconds_since(t0);
  uint64_t written = std::filesystem::file_size(out);
  std::filesystem::remove(out);
  ctx.add("remote.fetch_result_mib", static_cast<double>(st.result_size) / (1 << 20), "MiB");
  ctx.add("remote.fetch_file_mib", static_cast<double>(written) / (1 << 20), "MiB");
  // The rate at which the result lands in the file, and the compressed bytes' rate on the wire.
  ctx.add("remote.fetch_gbps", static_cast<double>(written) * 8 / 1e9 / seconds, "Gbit/s");
  ctx.add("remote.fetch_wire_gbps", static_cast<double>(st.result_size) * 8 / 1e9 / seconds, "Gbit/s");
  std::ifstream rss_in(rss_file);
  double maxrss_kib = 0;
  rss_in >> maxrss_kib;
  ctx.add("remote.fetch_client_peak_rss_mib", maxrss_kib / 1024, "MiB", "<= 64");
}

}  // namespace loom::bench
