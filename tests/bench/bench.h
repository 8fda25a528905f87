// A tiny benchmark harness: each suite adds metrics; bench_main writes them
// as {"metrics": {NAME: {value, unit, target}}} and prints a table.
#pragma once

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace loom::bench {

struct Metric {
  std::string name;
  double value;
  std::string unit;
  std::string target;  // e.g. "<= 1.02"; empty when informational
};

struct Context {
  std::string data_dir;  // where generated checkpoints are kept between runs
  std::vector<Metric> metrics;
  void add(std::string name, double value, std::string unit, std::string target = "") {
    metrics.push_back({std::move(name), value, std::move(unit), std::move(target)});
  }
};

// OpenBLAS's thread count in this process (looked up at run time; a no-op
// with another BLAS). The remote suite runs server and local side with the
// same count so their results stay bitwise equal.
inline void set_blas_threads(int n) {
  using SetThreads = void (*)(int);
  if (auto set = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) set(n);
}

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

inline double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return 0;
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
  return v[i];
}

void run_local(Context& ctx);
void run_remote(Context& ctx);
void run_stream(Context& ctx);
void run_probe(Context& ctx);
void run_load(Context& ctx);
void run_gen(Context& ctx);
void run_grad(Context& ctx);
void run_scale(Context& ctx);

}  // namespace loom::bench

namespace loom::client {
struct ClientOptions;
}  // namespace loom::client

namespace loom::bench {

// Part of the remote suite, against its server.
void run_fetch(Context& ctx, const client::ClientOptions& options, const std::string& work_dir);

}  // namespace loom::bench
