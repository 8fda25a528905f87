// Pieces of the safetensors writer for callers that produce tensors one at a
// time (write_random_gpt2_checkpoint: ~500 MB for GPT-2 small) instead of
// holding every tensor and a second copy of the encoded file. Write the header
// from encode_safetensors_header, then each tensor's bytes in the same order.
// Implemented in runtime/safetensors.cc. Thread safety: free functions and
// single-owner objects, no shared state.
#pragma once

#include <c10/core/ScalarType.h>

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "graph/status.h"

namespace loom::runtime::internal {

// What the header says about one tensor; its bytes follow the previous one's.
struct TensorLayout {
  std::string name;
  c10::ScalarType dtype;
  std::vector<int64_t> shape;
};

// Returns the 8-byte little-endian length followed by the JSON header, padded
// with spaces so the data section starts 8-byte aligned (as the reference
// implementation does), for tensors stored back to back in the given order.
// Rejects empty, duplicate or reserved ("__metadata__") names, unsupported
// dtypes and negative or overflowing shapes, naming the tensor.
Result<std::string> encode_safetensors_header(
    const std::vector<TensorLayout>& layouts, const std::map<std::string, std::string>& metadata);

// Byte size of one element of `dtype` as safetensors stores it; 0 when the
// dtype has no safetensors name.
uint64_t safetensors_itemsize(c10::ScalarType dtype);

// Writes PATH.partial.<pid> and renames it over PATH on commit(), so a reader
// never sees a half-written file; the partial file is removed if commit() is
// never reached. Owned by one thread.
class FileSink {
 public:
  explicit FileSink(std::string path);
  ~FileSink();
  FileSink(const FileSink&) = delete;
  FileSink& operator=(const FileSink&) = delete;

  Status open();
  Status write(const void* data, size_t size);
  Status commit();

 private:
  std::string path_;
  std::string partial_path_;
  std::FILE* file_ = nullptr;
  bool committed_ = false;
};

}  // namespace loom::runtime::internal
