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

namespace {
bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
}  // namespace

Result<std::string> splice_seq(const std::string& json, uint64_t seq) {
  size_t first = 0;
  while (first < json.size() && is_json_space(json[first])) ++first;
  size_t last = json.size();
  while (last > first && is_json_space(json[last - 1])) --last;
  if (first == last || json[first] != '{' || last - first < 2 || json[last - 1] != '}') {
    return invalid_argument("event must be a JSON object text '{...}', got '" + json.substr(0, 80) + "'");
  }
  std::string inner = json.substr(first + 1, last - first - 2);
  bool empty = true;
  for (char c : inner) empty = empty && is_json_space(c);
  std::string out = "{\"seq\":" + std::to_string(seq);
  if (!empty) out += "," + inner;
  out += "}";
  return out;
}

Result<std::string> new_api_key(const std::string& name) {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    return internal_error("cannot create API key '" + name + "': OpenSSL RAND_bytes failed");
  }
  static const char* kHex = "0123456789abcdef";
  std::string key = "loom_";
  for (unsigned char b : bytes) {
    key.push_back(kHex[b >> 4]);
    key.push_back(kHex[b & 15]);
  }
  return key;
}

}  // namespace loom::server
