// Base64 (RFC 4648 section 4: standard alphabet, '=' padding), used for
// `result_inline` in WebSocket COMPLETED events.
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "graph/status.h"

namespace loom::transport {

std::string base64_encode(std::string_view data);

// Strict: the length must be a multiple of 4, padding only at the end (at
// most two '='), no whitespace or characters outside the alphabet, and the
// unused bits before the padding zero (so every input has one decoding and
// one encoding). Anything else is INVALID_ARGUMENT naming the offset.
Result<std::string> base64_decode(std::string_view text);

}  // namespace loom::transport
