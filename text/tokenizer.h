// loom::text::Tokenizer: byte-level BPE tokenization (GPT-2, Llama 3, Qwen2
// and other Hugging Face tokenizer.json files of that family) without torch.
// Encoding matches Hugging Face `tokenizers` and OpenAI's GPT-2 encoder.py:
// split with the pre-tokenizer's regex (PCRE2), map bytes to GPT-2's
// printable symbols, merge by rank, look up ids. encode() adds no BOS/EOS;
// callers that want one prepend bos_id().
//
// Ownership and thread safety: a Tokenizer is a handle on an immutable,
// shared model (copying is a reference-count increment). All const methods
// may be called from any number of threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "graph/status.h"

namespace loom::text {

namespace internal {
struct TokenizerImpl;
}

// A token matched verbatim in the text before pre-tokenization (Hugging
// Face's added_tokens; "<|endoftext|>" for GPT-2's vocab.json).
struct AddedToken {
  int64_t id = 0;
  std::string content;
  bool special = false;
  bool lstrip = false;      // also swallows whitespace before the match
  bool rstrip = false;      // also swallows whitespace after the match
  bool normalized = false;  // matched after the special (non-normalized) ones
};

class Tokenizer {
 public:
  // Input files and texts larger than this are refused: the largest real
  // tokenizer.json files (Llama 3, Qwen2) are under 12 MiB.
  static constexpr size_t kMaxFileBytes = size_t{64} << 20;

  // DIR/tokenizer.json if present, else DIR/vocab.json + DIR/merges.txt.
  static Result<Tokenizer> load_dir(const std::string& dir);
  // A Hugging Face tokenizer.json: model BPE, pre_tokenizer ByteLevel or
  // Sequence[Split(Regex, Isolated)..., ByteLevel], normalizer null,
  // decoder ByteLevel or null. Anything else is refused by name.
  static Result<Tokenizer> from_tokenizer_json(std::string_view json_text);
  // GPT-2's vocab.json (token -> id) and merges.txt ("#version" line, then
  // one "a b" pair per line in rank order). "<|endoftext|>", when in the
  // vocabulary, becomes a special token.
  static Result<Tokenizer> from_vocab_merges(std::string_view vocab_json, std::string_view merges_txt);

  // Plain text -> ids. Invalid UTF-8 is InvalidArgument naming the byte
  // offset. Added tokens are matched in the text only when allow_special is
  // true; otherwise "<|endoftext|>" is encoded as ordinary text.
  Result<std::vector<int64_t>> encode(std::string_view text, bool allow_special = false) const;
  // ids -> bytes (special and other added tokens give their content; one
  // that is also in the vocabulary decodes as that entry). Bytes that are not valid
  // UTF-8 (a sequence cut mid-character) are kept as they are.
  // An id outside the vocabulary is InvalidArgument.
  Result<std::string> decode(const std::vector<int64_t>& ids) const;

  // The id of a vocabulary token (in byte-level symbols, "Ġthe") or of an
  // added token's content.
  std::optional<int64_t> token_id(std::string_view token) const;
  // The vocabulary token (byte-level symbols) or added content for an id.
  std::optional<std::string> id_to_token(int64_t id) const;
  // Max id + 1 over the vocabulary and the added tokens.
  int64_t vocab_size() const;
  // The token tokenizer.json's TemplateProcessing puts first, if any.
  std::optional<int64_t> bos_id() const;
  bool is_special(int64_t id) const;
  const std::vector<AddedToken>& added_tokens() const;

 private:
  explicit Tokenizer(std::shared_ptr<const internal::TokenizerImpl> impl) : impl_(std::move(impl)) {}
  friend struct internal::TokenizerImpl;
  std::shared_ptr<const internal::TokenizerImpl> impl_;
};

}  // namespace loom::text
