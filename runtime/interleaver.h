// Runs a graph's nodes alongside a model's forward pass (a HookSink).
//
// When a hook point fires, its read nodes take the value (narrowed to their
// invoke's rows), every node that thereby becomes ready runs in graph order,
// and then the point's set nodes replace the value before the model goes on.
// A set whose value needs a module that has not run yet fails with an error
// naming both modules. Modules the graph never mentions cost one branch.
//
// Steps (generation, runtime/generate.h): the model runs once per step and
// a module's call index is the step. Nodes that depend on a point covering
// several calls (Point::repeats) are "repeating": begin_step() clears them,
// they run again from that step's values, a save among them gives NAME@K
// for step K, and a set at such a point applies at every call it covers.
// Outside a generation a repeating read that fires again clears what
// depends on it first.
//
// A set keeps the hooked value's floating dtype: a float32 steering vector
// added to a bfloat16 hidden state is cast back to bfloat16, as an
// in-place `h[:] = h + v` in PyTorch would.
//
// Failure inside a hook: the Interleaver records the Status and throws to
// unwind the model; the caller asks status() after forward() returns or
// throws. Thread safety: one forward pass, one thread.
#pragma once

#include <chrono>
#include <exception>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "runtime/execute.h"
#include "runtime/ops.h"

namespace loom::runtime {

class Interleaver : public HookSink {
 public:
  // `batch_rows[i]` is invoke i's row count (all rows of the batch in order).
  // The graph must have passed validate_for_model().
  static Result<std::unique_ptr<Interleaver>> create(const Model& model, const graph::Graph& graph,
                                                     std::vector<int64_t> batch_rows, const ExecOptions& options);

  // Runs nodes that need no hook (constants and what depends only on them).
  // Call once before the forward pass.
  Status start();

  // Before step `step` (> 0) of a generation: clears the repeating nodes.
  void begin_step(uint32_t step);
  // Sessions: before trace `trace`'s forward pass (> 0; trace 0 is first).
  // Module calls count from 0 again; hooks match that trace's points.
  void begin_trace(uint32_t trace);

  void on_input(int module_id, int arg, c10::IValue& value) override;
  void on_output(int module_id, c10::IValue& value) override;
  bool wants_grad() const override { return backward_ >= 0 && !options_.scan; }
  bool skip(int module_id, c10::IValue& output) override;

  // After the forward pass: OK, or why the run failed. `forward_error` is
  // the exception the forward pass ended with (nullptr if none).
  Status finish(std::exception_ptr forward_error);
  // A generation that ended (stop tokens, max_new_tokens) after `steps`
  // steps: points at later steps were never due, so what needs them is
  // left out of the result instead of failing the run.
  void set_steps_run(uint32_t steps) { steps_run_ = steps; }
  bool stopped() const { return stopped_; }
  RunOutput take_output();
  // After the run: node `node`'s last value (None if it has none); totals.
  const c10::IValue& value(uint32_t node) const { return values_[node]; }
  uint64_t intermediate_bytes() const { return intermediate_bytes_; }
  uint64_t autograd_bytes() const { return autograd_bytes_; }

 private:
  // The read and set nodes of one hook point.
  struct Site {
    graph::Io io;
    int32_t index;
    uint32_t call;
    uint32_t call_end;
    int32_t invoke;
    uint32_t trace;
    uint32_t stage;
    std::vector<uint32_t> reads;
    std::vector<uint32_t> sets;
    std::vector<uint32_t> grads;      // kGrad nodes
    std::vector<uint32_t> grad_sets;  // kSetGrad nodes
    std::vector<uint32_t> skips;      // kSkip nodes (output, whole value)
    uint32_t first_node() const;      // for error messages
    bool covers(uint32_t c) const { return call_end == 0 ? c == call : c >= call && c < call_end; }
  };
  Interleaver(const Model& model, const graph::Graph& graph, const ExecOptions& options);

  void fire(c10::IValue& value, uint32_t call);  // runs matched_ against the hook's value
  void reset(const std::vector<uint32_t>& nodes);  // clears nodes, then recounts what they wait for
  void collect_repeating_from(uint32_t node, std::vector<uint32_t>* out);
  c10::IValue site_value(const Site& site, const c10::IValue& value);
  void complete(uint32_t node);
  void run_ready();
  void run_node(uint32_t node);
  void apply_set(const Site& site, uint32_t node, c10::IValue& target);
  void save_tensor(uint32_t node, std::string name, const at::Tensor& t);
  void check_scan_skip(c10::IValue& value);
  // Gradients (backward pass): makes the site's value part of the autograd
  // graph (a leaf when nothing before it is) and, with `hook`, registers the
  // tensor hook that hands its gradient to the site's grad nodes.
  void track_grad(Site& site, c10::IValue& value, bool hook);
  at::Tensor on_grad(Site& site, const at::Tensor& grad);
  void run_backward(uint32_t node);
  void count_autograd_bytes(const c10::IValue& value);
  void check_deadline();
  [[noreturn]] void fail(Status status);
  // The first read node `node` transitively waits for, or -1.
  int64_t blocking_read(uint32_t node) const;
  std::string module_name(int id) const;

  const Model& model_;
  const graph::Graph& graph_;
  const ExecOptions& options_;
  std::chrono::steady_clock::time_point deadline_;
  std::vector<int64_t> row_start_, row_count_;  // per invoke, within its trace's pass
  std::vector<int64_t> trace_rows_;             // per trace: its pass's rows
  int64_t total_rows_ = 0;                      // the current pass's
  uint32_t trace_ = 0;                          // sessions: the trace running

  std::vector<ResolvedOp> ops_;            // per node (op nodes only)
  std::vector<c10::IValue> values_;        // per node
  std::vector<uint8_t> done_;              // per node
  std::vector<uint32_t> waiting_;          // per node: dependencies not yet done
  std::vector<std::vector<uint32_t>> dependents_;
  std::vector<uint32_t> ready_;            // min-heap of runnable node indexes
  std::vector<std::vector<uint32_t>> deps_;  // per node, unique
  std::vector<uint8_t> repeats_;           // per node: see the header comment
  std::vector<uint8_t> ever_done_;         // per node: done at some step
  std::vector<uint64_t> node_bytes_;       // per node: its op result's bytes
  std::vector<uint32_t> repeating_;        // the repeating nodes, in order
  uint32_t label_call_ = 0;                // the call repeating saves are named by

  std::vector<std::vector<Site>> sites_;   // per module id
  std::vector<uint32_t> calls_;            // per module id: outputs seen so far
  std::vector<uint8_t> interested_;        // per module id
  std::vector<Site*> matched_;             // sites of the hook firing now

  RunOutput output_;
  std::set<std::string> saved_names_;      // element saves (cache) must not take a name twice
  uint64_t intermediate_bytes_ = 0;
  int64_t backward_ = -1;                  // the backward node, if any
  std::vector<at::Tensor> grad_leaves_;    // hook values made autograd leaves
  bool backward_done_ = false;
  uint64_t autograd_bytes_ = 0;            // module outputs kept for the backward pass (estimate)
  bool grad_started_ = false;              // a gradient point has been passed
  std::vector<std::pair<Site*, at::Tensor>> scan_grads_;  // scan: gradient sites in forward order, their values
  int scan_skip_module_ = -1;              // scan: the module being skipped (it runs on meta to check the shape)
  uint32_t scan_skip_node_ = 0;
  bool stop_requested_ = false;
  bool stopped_ = false;
  uint32_t steps_run_ = graph::kEveryCall;
  Status status_;
};

}  // namespace loom::runtime
