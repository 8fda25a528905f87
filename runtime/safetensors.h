// Reading and writing the safetensors container format
// (https://huggingface.co/docs/safetensors): an 8-byte little-endian header
// length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__":
// {str: str}}, then the raw little-endian tensor bytes.
//
// Everything read is checked before it is used: header length against the
// file size and SafetensorsLimits, the JSON itself, dtypes, shapes (no
// overflow), offsets inside the data section and matching dtype x shape.
// A malformed file gives an INVALID_ARGUMENT Status naming the file (or
// "<buffer>") and the problem; it never crashes or allocates unbounded memory.
// Thread safety: free functions, no shared state.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "graph/status.h"
#include "runtime/safetensors_header.h"

namespace loom::runtime {


struct NamedTensor {
  std::string name;
  at::Tensor tensor;  // CPU, contiguous, owns its memory
};

struct SafetensorsFile {
  std::vector<NamedTensor> tensors;  // in data-offset order
  std::map<std::string, std::string> metadata;  // "__metadata__"

  // Returns the tensor called `name`, or an undefined tensor.
  at::Tensor find(const std::string& name) const;
};

Result<SafetensorsFile> read_safetensors_file(const std::string& path,
                                              const SafetensorsLimits& limits = {});
// Like read_safetensors_file, but the tensors are views of a private
// (copy-on-write) memory mapping of the file, shared by all of them and
// unmapped when the last is freed: checkpoints load without a copy. The
// header is checked as strictly; BOOL tensors are refused (their bytes would
// need a full scan).
Result<SafetensorsFile> map_safetensors_file(const std::string& path, const SafetensorsLimits& limits = {});
// The header's tensors as meta tensors: names, shapes and dtypes, no data
// read (a model loaded on the "meta" device, for scans). Checked as strictly.
Result<SafetensorsFile> read_safetensors_shapes(const std::string& path, const SafetensorsLimits& limits = {});
Result<SafetensorsFile> read_safetensors_buffer(const std::string& bytes,
                                                const SafetensorsLimits& limits = {});

// Writes tensors (any device; copied to CPU) in the given order.
// Names must be unique and non-empty.
Result<std::string> encode_safetensors(const std::vector<NamedTensor>& tensors,
                                       const std::map<std::string, std::string>& metadata = {});
Status write_safetensors_file(const std::string& path, const std::vector<NamedTensor>& tensors,
                              const std::map<std::string, std::string>& metadata = {});

}  // namespace loom::runtime
