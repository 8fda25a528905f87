// Runs the built `loom` CLI as a user would (a real process): shared by the
// CLI tests. Thread safety: plain functions.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace loom::testing {

struct Ran {
  int code;
  std::string output;  // stdout and stderr
};

inline Ran run_loom(const std::string& args) {
  std::string cmd = std::string(LOOM_BIN_DIR) + "/loom " + args + " 2>&1";
  Ran r{-1, ""};
  FILE* p = ::popen(cmd.c_str(), "r");
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace loom::testing
