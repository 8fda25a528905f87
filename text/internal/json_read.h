// JSON reading shared by the vocab.json and tokenizer.json loaders:
// parsing without exceptions behind a nesting limit, and a token -> id
// object. Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>

#include "graph/status.h"

namespace loom::text::internal {

// Real tokenizer files nest 6 deep; the limit keeps hostile input from
// building deep trees.
constexpr int kMaxJsonDepth = 64;

// Parses `text`; `what` names it in errors ("vocab.json").
Result<nlohmann::json> parse_json(std::string_view text, const std::string& what);

// An object of string -> non-negative integer.
Result<std::unordered_map<std::string, int64_t>> parse_vocab(const nlohmann::json& j, const std::string& what);

}  // namespace loom::text::internal
