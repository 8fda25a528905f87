#include "server/job_store.h"

#include <openssl/rand.h>

#include <random>

namespace loom::server {

std::string new_job_id() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    // RAND_bytes fails only when OpenSSL cannot seed itself; std::random_device
    // reads the same kernel source (getrandom) on Linux, so ids stay unguessable.
    std::random_device rd;
    for (unsigned char& b : bytes) b = static_cast<unsigned char>(rd());
  }
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(32);
  for (unsigned char b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

}  // namespace loom::server
