// Fuzz target: an unpacked Cap'n Proto graph (decode_graph), validated and
// canonicalized when it decodes.
#include <cstddef>
#include <cstdint>
#include <string>

#include "graph/codec.h"
#include "graph/validate.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto g = loom::graph::decode_graph(std::string(reinterpret_cast<const char*>(data), size));
  if (g.ok() && loom::graph::validate(*g).ok()) (void)loom::graph::canonical_graph_bytes(*g);
  return 0;
}
