// Presigned result URLs and webhook signatures (transport/PROTOCOL.md),
// both HMAC-SHA256 with a server-held secret.
//
// A presigned URL is its own credential: anyone holding
// `PATH?expires=E&sig=HEX` may GET PATH until second E (inclusive), where
//   HEX = hex(HMAC-SHA256(secret, METHOD + "\n" + PATH + "\n" + E)).
// PATH is signed exactly as it appears in the request target, without the
// query and without percent-decoding, so the server must verify the raw path.
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "graph/status.h"

namespace loom::transport {

// Lowercase hex of HMAC-SHA256(key, data).
std::string hmac_sha256_hex(std::string_view key, std::string_view data);

// Compares without an early exit, so the time taken does not reveal how
// many leading bytes match. (It does reveal whether the lengths differ.)
bool constant_time_equal(std::string_view a, std::string_view b);

// "PATH?expires=E&sig=HEX", valid for `method` up to and including second
// `expires_unix`.
std::string presign(std::string_view secret, std::string_view method, std::string_view path, int64_t expires_unix);

// Checks a presigned request: `query` is the raw query string (a leading '?'
// is allowed). It must hold exactly the parameters `expires` (decimal Unix
// seconds) and `sig` (hex, either case), in any order, each once; any other
// parameter is rejected, since the signature does not cover it.
// Errors: INVALID_ARGUMENT for a malformed query (missing, repeated or
// unknown parameter, non-decimal expires); PERMISSION_DENIED "bad signature"
// when sig does not match method, path and expires (a tampered expires
// included), then PERMISSION_DENIED "expired" when now_unix > expires.
Status verify_presigned(std::string_view secret, std::string_view method, std::string_view path,
                        std::string_view query, int64_t now_unix);

// The X-Loom-Signature header of a webhook POST:
// "sha256=" + hex(HMAC-SHA256(secret, TIMESTAMP + "." + BODY)), where
// `timestamp` is the X-Loom-Timestamp header value exactly as sent.
std::string webhook_signature(std::string_view secret, std::string_view timestamp, std::string_view body);

}  // namespace loom::transport
