// BpeModel: the byte-level BPE vocabulary and merge table, and the merge loop
// that turns one pre-token (raw bytes) into ids. Merging follows Hugging
// Face's word.rs: a min-heap on (rank, position), so the lowest-ranked pair
// merges first and ties go to the leftmost; for merge lists made by BPE
// training this equals GPT-2's bpe(). Thread safety: immutable after build()
// except the word cache, which is sharded and mutex-guarded, so concurrent
// const calls are safe.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "graph/status.h"

namespace loom::text::internal {

// Ids are int32 inside the model; the table limits them well below that.
constexpr int64_t kMaxTokenId = (int64_t{1} << 22) - 1;

class BpeModel {
 public:
  // `vocab`: token (byte-level symbols) -> id; `merges`: pairs in rank
  // order (rank = index; a repeated pair keeps its last rank, as both GPT-2's
  // dict() and Hugging Face's HashMap do). Every byte's symbol must be in
  // the vocabulary, and each merge's two sides and their concatenation too.
  static Result<std::unique_ptr<BpeModel>> build(std::unordered_map<std::string, int64_t> vocab,
                                                 const std::vector<std::pair<std::string, std::string>>& merges,
                                                 bool ignore_merges);

  // Appends the ids of one pre-token.
  void encode_word(std::string_view bytes, std::vector<int64_t>* out) const;

  std::optional<int64_t> token_id(const std::string& token) const;
  const std::unordered_map<std::string, int64_t>& vocab() const { return vocab_; }
  int64_t max_id() const { return max_id_; }

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  void merge_word(std::string_view bytes, std::vector<int32_t>* ids) const;

  // Words are cached by their bytes; a shard that fills up is emptied
  // (cheaper than LRU bookkeeping, and the hot words come straight back).
  static constexpr size_t kCacheShards = 16;
  static constexpr size_t kCacheEntriesPerShard = 4096;
  static constexpr size_t kMaxCachedWordBytes = 64;
  struct CacheShard {
    std::mutex mu;
    std::unordered_map<std::string, std::vector<int32_t>> words;
  };

  std::unordered_map<std::string, int64_t> vocab_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::array<int32_t, 256> byte_ids_{};
  int64_t max_id_ = -1;
  bool ignore_merges_ = false;
  mutable std::array<CacheShard, kCacheShards> cache_;
};

}  // namespace loom::text::internal
