// A fresh directory under /tmp for the server store tests, removed with
// everything in it when the test ends.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>

namespace loom::testing {

class ServerTempDir {
 public:
  ServerTempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "loom-server-test-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + tmpl);
    path_ = tmpl;
  }
  ~ServerTempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ServerTempDir(const ServerTempDir&) = delete;
  ServerTempDir& operator=(const ServerTempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// The whole file's bytes, or "" if it does not exist.
inline std::string read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace loom::testing
