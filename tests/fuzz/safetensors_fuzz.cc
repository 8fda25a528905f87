// Fuzz target: a safetensors buffer as a STREAM reply or a checkpoint
// brings it: header length, JSON header, entries against the data section.
// The header parser is torch-free (runtime/safetensors_header.cc) and is
// compiled into this target directly, since the fuzz build has no torch.
#include <cstddef>
#include <cstdint>
#include <string>

#include "runtime/safetensors_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const char* bytes = reinterpret_cast<const char*>(data);
  loom::runtime::SafetensorsLimits limits;
  limits.max_header_bytes = 1 << 20;
  limits.max_tensors = 4096;
  auto n = loom::runtime::check_safetensors_header_length("<fuzz>", bytes, size, limits);
  if (!n.ok()) return 0;
  auto header = loom::runtime::parse_safetensors_header("<fuzz>", bytes + 8, *n, size - 8 - *n, limits);
  if (!header.ok()) return 0;
  // What the reader then relies on: entries tile the data section in order.
  uint64_t covered = 0;
  for (const auto& e : header->entries) {
    if (e.begin != covered || e.end < e.begin || e.dtype == nullptr) __builtin_trap();
    covered = e.end;
  }
  if (covered != size - 8 - *n) __builtin_trap();
  return 0;
}
