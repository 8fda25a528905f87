// Shared helpers for the runtime tests: temporary directories, the Python
// fixture scripts (Debian's python3-torch), tiny generated checkpoints.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "runtime/gpt2_config.h"
#include "runtime/safetensors.h"

namespace loom::testing {

// A fresh directory under /tmp, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "loom-test-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// The Python that has torch (Debian's python3-torch); LOOM_PYTHON overrides.
inline std::string python() {
  const char* p = std::getenv("LOOM_PYTHON");
  return p != nullptr ? p : "/usr/bin/python3";
}

// Runs tests/fixtures/SCRIPT with ARGS; returns the exit status.
inline int run_fixture_script(const std::string& script, const std::string& args) {
  std::string cmd = python() + " " + LOOM_SOURCE_DIR + "/tests/fixtures/" + script + " " + args + " > /dev/null";
  return std::system(cmd.c_str());
}

inline runtime::SafetensorsFile read_or_die(const std::string& path) {
  auto f = runtime::read_safetensors_file(path);
  if (!f.ok()) throw std::runtime_error(f.status().message());
  return std::move(f).value();
}

}  // namespace loom::testing
