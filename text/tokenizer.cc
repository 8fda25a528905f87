// Tokenizer: encode / decode, the decode table, and the GPT-2 vocab.json +
// merges.txt and directory loaders. tokenizer.json is read in
// tokenizer_json.cc.
#include "text/tokenizer.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <new>
#include <nlohmann/json.hpp>
#include <system_error>

#include "text/internal/byte_level.h"
#include "text/internal/json_read.h"
#include "text/internal/tokenizer_impl.h"

namespace loom::text {

using internal::TokenizerImpl;

namespace {

// A run of text or one matched added token.
struct Segment {
  std::string_view text;
  int64_t added_id = -1;
};

size_t prev_char_start(std::string_view s, size_t i) {
  do --i; while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80);
  return i;
}

// Cuts the text segments of `in` around the leftmost-longest matches of
// `group` (Hugging Face's aho-corasick LeftmostLongest), honouring lstrip
// and rstrip.
void split_on_added(const std::vector<Segment>& in, const std::vector<AddedToken>& added,
                    const std::array<std::vector<int32_t>, 256>& by_first, std::vector<Segment>* out) {
  for (const Segment& seg : in) {
    if (seg.added_id >= 0) { out->push_back(seg); continue; }
    std::string_view t = seg.text;
    size_t done = 0;  // text before this is emitted
    size_t i = 0;
    while (i < t.size()) {
      const auto& cands = by_first[static_cast<unsigned char>(t[i])];
      const AddedToken* hit = nullptr;
      for (int32_t k : cands) {  // longest first
        const std::string& c = added[k].content;
        if (t.compare(i, c.size(), c) == 0) { hit = &added[k]; break; }
      }
      if (hit == nullptr) { ++i; continue; }
      size_t start = i, end = i + hit->content.size();
      size_t len = 0;
      if (hit->lstrip) {
        while (start > done) {
          size_t p = prev_char_start(t, start);
          if (!internal::is_unicode_whitespace(internal::decode_utf8_at(t, p, &len))) break;
          start = p;
        }
      }
      if (hit->rstrip) {
        while (end < t.size() && internal::is_unicode_whitespace(internal::decode_utf8_at(t, end, &len))) end += len;
      }
      if (start > done) out->push_back(Segment{t.substr(done, start - done)});
      out->push_back(Segment{{}, hit->id});
      done = i = end;
    }
    if (t.size() > done) out->push_back(Segment{t.substr(done)});
  }
}

Status encode_text(const TokenizerImpl& impl, std::string_view text, internal::MatchScratch& scratch,
                   std::vector<int64_t>* ids) {
  std::vector<std::string_view> pieces{text}, next;
  std::deque<std::string> owned;  // pieces given a prefix space
  for (const auto& stage : impl.stages) {
    next.clear();
    for (std::string_view p : pieces) {
      if (stage.kind == internal::PreTokenizerStage::Kind::kByteLevel && stage.add_prefix_space && p[0] != ' ') {
        owned.push_back(" " + std::string(p));
        p = owned.back();
      }
      if (stage.regex) {
        LOOM_RETURN_IF_ERROR(stage.regex->split(p, scratch, &next));
      } else {
        next.push_back(p);
      }
    }
    pieces.swap(next);
  }
  for (std::string_view p : pieces) impl.model->encode_word(p, ids);
  return Status::ok_status();
}

Result<std::string> read_file(const std::filesystem::path& path) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  if (ec) return not_found(path.string() + ": " + ec.message());
  if (size > Tokenizer::kMaxFileBytes) {
    return resource_exhausted(path.string() + " is " + std::to_string(size) + " bytes, over the limit of " +
                              std::to_string(Tokenizer::kMaxFileBytes));
  }
  std::ifstream in(path, std::ios::binary);
  std::string data(size, '\0');
  if (!in || !in.read(data.data(), static_cast<std::streamsize>(size))) {
    return not_found(path.string() + ": cannot be read");
  }
  return data;
}

std::string in_quotes(std::string_view s) { return "\"" + std::string(s) + "\""; }

}  // namespace

