// Fuzz target: a POST /v1/jobs body as the server reads it: zstd, Cap'n
// Proto under the request limits, the graph under its limits, then
// structural validation, the identity and the checksum of what decoded.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "graph/codec.h"
#include "graph/validate.h"
#include "transport/request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  loom::transport::RequestLimits limits;
  limits.max_body_bytes = 1 << 20;  // small bounds keep each run fast; the code paths are the same
  limits.max_decompressed_bytes = 4 << 20;
  limits.traversal_limit_words = (4 << 20) / 8;
  limits.max_input_bytes = 4 << 20;
  auto req = loom::transport::decode_request(std::string_view(reinterpret_cast<const char*>(data), size), limits);
  if (!req.ok()) return 0;
  if (loom::graph::validate(req->graph).ok()) {
    (void)loom::graph::graph_checksum(req->graph);
    (void)loom::transport::request_identity(*req);
  }
  return 0;
}
