#include "graph/scan_report.h"

#include <limits>

namespace loom::graph {
namespace {

using nlohmann::json;

// At most this many values or saves in an answer (a graph's node limit is far lower).
constexpr size_t kMaxEntries = 1u << 20;
constexpr size_t kMaxRank = 64;

Status field_error(const std::string& path, const std::string& want) {
  return invalid_argument("scan answer: " + path + " must be " + want);
}

Result<uint64_t> get_count(const json& j, const char* name) {
  if (!j.contains(name) || !j[name].is_number_integer() || (!j[name].is_number_unsigned() && j[name].get<int64_t>() < 0)) {
    return field_error(name, "a non-negative integer");
  }
  return j[name].get<uint64_t>();
}

Result<double> get_number(const json& j, const char* name) {
  if (!j.contains(name) || !j[name].is_number() || !(j[name].get<double>() >= 0)) {
    return field_error(name, "a non-negative number");
  }
  return j[name].get<double>();
}

Result<std::string> get_text(const json& j, const char* name, const std::string& path) {
  if (!j.contains(name) || !j[name].is_string() || j[name].get_ref<const std::string&>().size() > 4096) {
    return field_error(path + "." + name, "a string of at most 4096 bytes");
  }
  return j[name].get<std::string>();
}

Result<std::vector<int64_t>> get_shape(const json& j, const std::string& path) {
  if (!j.contains("shape") || !j["shape"].is_array() || j["shape"].size() > kMaxRank) {
    return field_error(path + ".shape", "an array of at most " + std::to_string(kMaxRank) + " dimensions");
  }
  std::vector<int64_t> shape;
  for (const json& d : j["shape"]) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0) return field_error(path + ".shape", "non-negative integers");
    shape.push_back(d.get<int64_t>());
  }
  return shape;
}

}  // namespace

const ScanValue* ScanReport::value(uint32_t node) const {
  for (const ScanValue& v : values) {
    if (v.node == node) return &v;
  }
  return nullptr;
}

const ScanSave* ScanReport::save(const std::string& name) const {
  for (const ScanSave& s : saves) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

json to_json(const ScanReport& r) {
  json values = json::array(), saves = json::array();
  for (const ScanValue& v : r.values) {
    values.push_back({{"node", v.node}, {"kind", v.kind}, {"shape", v.shape}, {"dtype", v.dtype}});
  }
  for (const ScanSave& s : r.saves) saves.push_back({{"name", s.name}, {"shape", s.shape}, {"dtype", s.dtype}});
  return {{"values", std::move(values)},
          {"saves", std::move(saves)},
          {"estimate",
           {{"saved_bytes", r.saved_bytes},
            {"intermediate_bytes", r.intermediate_bytes},
            {"autograd_bytes", r.autograd_bytes},
            {"peak_bytes", r.peak_bytes},
            {"tokens", r.tokens},
            {"flops", r.flops},
            {"device_ms", r.device_ms}}}};
}

Result<ScanReport> scan_report_from_json(const json& j) {
  if (!j.is_object()) return field_error("the answer", "an object");
  for (const char* list : {"values", "saves"}) {
    if (!j.contains(list) || !j[list].is_array() || j[list].size() > kMaxEntries) {
      return field_error(list, "an array of at most " + std::to_string(kMaxEntries) + " entries");
    }
  }
  if (!j.contains("estimate") || !j["estimate"].is_object()) return field_error("estimate", "an object");
  ScanReport r;
  for (size_t i = 0; i < j["values"].size(); ++i) {
    const json& v = j["values"][i];
    const std::string path = "values[" + std::to_string(i) + "]";
    if (!v.is_object()) return field_error(path, "an object");
    if (!v.contains("node") || !v["node"].is_number_integer() || v["node"].get<int64_t>() < 0 ||
        v["node"].get<uint64_t>() > std::numeric_limits<uint32_t>::max()) {
      return field_error(path + ".node", "a node index");
    }
    ScanValue sv;
    sv.node = v["node"].get<uint32_t>();
    LOOM_ASSIGN_OR_RETURN(sv.kind, get_text(v, "kind", path));
    LOOM_ASSIGN_OR_RETURN(sv.shape, get_shape(v, path));
    LOOM_ASSIGN_OR_RETURN(sv.dtype, get_text(v, "dtype", path));
    r.values.push_back(std::move(sv));
  }
  for (size_t i = 0; i < j["saves"].size(); ++i) {
    const json& s = j["saves"][i];
    const std::string path = "saves[" + std::to_string(i) + "]";
    if (!s.is_object()) return field_error(path, "an object");
    ScanSave ss;
    LOOM_ASSIGN_OR_RETURN(ss.name, get_text(s, "name", path));
    LOOM_ASSIGN_OR_RETURN(ss.shape, get_shape(s, path));
    LOOM_ASSIGN_OR_RETURN(ss.dtype, get_text(s, "dtype", path));
    r.saves.push_back(std::move(ss));
  }
  const json& e = j["estimate"];
  LOOM_ASSIGN_OR_RETURN(r.saved_bytes, get_count(e, "saved_bytes"));
  LOOM_ASSIGN_OR_RETURN(r.intermediate_bytes, get_count(e, "intermediate_bytes"));
  LOOM_ASSIGN_OR_RETURN(r.autograd_bytes, get_count(e, "autograd_bytes"));
  LOOM_ASSIGN_OR_RETURN(r.peak_bytes, get_count(e, "peak_bytes"));
  LOOM_ASSIGN_OR_RETURN(uint64_t tokens, get_count(e, "tokens"));
  r.tokens = static_cast<int64_t>(std::min<uint64_t>(tokens, std::numeric_limits<int64_t>::max()));
  LOOM_ASSIGN_OR_RETURN(r.flops, get_number(e, "flops"));
  LOOM_ASSIGN_OR_RETURN(r.device_ms, get_number(e, "device_ms"));
  return r;
}

}  // namespace loom::graph
