#include "runtime/safetensors_header.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <climits>
#include <limits>
#include <set>
#include <tuple>

namespace loom::runtime {

using Json = nlohmann::json;

namespace {

constexpr SafetensorsDtype kSafetensorsDtypes[] = {
    {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8},
    {"I32", 4}, {"I16", 2}, {"I8", 1},  {"U8", 1},   {"BOOL", 1},
};

// Real tensors have a handful of dims; a header with thousands is hostile and
// would only make at::empty allocate large size arrays.
constexpr size_t kMaxRank = 64;
constexpr uint64_t kMaxBytes = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
constexpr char kMetadataKey[] = "__metadata__";


}  // namespace

const SafetensorsDtype* safetensors_dtype(std::string_view name) {
  for (const SafetensorsDtype& d : kSafetensorsDtypes) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

namespace internal {
std::string supported_dtypes() {
  std::string out;
  for (const SafetensorsDtype& d : kSafetensorsDtypes) {
    if (!out.empty()) out += ", ";
    out += d.name;
  }
  return out;
}

// A name as it appears in messages: JSON-quoted, so control characters and
// invalid UTF-8 stay readable.
std::string json_quoted(const std::string& s) {
  return Json(s).dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string shape_str(const std::vector<int64_t>& values) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(values[i]);
  }
  return out + "]";
}

std::string offsets_str(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

// numel x itemsize, or false when it does not fit in an int64 byte count.
bool byte_size(const std::vector<int64_t>& shape, uint64_t itemsize, uint64_t* out) {
  uint64_t n = itemsize;
  for (int64_t dim : shape) {
    if (dim < 0 || __builtin_mul_overflow(n, static_cast<uint64_t>(dim), &n)) return false;
  }
  if (n > kMaxBytes) return false;
  *out = n;
  return true;
}

uint64_t read_le64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

}  // namespace internal

using namespace internal;

namespace {

// Reads a non-negative integer that fits in int64 from `v`.
bool as_size(const Json& v, uint64_t* out) {
  if (!v.is_number_unsigned()) return false;  // negatives parse as signed, fractions as float
  uint64_t u = v.get<uint64_t>();
  if (u > kMaxBytes) return false;
  *out = u;
  return true;
}

Result<SafetensorsEntry> parse_entry(const std::string& where, const std::string& name, const Json& value,
                          uint64_t data_size) {
  if (name.empty()) return invalid_argument(where + "tensor name is empty");
  if (!value.is_object()) return invalid_argument(where + "entry must be an object, got " + value.type_name());
  SafetensorsEntry e;
  e.name = name;

  auto dtype = value.find("dtype");
  if (dtype == value.end()) return invalid_argument(where + "missing \"dtype\"");
  if (!dtype->is_string()) return invalid_argument(where + "\"dtype\" must be a string, got " + dtype->type_name());
  e.dtype = safetensors_dtype(dtype->get_ref<const std::string&>());
  if (e.dtype == nullptr) {
    return invalid_argument(where + "unknown dtype " + json_quoted(dtype->get_ref<const std::string&>()) +
                            " (supported: " + supported_dtypes() + ")");
  }

  auto shape = value.find("shape");
  if (shape == value.end()) return invalid_argument(where + "missing \"shape\"");
  if (!shape->is_array()) return invalid_argument(where + "\"shape\" must be an array, got " + shape->type_name());
  if (shape->size() > kMaxRank) {
    return invalid_argument(where + "\"shape\" has " + std::to_string(shape->size()) + " dims, more than " +
                            std::to_string(kMaxRank));
  }
  for (size_t i = 0; i < shape->size(); ++i) {
    uint64_t dim = 0;
    if (!as_size((*shape)[i], &dim)) {
      return invalid_argument(where + "shape[" + std::to_string(i) + "] must be a non-negative integer, got " +
                              (*shape)[i].dump());
    }
    e.shape.push_back(static_cast<int64_t>(dim));
  }
  uint64_t nbytes = 0;
  if (!byte_size(e.shape, e.dtype->itemsize, &nbytes)) {
    return invalid_argument(where + e.dtype->name + " " + shape_str(e.shape) + " needs more than 2^63 bytes");
  }

  auto offsets = value.find("data_offsets");
  if (offsets == value.end()) return invalid_argument(where + "missing \"data_offsets\"");
  if (!offsets->is_array() || offsets->size() != 2) {
    return invalid_argument(where + "\"data_offsets\" must be an array [begin, end], got " + offsets->dump());
  }
  if (!as_size((*offsets)[0], &e.begin) || !as_size((*offsets)[1], &e.end)) {
    return invalid_argument(where + "\"data_offsets\" must hold non-negative integers, got " + offsets->dump());
  }
  std::string range = "data_offsets " + offsets_str(e.begin, e.end);
  if (e.end < e.begin) return invalid_argument(where + range + " end before begin");
  if (e.end > data_size) {
    return invalid_argument(where + range + " run past the data section of " + std::to_string(data_size) +
                            " bytes");
  }
  if (e.end - e.begin != nbytes) {
    return invalid_argument(where + range + " hold " + std::to_string(e.end - e.begin) + " bytes but " +
                            e.dtype->name + " " + shape_str(e.shape) + " needs " + std::to_string(nbytes));
  }
  return e;
}

}  // namespace

// The header length announced by the first 8 bytes of a `total`-byte file,
// checked against the bytes that follow it and the limits.
Result<uint64_t> check_safetensors_header_length(const std::string& label, const char* prefix, uint64_t total,
                                     const SafetensorsLimits& limits) {
  if (total < 8) {
    return invalid_argument(label + ": " + std::to_string(total) +
                            " bytes is too short for the 8-byte header length");
  }
  uint64_t n = read_le64(prefix);
  if (n > total - 8) {
    return invalid_argument(label + ": header length " + std::to_string(n) + " is longer than the " +
                            std::to_string(total - 8) + " bytes that follow it");
  }
  if (n > limits.max_header_bytes) {
    return invalid_argument(label + ": header length " + std::to_string(n) + " exceeds the limit of " +
                            std::to_string(limits.max_header_bytes) + " bytes");
  }
  if (total - 8 - n > limits.max_total_bytes) {
    return invalid_argument(label + ": data section of " + std::to_string(total - 8 - n) +
                            " bytes exceeds the limit of " + std::to_string(limits.max_total_bytes) + " bytes");
  }
  return n;
}

Result<SafetensorsHeader> parse_safetensors_header(const std::string& label, const char* text, size_t size, uint64_t data_size,
                                  const SafetensorsLimits& limits) {
  // nlohmann keeps the last of duplicate keys; a duplicated tensor name is
  // ambiguous, so the callback records it and the header is rejected.
  std::set<std::string> seen;
  std::string duplicate;
  Json::parser_callback_t on_event = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (event == Json::parse_event_t::key && depth == 1 && duplicate.empty() &&
        !seen.insert(parsed.get_ref<const std::string&>()).second) {
      duplicate = parsed.get_ref<const std::string&>();
    }
    return true;
  };
  Json root;
  try {
    root = Json::parse(text, text + size, on_event);
  } catch (const Json::exception& e) {
    return invalid_argument(label + ": header is not valid JSON: " + e.what());
  }
  if (!root.is_object()) return invalid_argument(label + ": header must be a JSON object, got " + root.type_name());
  if (!duplicate.empty()) return invalid_argument(label + ": header names " + json_quoted(duplicate) + " twice");

  SafetensorsHeader out;
  size_t count = root.size() - root.count(kMetadataKey);
  if (count > limits.max_tensors) {
    return invalid_argument(label + ": header lists " + std::to_string(count) + " tensors, more than the limit of " +
                            std::to_string(limits.max_tensors));
  }
  out.entries.reserve(count);
  for (const auto& [name, value] : root.items()) {
    if (name == kMetadataKey) {
      if (value.is_null()) continue;  // the reference writer's "no metadata"
      if (!value.is_object()) {
        return invalid_argument(label + ": \"__metadata__\" must be an object, got " + value.type_name());
      }
      for (const auto& [key, v] : value.items()) {
        if (!v.is_string()) {
          return invalid_argument(label + ": \"__metadata__\" value " + json_quoted(key) + " must be a string, got " +
                                  v.type_name());
        }
        out.metadata[key] = v.get<std::string>();
      }
      continue;
    }
    LOOM_ASSIGN_OR_RETURN(SafetensorsEntry e, parse_entry(label + ": tensor " + json_quoted(name) + ": ", name, value, data_size));
    out.entries.push_back(std::move(e));
  }

  // Like the reference reader, tensors must tile the data section exactly:
  // no overlap (two tensors aliasing bytes), no gaps, no trailing bytes.
  std::sort(out.entries.begin(), out.entries.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  uint64_t covered = 0;
  const SafetensorsEntry* prev = nullptr;
  for (const SafetensorsEntry& e : out.entries) {
    std::string where = label + ": tensor " + json_quoted(e.name) + ": data_offsets " + offsets_str(e.begin, e.end);
    if (e.begin < covered) {
      return invalid_argument(where + " overlap tensor " + json_quoted(prev->name) + " at " +
                              offsets_str(prev->begin, prev->end));
    }
    if (e.begin > covered) {
      return invalid_argument(where + " leave bytes " + offsets_str(covered, e.begin) +
                              " of the data section unused");
    }
    covered = e.end;
    prev = &e;
  }
  if (covered != data_size) {
    return invalid_argument(label + ": tensors cover " + std::to_string(covered) + " bytes but the data section has " +
                            std::to_string(data_size));
  }
  return out;
}


}  // namespace loom::runtime