Result<Tokenizer> TokenizerImpl::finish(std::unique_ptr<TokenizerImpl> impl) {
  const BpeModel& model = *impl->model;
  std::vector<const std::string*> vocab_by_id(model.max_id() + 1, nullptr);
  for (const auto& [tok, id] : model.vocab()) vocab_by_id[id] = &tok;
  int64_t max_id = model.max_id();
  std::unordered_map<int64_t, const AddedToken*> added_by_id;
  for (const AddedToken& a : impl->added) {
    std::string what = "added token " + in_quotes(a.content);
    if (a.content.empty()) return invalid_argument("an added token (id " + std::to_string(a.id) + ") has empty content");
    if (auto bad = internal::find_invalid_utf8(a.content)) {
      return invalid_argument(what + " is not valid UTF-8 at byte " + std::to_string(*bad));
    }
    if (a.id < 0 || a.id > internal::kMaxTokenId) {
      return invalid_argument(what + " has id " + std::to_string(a.id) + ", outside [0, " +
                              std::to_string(internal::kMaxTokenId) + "]");
    }
    if (a.id <= model.max_id() && vocab_by_id[a.id] != nullptr && *vocab_by_id[a.id] != a.content) {
      return invalid_argument(what + " has id " + std::to_string(a.id) + ", which the vocabulary gives to " +
                              in_quotes(*vocab_by_id[a.id]));
    }
    auto [it, fresh] = added_by_id.emplace(a.id, &a);
    if (!fresh) {
      return invalid_argument("added tokens " + in_quotes(it->second->content) + " and " + in_quotes(a.content) +
                              " share id " + std::to_string(a.id));
    }
    if (!impl->added_ids.emplace(a.content, a.id).second) {
      return invalid_argument(what + " is listed twice");
    }
    max_id = std::max(max_id, a.id);
  }
  impl->vocab_size = max_id + 1;
  impl->offsets.assign(impl->vocab_size + 1, 0);
  impl->kind.assign(impl->vocab_size, 0);
  impl->special.assign(impl->vocab_size, 0);
  impl->token_str.assign(impl->vocab_size, nullptr);
  for (int64_t id = 0; id < impl->vocab_size; ++id) {
    impl->offsets[id] = static_cast<uint32_t>(impl->blob.size());
    auto a = added_by_id.find(id);
    if (id <= model.max_id() && vocab_by_id[id] != nullptr) {
      // BPE can emit this id, so it decodes as a vocabulary token (GPT-2's
      // "<|endoftext|>" reads the same either way). As Hugging Face's
      // ByteLevel decoder, a token holding a character outside the 256
      // byte symbols is kept as its own UTF-8.
      auto bytes = internal::from_byte_symbols(*vocab_by_id[id]);
      impl->blob += bytes ? *bytes : *vocab_by_id[id];
      impl->kind[id] = 1;
      impl->token_str[id] = vocab_by_id[id];
    } else if (a != added_by_id.end()) {
      impl->blob += a->second->content;
      impl->kind[id] = 2;
      impl->token_str[id] = &a->second->content;
    }
    if (a != added_by_id.end()) impl->special[id] = a->second->special;
  }
  impl->offsets[impl->vocab_size] = static_cast<uint32_t>(impl->blob.size());
  if (impl->bos && (*impl->bos < 0 || *impl->bos >= impl->vocab_size || impl->kind[*impl->bos] == 0)) {
    return invalid_argument("the post_processor's first token has id " + std::to_string(*impl->bos) +
                            ", which is not in the vocabulary");
  }
  // Candidates by first byte, longest first, per matching pass.
  for (size_t k = 0; k < impl->added.size(); ++k) {
    const AddedToken& a = impl->added[k];
    impl->added_by_first[a.normalized ? 1 : 0][static_cast<unsigned char>(a.content[0])].push_back(
        static_cast<int32_t>(k));
  }
  for (auto& pass : impl->added_by_first) {
    for (auto& list : pass) {
      std::stable_sort(list.begin(), list.end(), [&](int32_t x, int32_t y) {
        return impl->added[x].content.size() > impl->added[y].content.size();
      });
    }
  }
  return Tokenizer(std::shared_ptr<const TokenizerImpl>(std::move(impl)));
}

Result<std::vector<int64_t>> Tokenizer::encode(std::string_view text, bool allow_special) const {
  if (auto bad = internal::find_invalid_utf8(text)) {
    char hex[8];
    std::snprintf(hex, sizeof(hex), "0x%02X", static_cast<unsigned char>(text[*bad]));
    return invalid_argument("text is not valid UTF-8 at byte offset " + std::to_string(*bad) + " (byte " + hex + ")");
  }
  try {
    std::vector<Segment> segs{Segment{text}};
    if (allow_special && !impl_->added.empty()) {
      // Non-normalized (special) tokens are found first, then normalized
      // ones in what is left, as Hugging Face's AddedVocabulary does.
      for (const auto& pass : impl_->added_by_first) {
        std::vector<Segment> next;
        split_on_added(segs, impl_->added, pass, &next);
        segs.swap(next);
      }
    }
    std::vector<int64_t> ids;
    ids.reserve(text.size() / 3 + 1);
    internal::MatchScratch scratch;
    for (const Segment& s : segs) {
      if (s.added_id >= 0) {
        ids.push_back(s.added_id);
      } else if (!s.text.empty()) {
        LOOM_RETURN_IF_ERROR(encode_text(*impl_, s.text, scratch, &ids));
      }
    }
    return ids;
  } catch (const std::bad_alloc&) {
    return resource_exhausted("out of memory encoding " + std::to_string(text.size()) + " bytes");
  }
}

