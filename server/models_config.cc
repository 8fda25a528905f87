#include "server/models_config.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <regex>
#include <set>
#include <sstream>

#include "graph/sha256.h"

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
  return parse_model_list(root["models"], "models config: ", "models", base_dir);
}

Result<std::vector<ModelSpec>> parse_model_list(const YAML::Node& models, const std::string& prefix,
                                                const std::string& path, const std::string& base_dir) {
  if (!models || !models.IsSequence() || models.size() == 0) {
    return invalid_argument(prefix + "\"" + path + "\" must be a non-empty list");
  }
  static const std::regex kKey("[A-Za-z0-9._-]{1,128}");
  static const std::regex kDevice("cpu|cuda:[0-9]{1,2}");
  std::vector<ModelSpec> out;
  std::set<std::string> keys;
  for (size_t i = 0; i < models.size(); ++i) {
    const YAML::Node& m = models[i];
    std::string where = path + "[" + std::to_string(i) + "]";
    if (!m.IsMap()) return invalid_argument(prefix + where + " must be a mapping");
    ModelSpec spec;
    for (const auto& kv : m) {
      std::string field = kv.first.as<std::string>();
      if (!kv.second.IsScalar()) return invalid_argument(prefix + where + "." + field + " must be a string");
      std::string value = kv.second.as<std::string>();
      if (field == "key") {
        spec.key = value;
      } else if (field == "path") {
        spec.path = value;
      } else if (field == "device") {
        spec.device = value;
      } else if (field == "test_forward_delay_ms") {
        static const std::regex kMs("[0-9]{1,5}");
        if (!std::regex_match(value, kMs)) {
          return invalid_argument(prefix + where + ".test_forward_delay_ms must be 0..99999");
        }
        spec.test_forward_delay_ms = static_cast<uint32_t>(std::stoul(value));
      } else {
        return invalid_argument(prefix + where + ": unknown field \"" + field +
                                "\" (expected key, path, device, test_forward_delay_ms)");
      }
    }
    if (!std::regex_match(spec.key, kKey)) {
      return invalid_argument(prefix + where + ".key \"" + spec.key +
                              "\" must be 1-128 characters of letters, digits, '.', '_', '-'");
    }
    if (!keys.insert(spec.key).second) return invalid_argument(prefix + where + ".key \"" + spec.key + "\" appears twice");
    if (spec.path.empty()) return invalid_argument(prefix + where + ".path is missing");
    if (!std::regex_match(spec.device, kDevice)) {
      return invalid_argument(prefix + where + ".device \"" + spec.device + "\" must be cpu or cuda:N");
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

std::string models_config_json(const std::vector<ModelSpec>& models) {
  nlohmann::json list = nlohmann::json::array();
  for (const ModelSpec& m : models) {
    nlohmann::json entry = {{"key", m.key}, {"path", m.path}, {"device", m.device}};
    if (m.test_forward_delay_ms > 0) entry["test_forward_delay_ms"] = m.test_forward_delay_ms;
    list.push_back(std::move(entry));
  }
  return nlohmann::json{{"models", list}}.dump(2) + "\n";
}

Result<std::string> model_revision(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<fs::path> files;
  if (fs::is_directory(path, ec)) {
    for (fs::recursive_directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->is_regular_file(ec)) files.push_back(it->path());
    }
    if (ec) return Status(StatusCode::kUnavailable, "cannot list " + path + ": " + ec.message());
    std::sort(files.begin(), files.end());
  } else {
    files.push_back(path);
  }
  Sha256 hash;
  std::vector<char> buf(1 << 20);
  for (const fs::path& f : files) {
    const std::string name = fs::relative(f, fs::is_directory(path, ec) ? fs::path(path) : f.parent_path(), ec).string();
    hash.update(name);
    hash.update(std::string_view("\0", 1));
    std::ifstream in(f, std::ios::binary);
    if (!in) return Status(StatusCode::kUnavailable, "cannot read " + f.string() + " to compute the model's revision");
    while (in) {
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      hash.update(std::string_view(buf.data(), static_cast<size_t>(in.gcount())));
    }
    hash.update(std::string_view("\0", 1));
  }
  return hash.hex_digest();
}

}  // namespace loom::server
