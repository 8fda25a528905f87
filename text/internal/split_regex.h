// SplitRegex: one compiled PCRE2 pattern (UTF + UCP, JIT when the library has
// it) that cuts text into pre-tokens the way Hugging Face's Split with
// behavior "Isolated" does: every match is a piece, and so is every gap
// between matches. Thread safety: a compiled SplitRegex is immutable and
// shared; each caller brings its own MatchScratch (PCRE2 match data).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "graph/status.h"

typedef struct pcre2_real_code_8 pcre2_code_8;
typedef struct pcre2_real_match_data_8 pcre2_match_data_8;

namespace loom::text::internal {

// GPT-2's pre-tokenizer pattern (encoder.py; Hugging Face ByteLevel with
// use_regex true).
extern const char kGpt2SplitPattern[];

// Per-call PCRE2 match data, usable with any SplitRegex. Not shareable.
class MatchScratch {
 public:
  MatchScratch();
  ~MatchScratch();
  MatchScratch(const MatchScratch&) = delete;
  MatchScratch& operator=(const MatchScratch&) = delete;
  pcre2_match_data_8* get() const { return md_; }

 private:
  pcre2_match_data_8* md_;
};

class SplitRegex {
 public:
  // `literal`: the pattern is a plain string (tokenizer.json's
  // {"String": ...}), not a regular expression.
  static Result<std::shared_ptr<const SplitRegex>> compile(std::string_view pattern, bool literal);
  ~SplitRegex();
  SplitRegex(const SplitRegex&) = delete;
  SplitRegex& operator=(const SplitRegex&) = delete;

  // Appends the non-empty pieces of `text` (valid UTF-8), in order, to `out`:
  // their concatenation is `text`. Errors only when PCRE2 gives up (match or
  // heap limit on a pathological input).
  Status split(std::string_view text, MatchScratch& scratch, std::vector<std::string_view>* out) const;

  const std::string& pattern() const { return pattern_; }

 private:
  SplitRegex(pcre2_code_8* code, std::string pattern) : code_(code), pattern_(std::move(pattern)) {}
  pcre2_code_8* code_;
  std::string pattern_;
};

}  // namespace loom::text::internal