Result<std::string> Tokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    int64_t id = ids[i];
    if (id < 0 || id >= impl_->vocab_size || impl_->kind[id] == 0) {
      return invalid_argument("id " + std::to_string(id) + " at position " + std::to_string(i) +
                              " is not in the vocabulary (size " + std::to_string(impl_->vocab_size) + ")");
    }
    out.append(impl_->blob, impl_->offsets[id], impl_->offsets[id + 1] - impl_->offsets[id]);
  }
  return out;
}

std::optional<int64_t> Tokenizer::token_id(std::string_view token) const {
  std::string key(token);
  auto it = impl_->added_ids.find(key);
  if (it != impl_->added_ids.end()) return it->second;
  return impl_->model->token_id(key);
}

std::optional<std::string> Tokenizer::id_to_token(int64_t id) const {
  if (id < 0 || id >= impl_->vocab_size || impl_->kind[id] == 0) return std::nullopt;
  return *impl_->token_str[id];
}

int64_t Tokenizer::vocab_size() const { return impl_->vocab_size; }
std::optional<int64_t> Tokenizer::bos_id() const { return impl_->bos; }
bool Tokenizer::is_special(int64_t id) const {
  return id >= 0 && id < impl_->vocab_size && impl_->special[id] != 0;
}
const std::vector<AddedToken>& Tokenizer::added_tokens() const { return impl_->added; }

Result<Tokenizer> Tokenizer::from_vocab_merges(std::string_view vocab_json, std::string_view merges_txt) {
  if (vocab_json.size() > kMaxFileBytes || merges_txt.size() > kMaxFileBytes) {
    return resource_exhausted("vocab.json is " + std::to_string(vocab_json.size()) + " bytes and merges.txt " +
                              std::to_string(merges_txt.size()) + ", over the limit of " +
                              std::to_string(kMaxFileBytes) + " each");
  }
  try {
    LOOM_ASSIGN_OR_RETURN(nlohmann::json vj, internal::parse_json(vocab_json, "vocab.json"));
    LOOM_ASSIGN_OR_RETURN(auto vocab, internal::parse_vocab(vj, "vocab.json"));
    std::vector<std::pair<std::string, std::string>> merges;
    size_t line_no = 0;
    size_t pos = 0;
    while (pos < merges_txt.size()) {
      size_t nl = merges_txt.find('\n', pos);
      std::string_view line = merges_txt.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
      pos = nl == std::string_view::npos ? merges_txt.size() : nl + 1;
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty() || (line_no == 1 && line.substr(0, 8) == "#version")) continue;
      size_t sp = line.find(' ');
      if (sp == 0 || sp == std::string_view::npos || sp + 1 == line.size() ||
          line.find(' ', sp + 1) != std::string_view::npos) {
        return invalid_argument("merges.txt line " + std::to_string(line_no) +
                                ": expected two tokens separated by one space, got " +
                                in_quotes(line.substr(0, 80)));
      }
      merges.emplace_back(std::string(line.substr(0, sp)), std::string(line.substr(sp + 1)));
    }
    auto impl = std::make_unique<TokenizerImpl>();
    LOOM_ASSIGN_OR_RETURN(impl->model, internal::BpeModel::build(std::move(vocab), merges, false));
    LOOM_ASSIGN_OR_RETURN(auto gpt2, internal::SplitRegex::compile(internal::kGpt2SplitPattern, false));
    impl->stages.push_back({internal::PreTokenizerStage::Kind::kByteLevel, gpt2, false});
    // GPT-2's one control token; Hugging Face's GPT2Tokenizer adds it too.
    if (auto eot = impl->model->token_id("<|endoftext|>")) {
      AddedToken t;
      t.id = *eot;
      t.content = "<|endoftext|>";
      t.special = true;
      impl->added.push_back(t);
    }
    return TokenizerImpl::finish(std::move(impl));
  } catch (const std::bad_alloc&) {
    return resource_exhausted("out of memory loading vocab.json + merges.txt");
  }
}

Result<Tokenizer> Tokenizer::load_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path tj = fs::path(dir) / "tokenizer.json";
  if (fs::exists(tj, ec)) {
    LOOM_ASSIGN_OR_RETURN(std::string text, read_file(tj));
    auto t = from_tokenizer_json(text);
    if (!t.ok()) return t.status().with_context(tj.string());
    return t;
  }
  fs::path vj = fs::path(dir) / "vocab.json", mt = fs::path(dir) / "merges.txt";
  if (!fs::exists(vj, ec) || !fs::exists(mt, ec)) {
    return not_found(dir + " has neither tokenizer.json nor vocab.json + merges.txt");
  }
  LOOM_ASSIGN_OR_RETURN(std::string vocab, read_file(vj));
  LOOM_ASSIGN_OR_RETURN(std::string merges, read_file(mt));
  auto t = from_vocab_merges(vocab, merges);
  if (!t.ok()) return t.status().with_context(dir);
  return t;
}

}  // namespace loom::text
