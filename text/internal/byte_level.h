// Byte-level helpers shared by the tokenizer: GPT-2's bytes_to_unicode table
// (every byte gets a printable code point, so a vocabulary can be stored as
// JSON text), UTF-8 validation with the offending offset, and UTF-8 encoding
// of one code point. Thread safety: pure functions over immutable tables.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace loom::text::internal {

// The code point GPT-2's encoder.py bytes_to_unicode() gives `byte`:
// printable Latin-1 bytes map to themselves, the other 68 to U+0100..U+0143.
uint32_t byte_to_codepoint(uint8_t byte);

// The byte whose code point is `cp`, or -1 when `cp` is not one of the 256.
int byte_from_codepoint(uint32_t cp);

// The UTF-8 spelling of byte_to_codepoint(byte): 1 or 2 bytes.
std::string_view byte_symbol(uint8_t byte);

// `bytes` with every byte replaced by its symbol: the form vocabularies use.
std::string to_byte_symbols(std::string_view bytes);

// Reverses to_byte_symbols; nullopt when `symbols` is not valid UTF-8 or holds
// a code point that is not one of the 256 symbols.
std::optional<std::string> from_byte_symbols(std::string_view symbols);

// The offset of the first byte of the first ill-formed UTF-8 sequence
// (overlong forms, surrogates, values over U+10FFFF and cut-short sequences
// rejected), or nullopt when `s` is valid.
std::optional<size_t> find_invalid_utf8(std::string_view s);

// Decodes the code point at s[i] (s must be valid UTF-8) and its length.
uint32_t decode_utf8_at(std::string_view s, size_t i, size_t* len);

void append_utf8(uint32_t cp, std::string* out);

// Unicode White_Space (what Rust's char::is_whitespace tests), for the
// lstrip / rstrip of added tokens.
bool is_unicode_whitespace(uint32_t cp);

}  // namespace loom::text::internal
