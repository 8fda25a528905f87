#include "server/variants.h"

#include "graph/edits.h"
#include "graph/sha256.h"
#include "runtime/execute.h"

namespace loom::server {

bool Variants::valid_name(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                    c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string Variants::blob_id(const std::string& key, const std::string& name) {
  return loom::sha256_hex(key + "\n" + name);
}

Result<nlohmann::json> Variants::create(const std::string& owner, const std::string& key, const std::string& name,
                                        bool shared, std::string_view body) {
  if (!valid_name(name)) return invalid_argument("a variant name is 1-64 of A-Z a-z 0-9 . _ - (give ?name=NAME)");
  auto view = runner_.find(key);
  if (!view) return not_found("unknown model \"" + key + "\" (this server has: " + runner_.model_keys() + ")");
  LOOM_ASSIGN_OR_RETURN(transport::JobRequest req, transport::decode_request(body, options_.decode_limits()));
  LOOM_RETURN_IF_ERROR(graph::check_edit(req.graph));
  // Validated once, here: a job for the variant checks only its own graph's part.
  LOOM_RETURN_IF_ERROR(runtime::validate_for_modules(req.graph, *view->module_paths, options_.run_limits.graph));
  const std::string id = blob_id(key, name);
  auto existing = blobs_.get(BlobKind::kVariant, id);
  if (existing.ok()) {
    auto meta = nlohmann::json::parse(existing->substr(0, existing->find('\n')), nullptr, false);
    if (!meta.is_object() || meta.value("owner", "") != owner) {
      return Status(StatusCode::kPermissionDenied, "the variant \"" + key + "@" + name + "\" belongs to another API key");
    }
  }
  nlohmann::json meta = {{"owner", owner}, {"model", key}, {"name", name}, {"shared", shared}};
  std::string file = meta.dump() + "\n";
  file.append(body.data(), body.size());
  LOOM_RETURN_IF_ERROR(blobs_.put(BlobKind::kVariant, id, file));
  return nlohmann::json{{"model", key + "@" + name}, {"shared", shared}, {"nodes", req.graph.nodes.size()}};
}

Status Variants::resolve(const std::string& owner, transport::JobRequest& req) const {
  const size_t at = req.model_key.find('@');
  if (at == std::string::npos) return Status();
  const std::string key = req.model_key.substr(0, at), name = req.model_key.substr(at + 1);
  const std::string unknown = "no variant \"" + req.model_key + "\" for this API key";
  if (!valid_name(name)) return not_found(unknown);
  auto file = blobs_.get(BlobKind::kVariant, blob_id(key, name));
  if (!file.ok()) return file.status().code() == StatusCode::kNotFound ? not_found(unknown) : file.status();
  const size_t eol = file->find('\n');
  auto meta = nlohmann::json::parse(file->substr(0, eol), nullptr, false);
  if (eol == std::string::npos || !meta.is_object() || !meta.contains("owner") || !meta["owner"].is_string()) {
    return internal_error("the variant \"" + req.model_key + "\" is stored damaged");
  }
  const bool shared = meta.contains("shared") && meta["shared"].is_boolean() && meta["shared"].get<bool>();
  if (meta["owner"].get<std::string>() != owner && !shared) return not_found(unknown);
  auto stored = transport::decode_request(std::string_view(*file).substr(eol + 1), options_.decode_limits());
  if (!stored.ok()) return internal_error("the variant \"" + req.model_key + "\" is stored damaged: " + stored.status().message());
  LOOM_ASSIGN_OR_RETURN(req.graph, graph::apply_edit(stored->graph, req.graph));
  req.model_key = key;
  return Status();
}

}  // namespace loom::server
