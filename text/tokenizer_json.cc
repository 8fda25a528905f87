// Tokenizer::from_tokenizer_json: reads the subset of Hugging Face's
// tokenizer.json schema that byte-level BPE tokenizers use (GPT-2, Llama 3,
// Qwen2, ...) and refuses, by name, every component it does not implement,
// so a tokenizer that would encode differently never loads silently.
#include <new>
#include <nlohmann/json.hpp>

#include "text/internal/json_read.h"
#include "text/internal/tokenizer_impl.h"
#include "text/tokenizer.h"

namespace loom::text {

using internal::PreTokenizerStage;
using internal::TokenizerImpl;
using json = nlohmann::json;

namespace {

Status wrong_type(const std::string& path, const char* want, const json& got) {
  return invalid_argument(path + " must be " + want + ", got " + got.type_name());
}

// The optional member `key` of object `j`; nullptr when absent or null.
const json* member(const json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

Status read_bool(const json& j, const std::string& path, const char* key, bool* out) {
  const json* v = member(j, key);
  if (v == nullptr) return Status::ok_status();
  if (!v->is_boolean()) return wrong_type(path + "." + key, "a boolean", *v);
  *out = v->get<bool>();
  return Status::ok_status();
}

Result<std::string> read_type(const json& j, const std::string& path) {
  if (!j.is_object()) return wrong_type(path, "an object", j);
  const json* t = member(j, "type");
  if (t == nullptr) return invalid_argument(path + ".type is missing");
  if (!t->is_string()) return wrong_type(path + ".type", "a string", *t);
  return t->get<std::string>();
}

Status read_merges(const json& j, std::vector<std::pair<std::string, std::string>>* merges) {
  if (!j.is_array()) return wrong_type("model.merges", "an array", j);
  merges->reserve(j.size());
  for (size_t i = 0; i < j.size(); ++i) {
    const json& m = j[i];
    std::string path = "model.merges[" + std::to_string(i) + "]";
    if (m.is_string()) {
      // The older form, "a b": exactly one space, as Hugging Face requires.
      const std::string& s = m.get_ref<const std::string&>();
      size_t sp = s.find(' ');
      if (sp == 0 || sp == std::string::npos || sp + 1 == s.size() || s.find(' ', sp + 1) != std::string::npos) {
        return invalid_argument(path + " must be two tokens separated by one space, got \"" + s + "\"");
      }
      merges->emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (m.is_array()) {
      if (m.size() != 2 || !m[0].is_string() || !m[1].is_string() || m[0].get_ref<const std::string&>().empty() ||
          m[1].get_ref<const std::string&>().empty()) {
        return invalid_argument(path + " must be a pair of non-empty strings");
      }
      merges->emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      return wrong_type(path, "a string \"a b\" or a pair [\"a\", \"b\"]", m);
    }
  }
  return Status::ok_status();
}

Status read_model(const json& root, TokenizerImpl* impl) {
  const json* model = member(root, "model");
  if (model == nullptr) return invalid_argument("tokenizer.json has no \"model\"");
  LOOM_ASSIGN_OR_RETURN(std::string type, read_type(*model, "model"));
  if (type != "BPE") return invalid_argument("model.type \"" + type + "\" is not supported (only \"BPE\")");
  const json* vocab_j = member(*model, "vocab");
  if (vocab_j == nullptr) return invalid_argument("model.vocab is missing");
  LOOM_ASSIGN_OR_RETURN(auto vocab, internal::parse_vocab(*vocab_j, "model.vocab"));
  std::vector<std::pair<std::string, std::string>> merges;
  if (const json* m = member(*model, "merges")) LOOM_RETURN_IF_ERROR(read_merges(*m, &merges));
  // Options that would change the encoding are refused rather than ignored.
  if (const json* d = member(*model, "dropout")) {
    if (!d->is_number()) return wrong_type("model.dropout", "a number or null", *d);
    if (d->get<double>() != 0.0) return invalid_argument("model.dropout " + d->dump() + " (random merges) is not supported");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (const json* v = member(*model, key)) {
      if (!v->is_string()) return wrong_type(std::string("model.") + key, "a string or null", *v);
      if (!v->get_ref<const std::string&>().empty()) {
        return invalid_argument(std::string("model.") + key + " \"" + v->get<std::string>() +
                                "\" is not supported with byte-level BPE");
      }
    }
  }
  bool byte_fallback = false, ignore_merges = false;
  LOOM_RETURN_IF_ERROR(read_bool(*model, "model", "byte_fallback", &byte_fallback));
  LOOM_RETURN_IF_ERROR(read_bool(*model, "model", "ignore_merges", &ignore_merges));
  if (byte_fallback) return invalid_argument("model.byte_fallback true is not supported (only byte-level BPE)");
  auto built = internal::BpeModel::build(std::move(vocab), merges, ignore_merges);
  if (!built.ok()) return built.status().with_context("model");
  impl->model = std::move(built).value();
  return Status::ok_status();
}

Status read_added_tokens(const json& root, TokenizerImpl* impl) {
  const json* list = member(root, "added_tokens");
  if (list == nullptr) return Status::ok_status();
  if (!list->is_array()) return wrong_type("added_tokens", "an array", *list);
  for (size_t i = 0; i < list->size(); ++i) {
    const json& t = (*list)[i];
    std::string path = "added_tokens[" + std::to_string(i) + "]";
    if (!t.is_object()) return wrong_type(path, "an object", t);
    const json* id = member(t, "id");
    const json* content = member(t, "content");
    if (id == nullptr || !id->is_number_integer()) return invalid_argument(path + ".id must be an integer");
    if (content == nullptr || !content->is_string()) return invalid_argument(path + ".content must be a string");
    AddedToken a;
    a.id = id->is_number_unsigned() && id->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX) ? -1 : id->get<int64_t>();
    a.content = content->get<std::string>();
    bool single_word = false;
    LOOM_RETURN_IF_ERROR(read_bool(t, path, "special", &a.special));
    LOOM_RETURN_IF_ERROR(read_bool(t, path, "lstrip", &a.lstrip));
    LOOM_RETURN_IF_ERROR(read_bool(t, path, "rstrip", &a.rstrip));
    LOOM_RETURN_IF_ERROR(read_bool(t, path, "normalized", &a.normalized));
    LOOM_RETURN_IF_ERROR(read_bool(t, path, "single_word", &single_word));
    if (single_word) return invalid_argument(path + " (\"" + a.content + "\"): single_word true is not supported");
    impl->added.push_back(std::move(a));
  }
  return Status::ok_status();
}

Status read_byte_level(const json& j, const std::string& path, bool last, TokenizerImpl* impl) {
  if (!last) {
    // After ByteLevel the text is in byte symbols; a later step would see those.
    return invalid_argument(path + ": ByteLevel must be the last pre-tokenizer");
  }
  // Hugging Face's defaults: add_prefix_space true, use_regex true.
  bool prefix = true, use_regex = true, trim = true;
  LOOM_RETURN_IF_ERROR(read_bool(j, path, "add_prefix_space", &prefix));
  LOOM_RETURN_IF_ERROR(read_bool(j, path, "use_regex", &use_regex));
  LOOM_RETURN_IF_ERROR(read_bool(j, path, "trim_offsets", &trim));  // offsets only: no effect on ids
  PreTokenizerStage stage;
  stage.kind = PreTokenizerStage::Kind::kByteLevel;
  stage.add_prefix_space = prefix;
  if (use_regex) {
    LOOM_ASSIGN_OR_RETURN(stage.regex, internal::SplitRegex::compile(internal::kGpt2SplitPattern, false));
  }
  impl->stages.push_back(std::move(stage));
  return Status::ok_status();
}

Status read_split(const json& j, const std::string& path, TokenizerImpl* impl) {
  const json* pattern = member(j, "pattern");
  if (pattern == nullptr || !pattern->is_object()) return invalid_argument(path + ".pattern must be an object");
  const json* regex = member(*pattern, "Regex");
  const json* literal = member(*pattern, "String");
  const json* p = regex != nullptr ? regex : literal;
  if (p == nullptr || !p->is_string()) {
    return invalid_argument(path + ".pattern must hold a string \"Regex\" or \"String\"");
  }
  const json* behavior = member(j, "behavior");
  if (behavior == nullptr || !behavior->is_string()) return invalid_argument(path + ".behavior must be a string");
  if (behavior->get_ref<const std::string&>() != "Isolated") {
    return invalid_argument(path + ".behavior \"" + behavior->get<std::string>() + "\" is not supported (only \"Isolated\")");
  }
  bool invert = false;
  LOOM_RETURN_IF_ERROR(read_bool(j, path, "invert", &invert));
  if (invert) return invalid_argument(path + ".invert true is not supported");
  PreTokenizerStage stage;
  stage.kind = PreTokenizerStage::Kind::kSplit;
  auto compiled = internal::SplitRegex::compile(p->get_ref<const std::string&>(), regex == nullptr);
  if (!compiled.ok()) return compiled.status().with_context(path);
  stage.regex = std::move(compiled).value();
  impl->stages.push_back(std::move(stage));
  return Status::ok_status();
}

Status read_pre_tokenizer(const json& root, TokenizerImpl* impl) {
  const json* pt = member(root, "pre_tokenizer");
  if (pt == nullptr) return invalid_argument("pre_tokenizer is null; byte-level BPE needs ByteLevel");
  LOOM_ASSIGN_OR_RETURN(std::string type, read_type(*pt, "pre_tokenizer"));
  if (type == "ByteLevel") return read_byte_level(*pt, "pre_tokenizer", true, impl);
  if (type != "Sequence") {
    return invalid_argument("pre_tokenizer \"" + type + "\" is not supported (only ByteLevel, or a Sequence of Split and ByteLevel)");
  }
  const json* list = member(*pt, "pretokenizers");
  if (list == nullptr || !list->is_array()) return invalid_argument("pre_tokenizer.pretokenizers must be an array");
  for (size_t i = 0; i < list->size(); ++i) {
    std::string path = "pre_tokenizer.pretokenizers[" + std::to_string(i) + "]";
    LOOM_ASSIGN_OR_RETURN(std::string t, read_type((*list)[i], path));
    if (t == "Split") {
      LOOM_RETURN_IF_ERROR(read_split((*list)[i], path, impl));
    } else if (t == "ByteLevel") {
      LOOM_RETURN_IF_ERROR(read_byte_level((*list)[i], path, i + 1 == list->size(), impl));
    } else {
      return invalid_argument(path + ": pre-tokenizer \"" + t + "\" is not supported (only Split and ByteLevel)");
    }
  }
  if (impl->stages.empty() || impl->stages.back().kind != PreTokenizerStage::Kind::kByteLevel) {
    return invalid_argument("pre_tokenizer: the Sequence must end with ByteLevel");
  }
  return Status::ok_status();
}

Status check_normalizer_and_decoder(const json& root) {
  if (const json* n = member(root, "normalizer")) {
    LOOM_ASSIGN_OR_RETURN(std::string type, read_type(*n, "normalizer"));
    const json* list = member(*n, "normalizers");
    bool empty_sequence = type == "Sequence" && list != nullptr && list->is_array() && list->empty();
    if (!empty_sequence) return invalid_argument("normalizer \"" + type + "\" is not supported (only null)");
  }
  if (const json* d = member(root, "decoder")) {
    LOOM_ASSIGN_OR_RETURN(std::string type, read_type(*d, "decoder"));
    if (type != "ByteLevel") return invalid_argument("decoder \"" + type + "\" is not supported (only ByteLevel or null)");
  }
  return Status::ok_status();
}

// The first token of TemplateProcessing's "single" template, when it is a
// special token (Llama 3's <|begin_of_text|>).
Status read_bos(const json& root, TokenizerImpl* impl) {
  const json* pp = member(root, "post_processor");
  if (pp == nullptr) return Status::ok_status();
  LOOM_ASSIGN_OR_RETURN(std::string type, read_type(*pp, "post_processor"));
  const json* tp = nullptr;
  std::string path = "post_processor";
  if (type == "TemplateProcessing") {
    tp = pp;
  } else if (type == "Sequence") {
    const json* list = member(*pp, "processors");
    if (list == nullptr || !list->is_array()) return invalid_argument("post_processor.processors must be an array");
    for (size_t i = 0; i < list->size() && tp == nullptr; ++i) {
      std::string p = "post_processor.processors[" + std::to_string(i) + "]";
      LOOM_ASSIGN_OR_RETURN(std::string t, read_type((*list)[i], p));
      if (t == "TemplateProcessing") { tp = &(*list)[i]; path = p; }
    }
  }
  if (tp == nullptr) return Status::ok_status();  // ByteLevel, Roberta, ...: no BOS to report
  const json* single = member(*tp, "single");
  if (single == nullptr || !single->is_array()) return invalid_argument(path + ".single must be an array");
  if (single->empty()) return Status::ok_status();
  const json& first = (*single)[0];
  if (!first.is_object()) return wrong_type(path + ".single[0]", "an object", first);
  const json* st = member(first, "SpecialToken");
  if (st == nullptr) return Status::ok_status();  // starts with the text itself
  const json* name = st->is_object() ? member(*st, "id") : nullptr;
  if (name == nullptr || !name->is_string()) return invalid_argument(path + ".single[0].SpecialToken.id must be a string");
  const std::string& token = name->get_ref<const std::string&>();
  // special_tokens maps the name to its ids; fall back on the vocabulary.
  if (const json* specials = member(*tp, "special_tokens")) {
    const json* entry = specials->is_object() ? member(*specials, token.c_str()) : nullptr;
    const json* ids = entry != nullptr && entry->is_object() ? member(*entry, "ids") : nullptr;
    if (ids != nullptr) {
      if (!ids->is_array() || ids->size() != 1 || !(*ids)[0].is_number_integer()) {
        return invalid_argument(path + ".special_tokens[\"" + token + "\"].ids must be one integer");
      }
      impl->bos = (*ids)[0].get<int64_t>();
      return Status::ok_status();
    }
  }
  for (const AddedToken& a : impl->added) {
    if (a.content == token) { impl->bos = a.id; return Status::ok_status(); }
  }
  if (auto id = impl->model->token_id(token)) { impl->bos = *id; return Status::ok_status(); }
  return invalid_argument(path + " starts with \"" + token + "\", which is not a token");
}

}  // namespace

Result<Tokenizer> Tokenizer::from_tokenizer_json(std::string_view json_text) {
  if (json_text.size() > kMaxFileBytes) {
    return resource_exhausted("tokenizer.json is " + std::to_string(json_text.size()) + " bytes, over the limit of " +
                              std::to_string(kMaxFileBytes));
  }
  try {
    LOOM_ASSIGN_OR_RETURN(json root, internal::parse_json(json_text, "tokenizer.json"));
    if (!root.is_object()) return wrong_type("tokenizer.json", "an object", root);
    auto impl = std::make_unique<TokenizerImpl>();
    LOOM_RETURN_IF_ERROR(check_normalizer_and_decoder(root));
    LOOM_RETURN_IF_ERROR(read_model(root, impl.get()));
    LOOM_RETURN_IF_ERROR(read_added_tokens(root, impl.get()));
    LOOM_RETURN_IF_ERROR(read_pre_tokenizer(root, impl.get()));
    LOOM_RETURN_IF_ERROR(read_bos(root, impl.get()));
    return TokenizerImpl::finish(std::move(impl));
  } catch (const std::bad_alloc&) {
    return resource_exhausted("out of memory loading tokenizer.json");
  } catch (const std::exception& e) {
    // Every access above checks its type first; this is the backstop.
    return internal_error(std::string("reading tokenizer.json: ") + e.what());
  }
}

}  // namespace loom::text
