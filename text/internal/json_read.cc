#include "text/internal/json_read.h"

#include "text/internal/bpe_model.h"

namespace loom::text::internal {
namespace {

// The deepest bracket nesting outside strings, stopping once over `limit`.
int nesting_depth(std::string_view text, int limit) {
  int depth = 0, max_depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      max_depth = std::max(max_depth, ++depth);
      if (max_depth > limit) break;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return max_depth;
}

}  // namespace

Result<nlohmann::json> parse_json(std::string_view text, const std::string& what) {
  if (nesting_depth(text, kMaxJsonDepth) > kMaxJsonDepth) {
    return invalid_argument(what + " nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  }
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    // e.what() carries the byte offset and what the parser expected.
    return invalid_argument(what + " is not valid JSON: " + e.what());
  }
  return j;
}

Result<std::unordered_map<std::string, int64_t>> parse_vocab(const nlohmann::json& j, const std::string& what) {
  if (!j.is_object()) return invalid_argument(what + " must be an object of token -> id, got " + j.type_name());
  std::unordered_map<std::string, int64_t> vocab;
  vocab.reserve(j.size());
  for (auto it = j.begin(); it != j.end(); ++it) {
    const auto& v = it.value();
    if (!v.is_number_integer()) {
      return invalid_argument(what + ": token \"" + it.key() + "\" has a " + v.type_name() +
                              " as its id, not an integer");
    }
    if (v.is_number_unsigned() ? v.get<uint64_t>() > static_cast<uint64_t>(kMaxTokenId)
                               : (v.get<int64_t>() < 0 || v.get<int64_t>() > kMaxTokenId)) {
      return invalid_argument(what + ": token \"" + it.key() + "\" has id " + v.dump() + ", outside [0, " +
                              std::to_string(kMaxTokenId) + "]");
    }
    vocab.emplace(it.key(), v.get<int64_t>());
  }
  return vocab;
}

}  // namespace loom::text::internal
