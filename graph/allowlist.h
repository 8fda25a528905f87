// The ATen operators a graph may use, by schema name ("aten::add.Tensor").
// Only functional (out-of-place) operators: a graph can't write into model
// memory behind the interleaver's back, allocate unbounded outputs from a
// scalar (aten::empty, aten::ones with a huge size), or touch files.
// Thread safety: immutable after static initialisation.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace loom::graph {

bool is_allowlisted_op(std::string_view schema_name);
const std::vector<std::string>& allowlisted_ops();

}  // namespace loom::graph
