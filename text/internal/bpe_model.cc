#include "text/internal/bpe_model.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <queue>

#include "text/internal/byte_level.h"

namespace loom::text::internal {
namespace {

std::string in_quotes(const std::string& s) { return "\"" + s + "\""; }

}  // namespace

Result<std::unique_ptr<BpeModel>> BpeModel::build(std::unordered_map<std::string, int64_t> vocab,
                                                  const std::vector<std::pair<std::string, std::string>>& merges,
                                                  bool ignore_merges) {
  auto m = std::unique_ptr<BpeModel>(new BpeModel());
  m->ignore_merges_ = ignore_merges;
  if (vocab.empty()) return invalid_argument("the vocabulary is empty");
  // Ids must be unique: two tokens sharing one id would make decode ambiguous.
  std::unordered_map<int64_t, const std::string*> by_id;
  by_id.reserve(vocab.size());
  for (const auto& [tok, id] : vocab) {
    if (id < 0 || id > kMaxTokenId) {
      return invalid_argument("vocabulary token " + in_quotes(tok) + " has id " + std::to_string(id) +
                              ", outside [0, " + std::to_string(kMaxTokenId) + "]");
    }
    auto [it, fresh] = by_id.emplace(id, &tok);
    if (!fresh) {
      const std::string& a = std::min(*it->second, tok);
      const std::string& b = std::max(*it->second, tok);
      return invalid_argument("vocabulary tokens " + in_quotes(a) + " and " + in_quotes(b) + " share id " +
                              std::to_string(id));
    }
    m->max_id_ = std::max(m->max_id_, id);
  }
  for (int b = 0; b < 256; ++b) {
    auto it = vocab.find(std::string(byte_symbol(static_cast<uint8_t>(b))));
    if (it == vocab.end()) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "0x%02X", b);
      return invalid_argument("the vocabulary lacks the byte-level symbol " +
                              in_quotes(std::string(byte_symbol(static_cast<uint8_t>(b)))) + " for byte " + hex +
                              " (a byte-level BPE vocabulary needs all 256)");
    }
    m->byte_ids_[b] = static_cast<int32_t>(it->second);
  }
  m->merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    auto ia = vocab.find(a);
    auto ib = vocab.find(b);
    auto ic = vocab.find(a + b);
    std::string where = "merge " + std::to_string(rank) + " (" + in_quotes(a + " " + b) + ")";
    if (ia == vocab.end()) return invalid_argument(where + ": " + in_quotes(a) + " is not in the vocabulary");
    if (ib == vocab.end()) return invalid_argument(where + ": " + in_quotes(b) + " is not in the vocabulary");
    if (ic == vocab.end()) return invalid_argument(where + ": the merged token " + in_quotes(a + b) + " is not in the vocabulary");
    m->merges_[pair_key(static_cast<int32_t>(ia->second), static_cast<int32_t>(ib->second))] =
        Merge{static_cast<int32_t>(rank), static_cast<int32_t>(ic->second)};
  }
  m->vocab_ = std::move(vocab);
  return m;
}

std::optional<int64_t> BpeModel::token_id(const std::string& token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

void BpeModel::merge_word(std::string_view bytes, std::vector<int32_t>* ids) const {
  // A doubly linked list over the symbols; a merged-away symbol has len 0.
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    int32_t len;
  };
  const int32_t n = static_cast<int32_t>(bytes.size());
  std::vector<Symbol> sym(n);
  for (int32_t i = 0; i < n; ++i) {
    sym[i] = Symbol{byte_ids_[static_cast<unsigned char>(bytes[i])], i - 1, i + 1 < n ? i + 1 : -1, 1};
  }
  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  auto push_pair = [&](int32_t left) {
    if (left < 0 || sym[left].next < 0) return;
    auto it = merges_.find(pair_key(sym[left].id, sym[sym[left].next].id));
    if (it != merges_.end()) heap.push(Candidate{it->second.rank, left, it->second.new_id});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push_pair(i);
  while (!heap.empty()) {
    Candidate top = heap.top();
    heap.pop();
    Symbol& left = sym[top.pos];
    // Stale entries: the left symbol was merged away, lost its right
    // neighbour, or the pair at this position is no longer this merge.
    if (left.len == 0 || left.next < 0) continue;
    Symbol& right = sym[left.next];
    auto it = merges_.find(pair_key(left.id, right.id));
    if (it == merges_.end() || it->second.new_id != top.new_id) continue;
    left.id = top.new_id;
    left.len += right.len;
    left.next = right.next;
    right.len = 0;
    if (left.next >= 0) sym[left.next].prev = top.pos;
    push_pair(left.prev);
    push_pair(top.pos);
  }
  for (int32_t i = 0; i >= 0 && i < n; i = sym[i].next) ids->push_back(sym[i].id);
}

void BpeModel::encode_word(std::string_view bytes, std::vector<int64_t>* out) const {
  if (bytes.empty()) return;
  if (bytes.size() == 1) {
    out->push_back(byte_ids_[static_cast<unsigned char>(bytes[0])]);
    return;
  }
  if (ignore_merges_) {
    // Llama 3: a pre-token that is itself a token is emitted whole.
    auto it = vocab_.find(to_byte_symbols(bytes));
    if (it != vocab_.end()) {
      out->push_back(it->second);
      return;
    }
  }
  const bool cacheable = bytes.size() <= kMaxCachedWordBytes;
  CacheShard* shard = nullptr;
  std::string key;
  if (cacheable) {
    key.assign(bytes);
    shard = &cache_[std::hash<std::string>()(key) % kCacheShards];
    std::lock_guard<std::mutex> lock(shard->mu);
    auto it = shard->words.find(key);
    if (it != shard->words.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  merge_word(bytes, &ids);
  out->insert(out->end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(shard->mu);
    if (shard->words.size() >= kCacheEntriesPerShard) shard->words.clear();
    shard->words.emplace(std::move(key), std::move(ids));
  }
}

}  // namespace loom::text::internal
