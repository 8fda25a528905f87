#include "text/internal/byte_level.h"

#include <array>

namespace loom::text::internal {
namespace {

struct ByteTables {
  std::array<uint32_t, 256> cp{};
  std::array<int16_t, 0x144> byte_of{};
  std::array<char, 512> sym{};  // 2 bytes per byte, second 0 when 1 long
  std::array<uint8_t, 256> sym_len{};
};

// Transcribed from GPT-2's encoder.py: bytes in "!".."~", "¡".."¬", "®".."ÿ"
// keep their value; the rest, in byte order, take 256, 257, ...
ByteTables make_tables() {
  ByteTables t;
  t.byte_of.fill(-1);
  auto kept = [](int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); };
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    t.cp[b] = kept(b) ? static_cast<uint32_t>(b) : next++;
    t.byte_of[t.cp[b]] = static_cast<int16_t>(b);
    std::string s;
    append_utf8(t.cp[b], &s);
    t.sym[2 * b] = s[0];
    t.sym[2 * b + 1] = s.size() > 1 ? s[1] : 0;
    t.sym_len[b] = static_cast<uint8_t>(s.size());
  }
  return t;
}

const ByteTables& tables() {
  static const ByteTables t = make_tables();
  return t;
}

}  // namespace

uint32_t byte_to_codepoint(uint8_t byte) { return tables().cp[byte]; }

int byte_from_codepoint(uint32_t cp) { return cp < 0x144 ? tables().byte_of[cp] : -1; }

std::string_view byte_symbol(uint8_t byte) {
  const ByteTables& t = tables();
  return std::string_view(&t.sym[2 * byte], t.sym_len[byte]);
}

std::string to_byte_symbols(std::string_view bytes) {
  const ByteTables& t = tables();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) out.append(&t.sym[2 * b], t.sym_len[b]);
  return out;
}

std::optional<std::string> from_byte_symbols(std::string_view symbols) {
  if (find_invalid_utf8(symbols)) return std::nullopt;
  std::string out;
  out.reserve(symbols.size());
  for (size_t i = 0; i < symbols.size();) {
    size_t len = 0;
    int b = byte_from_codepoint(decode_utf8_at(symbols, i, &len));
    if (b < 0) return std::nullopt;
    out.push_back(static_cast<char>(b));
    i += len;
  }
  return out;
}

std::optional<size_t> find_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    unsigned char c = p[i];
    if (c < 0x80) { ++i; continue; }
    size_t len;
    uint32_t min;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; min = 0x10000; }
    else return i;
    // Like Python's decoder, a bad sequence is reported at its first byte.
    if (i + len > n) return i;
    uint32_t cp = c & (0x7F >> len);
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return std::nullopt;
}

uint32_t decode_utf8_at(std::string_view s, size_t i, size_t* len) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  unsigned char c = p[i];
  if (c < 0x80) { *len = 1; return c; }
  size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
  uint32_t cp = c & (0x7F >> n);
  for (size_t k = 1; k < n && i + k < s.size(); ++k) cp = (cp << 6) | (p[i + k] & 0x3F);
  *len = n;
  return cp;
}

void append_utf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool is_unicode_whitespace(uint32_t cp) {
  if (cp >= 0x09 && cp <= 0x0D) return true;
  switch (cp) {
    case 0x20: case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029:
    case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

}  // namespace loom::text::internal
