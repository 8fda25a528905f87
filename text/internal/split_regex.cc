#include "text/internal/split_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

namespace loom::text::internal {

const char kGpt2SplitPattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  int n = pcre2_get_error_message(code, buf, sizeof(buf));
  return n < 0 ? "PCRE2 error " + std::to_string(code) : std::string(reinterpret_cast<char*>(buf), n);
}

// Unicode White_Space, what \s means to Oniguruma (Hugging Face) and to
// Python's regex (GPT-2). PCRE2's UCP \s also takes U+180E (through \h).
constexpr char kWhiteSpaceItems[] = R"(\t-\r\x{85}\p{Z})";

// `pattern` with each \s spelled as kWhiteSpaceItems, and \S outside a class
// as its negation. \S inside a class is left to PCRE2 (no known pattern
// has one).
std::string exact_white_space(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 32);
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      char e = pattern[++i];
      if (e == 's') {
        out += in_class ? std::string(kWhiteSpaceItems) : "[" + std::string(kWhiteSpaceItems) + "]";
      } else if (e == 'S' && !in_class) {
        out += "[^" + std::string(kWhiteSpaceItems) + "]";
      } else if (e == 'Q') {
        // \Q...\E quotes its text: copy it through untouched.
        size_t end = pattern.find("\\E", i + 1);
        end = end == std::string_view::npos ? pattern.size() : end + 2;
        out += pattern.substr(i - 1, end - (i - 1));
        i = end - 1;
      } else {
        out += c;
        out += e;
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A ']' straight after '[' or '[^' is a literal, not the end.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
      continue;
    }
    if (in_class && c == '[' && i + 1 < pattern.size() && pattern[i + 1] == ':') {
      size_t end = pattern.find(":]", i + 2);  // a POSIX class, [:alpha:]
      if (end != std::string_view::npos) {
        out += pattern.substr(i, end + 2 - i);
        i = end + 1;
        continue;
      }
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

}  // namespace

MatchScratch::MatchScratch() : md_(pcre2_match_data_create(1, nullptr)) {}
MatchScratch::~MatchScratch() { pcre2_match_data_free(md_); }

Result<std::shared_ptr<const SplitRegex>> SplitRegex::compile(std::string_view pattern, bool literal) {
  int err = 0;
  PCRE2_SIZE err_off = 0;
  uint32_t options = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
  std::string source = literal ? std::string(pattern) : exact_white_space(pattern);
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(source.data()), source.size(), options,
                                   &err, &err_off, nullptr);
  if (code == nullptr) {
    // The offset is into the pattern as given when no \s was respelled.
    return invalid_argument("split pattern \"" + std::string(pattern) + "\" does not compile at offset " +
                            std::to_string(err_off) + (source == pattern ? "" : " (after \\s is spelled out)") +
                            ": " + pcre2_message(err));
  }
  // A library built without JIT answers PCRE2_ERROR_JIT_BADOPTION; the
  // interpreter then serves every match, only slower.
  (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  return std::shared_ptr<const SplitRegex>(new SplitRegex(code, std::string(pattern)));
}

SplitRegex::~SplitRegex() { pcre2_code_free(code_); }

Status SplitRegex::split(std::string_view text, MatchScratch& scratch, std::vector<std::string_view>* out) const {
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  const size_t n = text.size();
  size_t gap_start = 0;  // end of the last piece emitted
  size_t from = 0;       // where the next search starts
  while (from < n) {
    // The caller validated the UTF-8 once for the whole text.
    int rc = pcre2_match(code_, subject, n, from, PCRE2_NO_UTF_CHECK, scratch.get(), nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      // The JIT's machine stack is small; the interpreter keeps its
      // backtracking state on the heap.
      rc = pcre2_match(code_, subject, n, from, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, scratch.get(), nullptr);
    }
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      return resource_exhausted("pre-tokenizing " + std::to_string(n) + " bytes at offset " + std::to_string(from) +
                                " with pattern \"" + pattern_ + "\": " + pcre2_message(rc));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(scratch.get());
    size_t start = ov[0], end = ov[1];
    if (end <= start) {
      // An empty match yields no piece; step over one character (as
      // Oniguruma's find_iter does) so the search moves on.
      from = start + 1;
      while (from < n && (static_cast<unsigned char>(text[from]) & 0xC0) == 0x80) ++from;
      continue;
    }
    if (start > gap_start) out->push_back(text.substr(gap_start, start - gap_start));
    out->push_back(text.substr(start, end - start));
    gap_start = from = end;
  }
  if (n > gap_start) out->push_back(text.substr(gap_start));
  return Status::ok_status();
}

}  // namespace loom::text::internal
