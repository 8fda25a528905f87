// Makes untrusted text safe to quote in a Status message: error messages
// travel in JSON bodies (which must be valid UTF-8) and in logs, so bytes
// outside printable ASCII become \xNN and long text is cut.
// Thread safety: pure function.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace loom::transport::internal {

inline std::string printable(std::string_view text, size_t max_chars = 200) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  const size_t n = text.size() < max_chars ? text.size() : max_chars;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  if (text.size() > n) out += "... (" + std::to_string(text.size()) + " bytes)";
  return out;
}

}  // namespace loom::transport::internal
