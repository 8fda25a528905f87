// SPECs name hook points on the command line (`loom trace --save SPEC`):
//   PATH.output      the output of module PATH
//   PATH.output.K    element K of a tuple output
//   PATH.input.K     positional input K (PATH.input is PATH.input.0)
// each optionally ending in @N for the N-th call (0-based; default 0). In a
// generation the call is the step: @K is step K, @A:B steps A..B-1, @A:
// every step from A on, @all every step.
// PATH is the dotted module path; the model itself is "output" / "input.K".
// Thread safety: pure functions.
#pragma once

#include <string>

#include "graph/builder.h"
#include "graph/ir.h"
#include "graph/status.h"

namespace loom::client {

Result<graph::Point> parse_spec(const std::string& spec);
// The name a save of `spec` gets: the SPEC itself, except that a SPEC
// covering several steps drops its "@..." (the runtime names each step's
// tensor NAME@K).
std::string save_name(const std::string& spec, const graph::Point& point);
// The hook point `point` of a Builder (any step addressing).
HookPoint hook_point(Builder& b, const graph::Point& point);

}  // namespace loom::client
