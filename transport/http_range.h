// The HTTP Range request header (RFC 9110 section 14) for blob downloads:
// one byte range per request, which is what resumable downloads use.
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "graph/status.h"

namespace loom::transport {

// Inclusive on both ends, as in Content-Range; first <= last < size.
struct ByteRange {
  uint64_t first = 0;
  uint64_t last = 0;
  uint64_t length() const { return last - first + 1; }
};

// Every "range not satisfiable" error message starts with this; the server
// answers those with 416 and `Content-Range: bytes */SIZE`, other range
// errors with 400.
inline constexpr std::string_view kRangeNotSatisfiable = "range not satisfiable";
bool is_range_not_satisfiable(const Status& status);

// Parses `bytes=A-B`, `bytes=A-` and `bytes=-N` (the last N bytes) against a
// representation of `size` bytes. B past the end is clamped to size - 1; N
// past the size means the whole representation.
//   empty header, or a unit other than bytes   -> nullopt (serve it all, as
//                                                 RFC 9110 requires for
//                                                 unknown units)
//   A >= size, N == 0, or size == 0            -> INVALID_ARGUMENT
//                                                 "range not satisfiable ..."
//   several ranges                             -> INVALID_ARGUMENT
//                                                 "multiple ranges are not supported"
//   anything else malformed (B < A, no digits) -> INVALID_ARGUMENT "malformed range ..."
Result<std::optional<ByteRange>> parse_range(std::string_view header, uint64_t size);

// "bytes A-B/SIZE" for a 206 answer.
std::string content_range(const ByteRange& range, uint64_t size);
// "bytes */SIZE" for a 416 answer.
std::string content_range_unsatisfiable(uint64_t size);

}  // namespace loom::transport
