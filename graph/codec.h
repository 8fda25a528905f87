// Cap'n Proto encoding of a Graph, its canonical form and its checksum.
//
// decode_graph() treats its input as hostile: the Cap'n Proto traversal and
// nesting limits are set explicitly (DecodeLimits), and a malformed or
// truncated message gives INVALID_ARGUMENT with kj's reason, never an
// exception. Thread safety: pure functions.
#pragma once

#include <capnp/message.h>

#include <cstdint>
#include <string>

#include "graph/graph.capnp.h"
#include "graph/ir.h"
#include "graph/status.h"
#include "graph/validate.h"

namespace loom::graph {

struct DecodeLimits {
  // Words the reader may traverse in total: bounds the work an amplification
  // attack (lists of far pointers to one big struct) can cause. 64 MiB.
  uint64_t traversal_limit_words = 8ull << 20;
  // Pointer nesting depth; our schema nests 5 deep at most.
  int nesting_limit = 16;
};

// Fills a Cap'n Proto builder (used by transport to embed the graph in a request).
void to_capnp(const Graph& graph, schema::Graph::Builder out);
// Every count and size is checked against `limits` on the reader, before
// anything of that size is built (RESOURCE_EXHAUSTED naming the limit).
Result<Graph> from_capnp(schema::Graph::Reader in, const GraphLimits& limits = {});

// Unpacked flat-array encoding (segments framed as capnp::messageToFlatArray).
std::string encode_graph(const Graph& graph);
Result<Graph> decode_graph(const std::string& bytes, const DecodeLimits& limits = {});

// The canonical encoding (capnp::canonicalize): equal graphs give equal bytes.
std::string canonical_graph_bytes(const Graph& graph);
// SHA-256 (hex) of canonical_graph_bytes(): the graph's identity.
std::string graph_checksum(const Graph& graph);

}  // namespace loom::graph
