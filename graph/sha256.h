// SHA-256 (OpenSSL) for content addressing and graph identity.
// Thread safety: a Sha256 object belongs to one thread; the free function is pure.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace loom {

// Incremental hashing for data that arrives in pieces (uploads, downloads).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(std::string_view data);
  std::string hex_digest();  // lowercase, 64 chars; ends the computation

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::string sha256_hex(std::string_view data);

}  // namespace loom
