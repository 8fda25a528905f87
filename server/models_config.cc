#include "server/models_config.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

namespace loom::server {

Result<std::vector<ModelSpec>> parse_models_config(const std::string& text, const std::string& base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return invalid_argument(std::string("models config is not valid YAML/JSON: ") + e.what());
  }
  if (!root.IsMap()) return invalid_argument("models config must be a mapping with a \"models\" list");
  for (const auto& kv : root) {
    std::string k = kv.first.as<std::string>();
    if (k != "models") return invalid_argument("models config: unknown field \"" + k + "\" (expected \"models\")");
  }
  YAML::Node models = root["models"];
  if (!models || !models.IsSequence() || models.size() == 0) {
    return invalid_argument("models config: \"models\" must be a non-empty list");
  }
  static const std::regex kKey("[A-Za-z0-9._-]{1,128}");
  static const std::regex kDevice("cpu|cuda:[0-9]{1,2}");
  std::vector<ModelSpec> out;
  std::set<std::string> keys;
  for (size_t i = 0; i < models.size(); ++i) {
    const YAML::Node& m = models[i];
    std::string where = "models[" + std::to_string(i) + "]";
    if (!m.IsMap()) return invalid_argument("models config: " + where + " must be a mapping");
    ModelSpec spec;
    for (const auto& kv : m) {
      std::string field = kv.first.as<std::string>();
      if (!kv.second.IsScalar()) return invalid_argument("models config: " + where + "." + field + " must be a string");
      std::string value = kv.second.as<std::string>();
      if (field == "key") {
        spec.key = value;
      } else if (field == "path") {
        spec.path = value;
      } else if (field == "device") {
        spec.device = value;
      } else {
        return invalid_argument("models config: " + where + ": unknown field \"" + field +
                                "\" (expected key, path, device)");
      }
    }
    if (!std::regex_match(spec.key, kKey)) {
      return invalid_argument("models config: " + where + ".key \"" + spec.key +
                              "\" must be 1-128 characters of letters, digits, '.', '_', '-'");
    }
    if (!keys.insert(spec.key).second) return invalid_argument("models config: " + where + ".key \"" + spec.key + "\" appears twice");
    if (spec.path.empty()) return invalid_argument("models config: " + where + ".path is missing");
    if (!std::regex_match(spec.device, kDevice)) {
      return invalid_argument("models config: " + where + ".device \"" + spec.device + "\" must be cpu or cuda:N");
    }
    if (spec.path[0] != '/' && !base_dir.empty()) spec.path = base_dir + "/" + spec.path;
    out.push_back(std::move(spec));
  }
  return out;
}

Result<std::vector<ModelSpec>> load_models_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) return not_found("models config " + path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string base = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
  auto r = parse_models_config(ss.str(), base);
  if (!r.ok()) return r.status().with_context(path);
  return r;
}

}  // namespace loom::server
