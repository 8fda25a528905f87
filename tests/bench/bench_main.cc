// loom-bench [PREFIX] --data-dir DIR --json FILE: runs the suites whose name
// starts with PREFIX ("local", ...), writes FILE, prints a table.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>

#include "tests/bench/bench.h"

int main(int argc, char** argv) {
  std::string prefix, json_path = "bench.json", data_dir = "bench-data";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--json" && i + 1 < argc) {
      json_path = argv[++i];
    } else if (a == "--data-dir" && i + 1 < argc) {
      data_dir = argv[++i];
    } else {
      prefix = a;
    }
  }
  loom::bench::Context ctx;
  ctx.data_dir = data_dir;
  struct Suite {
    const char* name;
    void (*run)(loom::bench::Context&);
  };
  const Suite suites[] = {{"local", loom::bench::run_local}, {"remote", loom::bench::run_remote}, {"stream", loom::bench::run_stream}, {"probe", loom::bench::run_probe}, {"load", loom::bench::run_load}, {"gen", loom::bench::run_gen}, {"grad", loom::bench::run_grad}, {"scale", loom::bench::run_scale}};
  bool any = false;
  for (const auto& s : suites) {
    if (std::string(s.name).rfind(prefix, 0) == 0 || prefix.rfind(s.name, 0) == 0) {
      any = true;
      std::cerr << "running suite " << s.name << "...\n";
      s.run(ctx);
    }
  }
  if (!any) {
    std::cerr << "loom-bench: no suite matches \"" << prefix << "\" (suites: local, remote, stream, probe, load, gen)\n";
    return 2;
  }
  // Merge into an existing file so suites can be run one at a time.
  nlohmann::json doc = {{"metrics", nlohmann::json::object()}};
  {
    std::ifstream in(json_path);
    if (in) {
      try {
        nlohmann::json old = nlohmann::json::parse(in);
        if (old.contains("metrics") && old["metrics"].is_object()) doc = old;
      } catch (const std::exception&) {
      }
    }
  }
  std::printf("%-42s %14s %-8s %s\n", "metric", "value", "unit", "target");
  for (const auto& m : ctx.metrics) {
    doc["metrics"][m.name] = {{"value", m.value}, {"unit", m.unit}, {"target", m.target}};
    std::printf("%-42s %14.4f %-8s %s\n", m.name.c_str(), m.value, m.unit.c_str(), m.target.c_str());
  }
  std::ofstream(json_path) << doc.dump(2) << "\n";
  return 0;
}
