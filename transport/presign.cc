#include "transport/presign.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <limits>
#include <optional>

#include "transport/internal/printable.h"

namespace loom::transport {
namespace {

std::string to_hex(const unsigned char* data, size_t n) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kHex[data[i] >> 4]);
    out.push_back(kHex[data[i] & 15]);
  }
  return out;
}

std::string string_to_sign(std::string_view method, std::string_view path, int64_t expires_unix) {
  std::string s;
  s.reserve(method.size() + path.size() + 24);
  s.append(method).append("\n").append(path).append("\n").append(std::to_string(expires_unix));
  return s;
}

// Decimal digits only (no sign, no spaces), at most int64 max.
std::optional<int64_t> parse_unix_seconds(std::string_view s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
  return static_cast<int64_t>(v);
}

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  // One-shot HMAC() is not deprecated in OpenSSL 3 (only HMAC_CTX is). It
  // fails only on allocation failure, which would leave `len` 0.
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), mac, &len);
  return to_hex(mac, len);
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string presign(std::string_view secret, std::string_view method, std::string_view path, int64_t expires_unix) {
  std::string url(path);
  url.append("?expires=").append(std::to_string(expires_unix));
  url.append("&sig=").append(hmac_sha256_hex(secret, string_to_sign(method, path, expires_unix)));
  return url;
}

Status verify_presigned(std::string_view secret, std::string_view method, std::string_view path,
                        std::string_view query, int64_t now_unix) {
  if (!query.empty() && query.front() == '?') query.remove_prefix(1);
  std::optional<std::string_view> expires_text, sig;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    size_t eq = param.find('=');
    if (eq == std::string_view::npos) {
      return invalid_argument("malformed presigned query: parameter '" + internal::printable(param) + "' has no value");
    }
    std::string_view name = param.substr(0, eq);
    std::string_view value = param.substr(eq + 1);
    std::optional<std::string_view>* slot = name == "expires" ? &expires_text : name == "sig" ? &sig : nullptr;
    if (slot == nullptr) {
      return invalid_argument("malformed presigned query: unexpected parameter '" + internal::printable(name) +
                              "' (only expires and sig are allowed)");
    }
    if (slot->has_value()) {
      return invalid_argument("malformed presigned query: parameter '" + internal::printable(name) + "' given twice");
    }
    *slot = value;
  }
  if (!expires_text || !sig) {
    return invalid_argument(std::string("malformed presigned query: missing ") +
                            (!expires_text ? "'expires'" : "'sig'") + " parameter");
  }
  std::optional<int64_t> expires = parse_unix_seconds(*expires_text);
  if (!expires) {
    return invalid_argument("malformed presigned query: expires '" + internal::printable(*expires_text) +
                            "' is not decimal Unix seconds");
  }
  std::string expected = hmac_sha256_hex(secret, string_to_sign(method, path, *expires));
  if (!constant_time_equal(ascii_lower(*sig), expected)) {
    return Status(StatusCode::kPermissionDenied, "bad signature for " + internal::printable(method) + " " + internal::printable(path));
  }
  if (now_unix > *expires) {
    return Status(StatusCode::kPermissionDenied, "presigned URL expired at " + std::to_string(*expires) +
                                                     " (now " + std::to_string(now_unix) + "): ask for a fresh one");
  }
  return Status::ok_status();
}

std::string webhook_signature(std::string_view secret, std::string_view timestamp, std::string_view body) {
  std::string data;
  data.reserve(timestamp.size() + 1 + body.size());
  data.append(timestamp).append(".").append(body);
  return "sha256=" + hmac_sha256_hex(secret, data);
}

}  // namespace loom::transport
