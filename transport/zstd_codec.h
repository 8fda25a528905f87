// zstd compression for request bodies and results, with an explicit bound
// on the decompressed size: a small hostile frame can claim (or expand to)
// gigabytes, so decompress() stops at `max_output` and says so.
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "graph/status.h"

namespace loom::transport {

std::string zstd_compress(std::string_view data, int level = 3);
// INVALID_ARGUMENT for bad or truncated frames; RESOURCE_EXHAUSTED past max_output.
Result<std::string> zstd_decompress(std::string_view frame, uint64_t max_output);

}  // namespace loom::transport
