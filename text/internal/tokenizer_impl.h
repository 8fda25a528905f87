// The state behind a Tokenizer handle, shared by the loaders
// (tokenizer_json.cc, tokenizer.cc) and encode/decode. Thread safety:
// immutable once built (the BPE word cache inside BpeModel locks itself).
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "text/internal/bpe_model.h"
#include "text/internal/split_regex.h"
#include "text/tokenizer.h"

namespace loom::text::internal {

// One pre-tokenizer step, applied to every piece the previous step left.
struct PreTokenizerStage {
  // Split: cut with `regex` (Isolated). ByteLevel: prepend a space when
  // add_prefix_space and the piece does not start with one, then cut with
  // GPT-2's pattern when `regex` is set (use_regex).
  enum class Kind { kSplit, kByteLevel } kind = Kind::kSplit;
  std::shared_ptr<const SplitRegex> regex;
  bool add_prefix_space = false;
};

struct TokenizerImpl {
  std::unique_ptr<BpeModel> model;
  std::vector<PreTokenizerStage> stages;
  std::vector<AddedToken> added;
  std::unordered_map<std::string, int64_t> added_ids;  // content -> id
  std::optional<int64_t> bos;
  int64_t vocab_size = 0;
  // id -> decoded bytes: blob[offsets[id], offsets[id + 1]); kind 0 = no token.
  std::string blob;
  std::vector<uint32_t> offsets;
  std::vector<uint8_t> kind;  // 0 none, 1 vocabulary, 2 added
  std::vector<uint8_t> special;
  // id -> its vocabulary key or added content (strings owned by model / added).
  std::vector<const std::string*> token_str;
  // Indices into `added` by first byte, longest first: [0] the
  // non-normalized tokens (matched first), [1] the normalized ones.
  std::array<std::array<std::vector<int32_t>, 256>, 2> added_by_first;

  // Checks the added tokens against the vocabulary, builds the decode table
  // and hands out the Tokenizer.
  static Result<Tokenizer> finish(std::unique_ptr<TokenizerImpl> impl);
};

}  // namespace loom::text::internal
