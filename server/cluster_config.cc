#include "server/cluster_config.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "server/redis_client.h"
#include "transport/wire.h"

namespace loom::server {
namespace {

constexpr const char* kPrefix = "cluster config: ";
constexpr size_t kMaxConfigBytes = 1 << 20;
constexpr const char* kTop = "(top)";  // the document's own path in messages

Status bad(const std::string& path, const std::string& what) { return invalid_argument(kPrefix + path + ": " + what); }

// yaml-cpp tags a quoted scalar "!" and a plain one "?": a count written as
// "2" (a JSON string) is refused as a wrong type, as a JSON parser would.
bool quoted(const YAML::Node& n) { return n.Tag() == "!"; }

Result<std::string> string_at(const YAML::Node& n, const std::string& path) {
  if (!n.IsScalar()) return bad(path, "must be a string");
  std::string v = n.as<std::string>();
  if (transport::valid_utf8(v) != v) return bad(path, "is not valid UTF-8");
  if (v.find_first_of(std::string("\0\n\r", 3)) != std::string::npos) return bad(path, "must not hold NUL or line breaks");
  return v;
}

Result<uint32_t> count_at(const YAML::Node& n, const std::string& path, uint32_t lo, uint32_t hi) {
  const std::string range = "an integer " + std::to_string(lo) + ".." + std::to_string(hi);
  if (!n.IsScalar() || quoted(n)) return bad(path, "must be " + range);
  static const std::regex kInt("[0-9]{1,9}");
  std::string v = n.as<std::string>();
  if (!std::regex_match(v, kInt)) return bad(path, "must be " + range + ", got \"" + transport::valid_utf8(v) + "\"");
  uint64_t x = std::stoull(v);
  if (x < lo || x > hi) return bad(path, "must be " + range + ", got " + v);
  return static_cast<uint32_t>(x);
}

// Calls `fields[name]` for each key of the map at `path`; any other key is
// an error that lists the ones allowed.
using FieldFn = std::function<Status(const YAML::Node&, const std::string&)>;
Status each_field(const YAML::Node& map, const std::string& path, const std::map<std::string, FieldFn>& fields,
                  const std::vector<std::string>& required) {
  if (!map.IsMap()) return bad(path, "must be a mapping");
  std::set<std::string> seen;
  for (const auto& kv : map) {
    if (!kv.first.IsScalar()) return bad(path, "has a key that is not a string");
    std::string name = kv.first.as<std::string>();
    auto it = fields.find(name);
    if (it == fields.end()) {
      std::string allowed;
      for (const auto& f : fields) allowed += (allowed.empty() ? "" : ", ") + f.first;
      return bad(path, "unknown field \"" + transport::valid_utf8(name) + "\" (expected " + allowed + ")");
    }
    seen.insert(name);
    LOOM_RETURN_IF_ERROR(it->second(kv.second, path == kTop ? name : path + "." + name));
  }
  for (const std::string& r : required) {
    if (!seen.count(r)) return bad(path, "\"" + r + "\" is missing");
  }
  return Status();
}

std::string absolute(const std::string& p, const std::string& base_dir) {
  std::filesystem::path path(p);
  if (path.is_relative()) path = std::filesystem::path(base_dir.empty() ? "." : base_dir) / path;
  return std::filesystem::absolute(path).lexically_normal().string();
}

Status parse_servers(const YAML::Node& n, const std::string& path, ClusterConfig& c) {
  return each_field(
      n, path,
      {{"count",
        [&](const YAML::Node& v, const std::string& p) {
          LOOM_ASSIGN_OR_RETURN(c.server_count, count_at(v, p, 0, 64));
          return Status();
        }},
       {"listen",
        [&](const YAML::Node& v, const std::string& p) {
          LOOM_ASSIGN_OR_RETURN(std::string listen, string_at(v, p));
          static const std::regex kListen("([A-Za-z0-9.:_-]{1,253}|\\[[0-9A-Fa-f:]{2,45}\\]):([0-9]{1,5})");
          std::smatch m;
          if (!std::regex_match(listen, m, kListen)) return bad(p, "must be HOST:PORT, got \"" + listen + "\"");
          uint64_t port = std::stoull(m[2].str());
          if (port > 65535) return bad(p, "port " + m[2].str() + " is past 65535");
          c.server_host = m[1].str();
          c.server_port = static_cast<uint32_t>(port);
          return Status();
        }}},
      {});
}

Status parse_group(const YAML::Node& n, const std::string& path, const std::string& base_dir, WorkerGroupConfig& g) {
  static const std::regex kName("[A-Za-z0-9._-]{1,64}");
  static const std::regex kMemory("[0-9]{1,9}[KMGT]?");
  static const std::regex kTime("UNLIMITED|[0-9]{1,6}|[0-9]{1,6}:[0-9]{2}(:[0-9]{2})?|[0-9]{1,3}-[0-9]{1,2}(:[0-9]{2}(:[0-9]{2})?)?");
  static const std::regex kEnvName("[A-Za-z_][A-Za-z0-9_]{0,127}");
  static const std::regex kModule("[A-Za-z0-9._/+-]{1,128}");
  auto text_field = [&](std::string& out, const std::regex* re, const std::string& form) {
    return [&out, re, form](const YAML::Node& v, const std::string& p) -> Status {
      LOOM_ASSIGN_OR_RETURN(out, string_at(v, p));
      if (re && !std::regex_match(out, *re)) return bad(p, "must be " + form + ", got \"" + out + "\"");
      return Status();
    };
  };
  auto count_field = [&](uint32_t& out, uint32_t lo, uint32_t hi) {
    return [&out, lo, hi](const YAML::Node& v, const std::string& p) -> Status {
      LOOM_ASSIGN_OR_RETURN(out, count_at(v, p, lo, hi));
      return Status();
    };
  };
  LOOM_RETURN_IF_ERROR(each_field(
      n, path,
      {{"name", text_field(g.name, &kName, "1-64 letters, digits, '.', '_', '-'")},
       {"models",
        [&](const YAML::Node& v, const std::string& p) -> Status {
          LOOM_ASSIGN_OR_RETURN(g.models, parse_model_list(v, kPrefix, p, base_dir));
          for (ModelSpec& m : g.models) m.path = absolute(m.path, base_dir);
          return Status();
        }},
       {"partition", text_field(g.partition, &kName, "a partition name")},
       {"nodes", count_field(g.nodes, 1, 10000)},
       {"gpus_per_node", count_field(g.gpus_per_node, 0, 64)},
       {"cpus_per_task", count_field(g.cpus_per_task, 1, 4096)},
       {"memory", text_field(g.memory, &kMemory, "a size like 16G or 512M")},
       {"device_memory", text_field(g.device_memory, &kMemory, "a size like 70G or 512M")},
       {"host_memory", text_field(g.host_memory, &kMemory, "a size like 200G or 512M")},
       {"time", text_field(g.time, &kTime, "a Slurm time limit (MM, HH:MM:SS, D-HH:MM:SS, UNLIMITED)")},
       {"env",
        [&](const YAML::Node& v, const std::string& p) -> Status {
          if (!v.IsMap()) return bad(p, "must be a mapping of variable names to values");
          for (const auto& kv : v) {
            LOOM_ASSIGN_OR_RETURN(std::string name, string_at(kv.first, p));
            if (!std::regex_match(name, kEnvName)) return bad(p, "\"" + name + "\" is not a variable name");
            LOOM_ASSIGN_OR_RETURN(std::string value, string_at(kv.second, p + "." + name));
            g.env.emplace_back(std::move(name), std::move(value));
          }
          return Status();
        }},
       {"modules",
        [&](const YAML::Node& v, const std::string& p) -> Status {
          if (!v.IsSequence()) return bad(p, "must be a list of module names");
          for (size_t i = 0; i < v.size(); ++i) {
            std::string name;
            LOOM_RETURN_IF_ERROR(text_field(name, &kModule, "a module name")(v[i], p + "[" + std::to_string(i) + "]"));
            g.modules.push_back(std::move(name));
          }
          return Status();
        }},
       {"lease_s",
        [&](const YAML::Node& v, const std::string& p) -> Status {
          LOOM_ASSIGN_OR_RETURN(uint32_t s, count_at(v, p, 1, 3600));
          g.lease_s = s;
          return Status();
        }}},
      {"name", "models"}));
  // Impossible on any cluster: a model on a GPU the group does not ask for.
  for (size_t i = 0; i < g.models.size(); ++i) {
    const std::string& dev = g.models[i].device;
    if (dev.rfind("cuda:", 0) != 0) continue;
    uint32_t index = static_cast<uint32_t>(std::stoul(dev.substr(5)));
    if (index >= g.gpus_per_node) {
      return bad(path + ".models[" + std::to_string(i) + "].device",
                 dev + " needs gpus_per_node >= " + std::to_string(index + 1) + " (the group asks for " +
                     std::to_string(g.gpus_per_node) + ")");
    }
  }
  return Status();
}

}  // namespace

Result<ClusterConfig> parse_cluster_config(const std::string& text, const std::string& base_dir) {
  if (text.size() > kMaxConfigBytes) return invalid_argument("cluster config is larger than 1 MiB");
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return invalid_argument(std::string("cluster config is not valid YAML/JSON: ") + e.what());
  }
  ClusterConfig c;
  try {
    LOOM_RETURN_IF_ERROR(each_field(
        root, kTop,
        {{"cluster",
          [&](const YAML::Node& cluster, const std::string& path) {
            return each_field(
                cluster, path,
                {{"name",
                  [&](const YAML::Node& v, const std::string& p) -> Status {
                    static const std::regex kName("[A-Za-z0-9._-]{1,64}");
                    LOOM_ASSIGN_OR_RETURN(c.name, string_at(v, p));
                    if (!std::regex_match(c.name, kName)) return bad(p, "must be 1-64 letters, digits, '.', '_', '-'");
                    return Status();
                  }},
                 {"redis",
                  [&](const YAML::Node& v, const std::string& p) -> Status {
                    LOOM_ASSIGN_OR_RETURN(c.redis, string_at(v, p));
                    auto addr = parse_redis_url(c.redis);
                    if (!addr.ok()) return bad(p, addr.status().message());
                    return Status();
                  }},
                 {"blob_dir",
                  [&](const YAML::Node& v, const std::string& p) -> Status {
                    LOOM_ASSIGN_OR_RETURN(c.blob_dir, string_at(v, p));
                    if (c.blob_dir.empty()) return bad(p, "must not be empty");
                    c.blob_dir = absolute(c.blob_dir, base_dir);
                    return Status();
                  }},
                 {"servers", [&](const YAML::Node& v, const std::string& p) { return parse_servers(v, p, c); }},
                 {"workers",
                  [&](const YAML::Node& v, const std::string& p) -> Status {
                    if (!v.IsSequence() || v.size() == 0) return bad(p, "must be a non-empty list of worker groups");
                    if (v.size() > 256) return bad(p, "has more than 256 groups");
                    std::set<std::string> names;
                    for (size_t i = 0; i < v.size(); ++i) {
                      std::string at = p + "[" + std::to_string(i) + "]";
                      WorkerGroupConfig g;
                      LOOM_RETURN_IF_ERROR(parse_group(v[i], at, base_dir, g));
                      if (!names.insert(g.name).second) return bad(at + ".name", "\"" + g.name + "\" appears twice");
                      c.workers.push_back(std::move(g));
                    }
                    return Status();
                  }}},
                {"redis", "blob_dir", "workers"});
          }}},
        {"cluster"}));
  } catch (const YAML::Exception& e) {
    return invalid_argument(std::string(kPrefix) + e.what());
  }
  if (c.server_port != 0 && c.server_count > 0 && c.server_port + c.server_count - 1 > 65535) {
    return bad("cluster.servers", std::to_string(c.server_count) + " servers from port " +
                                      std::to_string(c.server_port) + " go past 65535");
  }
  return c;
}

Result<ClusterConfig> load_cluster_config(const std::string& path) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  if (ec) return not_found("cluster config " + path + ": " + ec.message());
  if (size > kMaxConfigBytes) return invalid_argument("cluster config " + path + " is larger than 1 MiB");
  std::ifstream in(path);
  if (!in) return not_found("cluster config " + path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  auto base = std::filesystem::absolute(path, ec).parent_path().string();
  auto r = parse_cluster_config(ss.str(), base);
  if (!r.ok()) return r.status().with_context(path);
  return r;
}

}  // namespace loom::server
