// The job request: what a client POSTs to /v1/jobs (transport/PROTOCOL.md),
// in memory and on the wire (transport/protocol.capnp, zstd-compressed).
//
// decode_request() treats its input as hostile: every size is bounded before
// the memory is spent (RequestLimits), Cap'n Proto reads under explicit
// traversal and nesting limits, and any malformed input gives a Status with a
// message naming the values involved, never an exception.
// Thread safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "graph/generation.h"
#include "graph/ir.h"
#include "graph/status.h"
#include "graph/validate.h"
#include "transport/wire.h"

namespace loom::transport {

struct JobRequest {
  uint32_t protocol_version = kProtocolVersion;
  std::string model_key;
  graph::Graph graph;
  // invokes[i] = the positional inputs of invoke i; invokes.size() equals
  // graph.invokes.
  std::vector<std::vector<graph::TensorData>> invokes;
  std::string callback_url;  // webhook target; empty = none
  std::string request_id;    // the client's own id, for its logs
  bool no_cache = false;     // run even if an identical request has a result
  uint32_t stream_timeout_ms = 60000;  // wait for a stream callback's reply
  uint32_t wall_time_ms = 0;           // run-time limit; 0 = the server's default
  // Set: the graph runs as a generation (runtime/generate.h); part of the
  // request's identity.
  std::optional<graph::GenerateOptions> generation;
};

// Bounds on what decode_request() accepts. The defaults suit one server
// process; each bound exists because a small hostile body could otherwise
// make the server spend far more memory or time than the body's size.
struct RequestLimits {
  // Compressed body size, checked before anything is decompressed: the
  // memory the HTTP layer holds per request. 64 MiB.
  uint64_t max_body_bytes = 64ull << 20;
  // Decompressed size: zstd frames can expand ~1000x, so a 64 MiB body could
  // otherwise claim tens of GiB. Decompression stops here. 256 MiB.
  uint64_t max_decompressed_bytes = 256ull << 20;
  // Words the Cap'n Proto reader may traverse: an honest message is read
  // once, so its size in words suffices; the bound stops amplification
  // (many pointers to one big object, each counted every time it is read).
  // Exceeding it is treated as a malformed request.
  uint64_t traversal_limit_words = (256ull << 20) / 8;
  // Pointer nesting depth: the request nests at most ~7 deep (request ->
  // graph -> nodes -> node -> args -> arg -> ints); deep recursion would
  // exhaust the stack.
  int nesting_limit = 16;
  // Invokes per request, as graph::Limits::max_invokes: each is a batch
  // group the runtime tracks separately.
  uint32_t max_invokes = 4096;
  // Total bytes of all input tensors: what the worker holds (and copies to
  // the device) for one job. Equal to the decompressed bound by default, so
  // only a tighter setting bites.
  uint64_t max_input_bytes = 256ull << 20;
  // The graph inside, checked on the reader before it is built (node and
  // argument counts, list and text lengths, inline constant bytes): a 7 KB
  // body of empty nodes could otherwise make millions of them.
  graph::GraphLimits graph;
  // Text options: a callback URL is parsed and may be logged and retried;
  // a model key and a request id are index keys.
  uint32_t max_callback_url_bytes = 2048;
  uint32_t max_key_bytes = 256;
};

// Cap'n Proto flat array (messageToFlatArray), then zstd.
std::string encode_request(const JobRequest& request);

// Errors:
//   RESOURCE_EXHAUSTED  body, decompressed size, invoke count or input bytes
//                       over a RequestLimits bound (the message names it);
//   INVALID_ARGUMENT    "bad zstd ..." for a bad or truncated frame,
//                       "malformed request: ..." for bad Cap'n Proto (kj's
//                       reason included), an empty model key, no invokes, an
//                       invoke count differing from graph.invokes, an input
//                       whose bytes do not match dtype and shape;
//   FAILED_PRECONDITION a protocol version other than kProtocolVersion.
// The graph is decoded (graph::from_capnp) but not validated against a model.
Result<JobRequest> decode_request(std::string_view body, const RequestLimits& limits = {});

// Hex SHA-256 naming what the request computes: graph_checksum(graph), the
// model key and every input tensor (dtype, shape, bytes), each field length-
// prefixed so that no two different requests frame to the same bytes.
// Options (callback, request id, no_cache, time limits) are not part of it:
// they do not change the result. Used for deduplication and result caching.
std::string request_identity(const JobRequest& request);

}  // namespace loom::transport
