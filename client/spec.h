// SPECs name hook points on the command line (`loom trace --save SPEC`):
//   PATH.output      the output of module PATH
//   PATH.output.K    element K of a tuple output
//   PATH.input.K     positional input K (PATH.input is PATH.input.0)
// each optionally ending in @N for the N-th call (0-based; default 0).
// PATH is the dotted module path; the model itself is "output" / "input.K".
// Thread safety: pure functions.
#pragma once

#include <string>

#include "graph/ir.h"
#include "graph/status.h"

namespace loom::client {

Result<graph::Point> parse_spec(const std::string& spec);

}  // namespace loom::client
