// Persistent edits: interventions recorded once and run before every later
// trace of a model (nnsight's model.edit), locally (client/edits.h) and as
// a server's named variant (`POST /v1/models/{key}/variants`, `key@name`).
//
// An edit is a graph of one invoke whose nodes only read, compute, set and
// skip, on the whole batch (no saves, streams, logs, stops or gradients:
// it changes the model, it returns nothing). apply_edit() puts its nodes in
// front of a trace's, once per trace of a session, so its sets apply first
// at a point both set, and the trace's points are a stage above the edit's
// (Point::stage): a trace's read where an edit sets sees the edited value,
// and a later edit sees an earlier one's, as if the model had changed.
// Thread safety: pure functions.
#pragma once

#include "graph/ir.h"
#include "graph/status.h"

namespace loom::graph {

// OK when `edit` can be an edit (the rules above), else INVALID_ARGUMENT
// naming the node.
Status check_edit(const Graph& edit);

// `edit`'s nodes (checked), then `trace`'s, renumbered.
Result<Graph> apply_edit(const Graph& edit, const Graph& trace);

}  // namespace loom::graph
