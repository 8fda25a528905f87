// Running a graph against a model: the entry point of local execution and
// of the server's executors.
//
// execute() validates the graph against the model, batches the invokes'
// inputs into one forward pass, runs the Interleaver beside it, and returns
// the saved values. Failures are Statuses naming the node; nothing throws.
// Thread safety: one execute() per model at a time (see Model).
#pragma once

#include <ATen/core/ivalue.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "graph/ir.h"
#include "graph/status.h"
#include "graph/validate.h"
#include "runtime/limits.h"
#include "runtime/model.h"
#include "runtime/safetensors.h"
#include "graph/scan_report.h"

namespace loom::runtime {

// A client callback for stream nodes: gets the value as named tensors
// (runtime/stream_value.h), returns the reply in the same form.
using StreamHandler =
    std::function<Result<std::vector<NamedTensor>>(const std::string& callback, const std::vector<NamedTensor>& value)>;
using LogHandler = std::function<void(const std::string& text, const c10::IValue& value)>;
// Resolves a constant uploaded earlier by its content SHA-256.
using ContentResolver = std::function<Result<at::Tensor>(const std::string& sha256)>;

struct ExecOptions {
  Limits limits;
  StreamHandler on_stream;          // required when the graph has stream nodes
  LogHandler on_log;                // log nodes are dropped when unset
  ContentResolver resolve_content;  // required when the graph has constant refs
  const std::atomic<bool>* cancel = nullptr;  // checked at every hook point
  // Shapes only (scan): meta tensors, no data. Streams answer with the
  // value sent (no client is asked), logs are dropped, and a backward pass
  // hands each gradient node a meta tensor of its point's shape.
  bool scan = false;
};

struct RunOutput {
  std::vector<NamedTensor> saved;  // in save-node order, on the CPU
  c10::IValue output;              // the model's output (None when stopped early)
  bool stopped_early = false;
  uint64_t saved_bytes = 0;
};

// Every input of invoke i is inputs[i][position]; with several invokes,
// position p of every invoke is concatenated along dim 0. The model's
// persistent edits (Model::edit) run first.
Result<RunOutput> execute(Model& model, const graph::Graph& graph,
                          const std::vector<std::vector<c10::IValue>>& invoke_inputs,
                          const ExecOptions& options = {});

// A graph run on shapes only (runtime::scan).
struct ScanResult {
  std::vector<std::pair<uint32_t, at::Tensor>> values;  // every node with a tensor value: a meta tensor
  std::vector<NamedTensor> saves;                       // what a run would save (meta tensors)
  uint64_t saved_bytes = 0;         // the saves together
  uint64_t intermediate_bytes = 0;  // op results computed during the run
  uint64_t autograd_bytes = 0;      // module outputs a backward pass keeps alive (estimate)
  int64_t tokens = 0;               // elements of the batched input 0 (rows x sequence)
  // Saved and intermediate values together: the job's memory beyond the weights.
  uint64_t peak_bytes() const { return saved_bytes + intermediate_bytes + autograd_bytes; }
};

// Runs `graph` against `model` on shapes only (Model::forward_meta): every
// node's shape and dtype, and the errors that need shapes (a set or skip of
// the wrong shape, an op on incompatible shapes), without reading a weight.
// Inputs are real tensors (token ids are range-checked), moved to meta.
Result<ScanResult> scan(Model& model, const graph::Graph& graph,
                        const std::vector<std::vector<c10::IValue>>& invoke_inputs, ExecOptions options = {});

// scan() with the answer in its wire form (runtime/scan_report.h): kinds
// and dtypes named, and the memory and device-time estimates.
Result<graph::ScanReport> scan_report(Model& model, const graph::Graph& graph,
                               const std::vector<std::vector<c10::IValue>>& invoke_inputs, ExecOptions options = {});

// Validates `graph` against `model` (module paths, ops and argument types).
Status validate_for_model(const graph::Graph& graph, const Model& model, const graph::GraphLimits& limits = {});
// The same checks against a model known only by its module paths (a
// scale-out server admits jobs for models its workers registered).
Status validate_for_modules(const graph::Graph& graph, const std::vector<std::string>& module_paths,
                            const graph::GraphLimits& limits);

}  // namespace loom::runtime
