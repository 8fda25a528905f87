// Runs a graph's nodes alongside a model's forward pass (a HookSink).
//
// When a hook point fires, its read nodes take the value (narrowed to their
// invoke's rows), every node that thereby becomes ready runs in graph order,
// and then the point's set nodes replace the value before the model goes on.
// A set whose value needs a module that has not run yet fails with an error
// naming both modules. Modules the graph never mentions cost one branch.
//
// Failure inside a hook: the Interleaver records the Status and throws to
// unwind the model; the caller asks status() after forward() returns or
// throws. Thread safety: one forward pass, one thread.
#pragma once

#include <chrono>
#include <exception>
#include <memory>
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

  void on_input(int module_id, int arg, c10::IValue& value) override;
  void on_output(int module_id, c10::IValue& value) override;

  // After the forward pass: OK, or why the run failed. `forward_error` is
  // the exception the forward pass ended with (nullptr if none).
  Status finish(std::exception_ptr forward_error);
  bool stopped() const { return stopped_; }
  RunOutput take_output();

 private:
  // The read and set nodes of one hook point.
  struct Site {
    graph::Io io;
    int32_t index;
    uint32_t call;
    int32_t invoke;
    std::vector<uint32_t> reads;
    std::vector<uint32_t> sets;
  };
  Interleaver(const Model& model, const graph::Graph& graph, const ExecOptions& options);

  void fire(c10::IValue& value);  // runs matched_ against the hook's value
  c10::IValue site_value(const Site& site, const c10::IValue& value);
  void complete(uint32_t node);
  void run_ready();
  void run_node(uint32_t node);
  void apply_set(const Site& site, uint32_t node, c10::IValue& target);
  void check_deadline();
  [[noreturn]] void fail(Status status);
  // The first read node `node` transitively waits for, or -1.
  int64_t blocking_read(uint32_t node) const;
  std::string module_name(int id) const;

  const Model& model_;
  const graph::Graph& graph_;
  const ExecOptions& options_;
  std::chrono::steady_clock::time_point deadline_;
  std::vector<int64_t> row_start_, row_count_;
  int64_t total_rows_ = 0;

  std::vector<ResolvedOp> ops_;            // per node (op nodes only)
  std::vector<c10::IValue> values_;        // per node
  std::vector<uint8_t> done_;              // per node
  std::vector<uint32_t> waiting_;          // per node: dependencies not yet done
  std::vector<std::vector<uint32_t>> dependents_;
  std::vector<uint32_t> ready_;            // min-heap of runnable node indexes

  std::vector<std::vector<Site>> sites_;   // per module id
  std::vector<uint32_t> calls_;            // per module id: outputs seen so far
  std::vector<uint8_t> interested_;        // per module id
  std::vector<Site*> matched_;             // sites of the hook firing now

  RunOutput output_;
  uint64_t intermediate_bytes_ = 0;
  bool stop_requested_ = false;
  bool stopped_ = false;
  Status status_;
};

}  // namespace loom::runtime
