// The safetensors header, parsed and checked without torch: the 8-byte
// length, the JSON {name: {dtype, shape, data_offsets}, "__metadata__"},
// every entry checked against the data section (dtype known, shape without
// overflow, offsets inside it, tiling it exactly). runtime/safetensors.h
// turns the entries into tensors; the fuzz target parses headers alone.
// Thread safety: free functions, no shared state.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "graph/status.h"

namespace loom::runtime {

struct SafetensorsLimits {
  // A header this large is already hostile: real ones are a few hundred KiB.
  uint64_t max_header_bytes = 100ull << 20;
  // Upper bound on the whole payload; keeps a lying header from making us
  // allocate more than the caller is willing to hold.
  uint64_t max_total_bytes = 64ull << 30;
  uint64_t max_tensors = 1u << 20;
};

struct SafetensorsDtype {
  const char* name;  // "F32"
  uint64_t itemsize;
};
// The dtypes loom reads and writes; nullptr for another name.
const SafetensorsDtype* safetensors_dtype(std::string_view name);

// One tensor's entry in a header, checked against the data section.
struct SafetensorsEntry {
  std::string name;
  const SafetensorsDtype* dtype = nullptr;
  std::vector<int64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

struct SafetensorsHeader {
  std::vector<SafetensorsEntry> entries;  // sorted by begin; they tile the data section
  std::map<std::string, std::string> metadata;
};

// The header length announced by the first 8 bytes (`prefix`) of a
// `total`-byte input, checked against the bytes after it and the limits.
Result<uint64_t> check_safetensors_header_length(const std::string& label, const char* prefix, uint64_t total,
                                                 const SafetensorsLimits& limits);
// The header's `size` bytes of JSON at `text`, for a data section of
// `data_size` bytes. Errors name `label` (a path, or "<buffer>").
Result<SafetensorsHeader> parse_safetensors_header(const std::string& label, const char* text, size_t size,
                                                   uint64_t data_size, const SafetensorsLimits& limits);

namespace internal {
constexpr char kSafetensorsMetadataKey[] = "__metadata__";
// A name as it appears in messages: JSON-quoted (control characters and
// invalid UTF-8 stay readable).
std::string json_quoted(const std::string& s);
std::string shape_str(const std::vector<int64_t>& shape);
std::string offsets_str(uint64_t begin, uint64_t end);
std::string supported_dtypes();  // "F64, F32, ..."
// numel x itemsize, or false when it does not fit in an int64 byte count.
bool byte_size(const std::vector<int64_t>& shape, uint64_t itemsize, uint64_t* out);
constexpr uint64_t kMaxTensorBytes = static_cast<uint64_t>(INT64_MAX);
}  // namespace internal

}  // namespace loom::runtime
