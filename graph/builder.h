// The tracing API: a program describes what it wants done to a model, and the
// Builder records it as a graph::Graph.
//
//   loom::Builder b;
//   auto h = b.module("transformer.h.3").output(0);          // read
//   b.module("transformer.h.5").output(0).set(h * 2);        // write
//   b.output().save("logits");                               // result
//
// Values are handles (builder pointer + node index): cheap to copy, valid as
// long as their Builder lives. A Builder is neither copyable nor movable for
// that reason. Thread safety: a Builder and its values belong to one thread.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "graph/ir.h"

namespace loom {

class Builder;
class Value;
using graph::DType;

// A Python-style slice for Value::index: Slice{} is ":", Slice{1, 5} is "1:5".
struct Slice {
  std::optional<int64_t> start;
  std::optional<int64_t> stop;
  int64_t step = 1;
};
using Index = std::variant<int64_t, Slice>;

// One argument of Builder::op(): converts from the C++ values a caller has.
struct OpArg {
  graph::Arg arg;
  // The trace a Value argument belongs to; Builder::op() rejects another trace's.
  const Builder* origin = nullptr;
  OpArg(const Value& v);  // NOLINT: implicit on purpose, so op() calls read naturally
  OpArg(int v) : arg(graph::Arg::of_int(v)) {}
  OpArg(int64_t v) : arg(graph::Arg::of_int(v)) {}
  OpArg(double v) : arg(graph::Arg::of_float(v)) {}
  OpArg(bool v) : arg(graph::Arg::of_bool(v)) {}
  OpArg(std::vector<int64_t> v) : arg(graph::Arg::of_ints(std::move(v))) {}
  OpArg(std::initializer_list<int64_t> v) : arg(graph::Arg::of_ints(std::vector<int64_t>(v))) {}
  OpArg(DType d) : arg(graph::Arg::of_dtype(d)) {}
  OpArg(const char* s) : arg(graph::Arg::of_str(s)) {}
  OpArg(std::string s) : arg(graph::Arg::of_str(std::move(s))) {}
  OpArg(std::nullopt_t) : arg(graph::Arg::none()) {}
  OpArg(const std::vector<Value>& values);
};

// A value in the graph: a read hook point, an op result, a constant, a
// stream reply. Operators and methods add op nodes.
class Value {
 public:
  Value() = default;
  Value(Builder* builder, uint32_t node) : builder_(builder), node_(node) {}

  Builder* builder() const { return builder_; }
  uint32_t node() const { return node_; }
  bool valid() const { return builder_ != nullptr; }

  // Marks this value as a result called `name`; returns it for chaining.
  Value save(const std::string& name) const;

  // Indexing, as in Python: v.index({Slice{}, -1}) is v[:, -1].
  Value index(std::initializer_list<Index> indices) const;
  Value operator[](int64_t i) const { return select(0, i); }
  Value select(int64_t dim, int64_t index) const;
  Value slice(int64_t dim, std::optional<int64_t> start, std::optional<int64_t> stop, int64_t step = 1) const;

  Value matmul(const Value& other) const;
  Value softmax(int64_t dim) const;
  Value log_softmax(int64_t dim) const;
  Value mean(std::vector<int64_t> dims, bool keepdim = false) const;
  Value sum(std::vector<int64_t> dims, bool keepdim = false) const;
  Value norm(std::vector<int64_t> dims, bool keepdim = false) const;  // L2
  Value argmax(int64_t dim, bool keepdim = false) const;
  Value reshape(std::vector<int64_t> shape) const;
  Value view(std::vector<int64_t> shape) const;
  Value transpose(int64_t dim0, int64_t dim1) const;
  Value permute(std::vector<int64_t> dims) const;
  Value unsqueeze(int64_t dim) const;
  Value squeeze(int64_t dim) const;
  Value flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Value to(DType dtype) const;
  Value clone() const;
  Value zeros_like() const;
  Value exp() const;
  Value log() const;
  Value abs() const;
  Value sqrt() const;
  Value relu() const;
  Value tanh() const;
  Value sigmoid() const;
  Value pow(double exponent) const;
  Value operator-() const;

 private:
  Value unary(const char* op) const;
  Builder* builder_ = nullptr;
  uint32_t node_ = 0;
};

Value operator+(const Value& a, const Value& b);
Value operator-(const Value& a, const Value& b);
Value operator*(const Value& a, const Value& b);
Value operator/(const Value& a, const Value& b);
Value operator+(const Value& a, double b);
Value operator-(const Value& a, double b);
Value operator*(const Value& a, double b);
Value operator/(const Value& a, double b);
Value operator+(double a, const Value& b);
Value operator-(double a, const Value& b);
Value operator*(double a, const Value& b);
Value operator/(double a, const Value& b);
Value matmul(const Value& a, const Value& b);
Value cat(const std::vector<Value>& values, int64_t dim = 0);
Value stack(const std::vector<Value>& values, int64_t dim = 0);
Value where(const Value& condition, const Value& a, const Value& b);
// The mean next-token cross-entropy of `logits` [B, T, V] against the ids
// [B, T] that produced them, as transformers' `labels=input_ids`: position t
// predicts token t + 1. A scalar, for Builder::backward.
Value next_token_loss(const Value& logits, const Value& input_ids);

// A hook point of a module. It is the Value read there (one read node per
// distinct point), and it can be set.
class HookPoint : public Value {
 public:
  HookPoint(Builder* builder, graph::Point point);

  Value value() const { return *this; }
  // Replaces the point's value with `v` before the model continues.
  void set(const Value& v) const;
  // The gradient of the trace's backward() loss with respect to this value,
  // as it flows back through the point (before any set_grad here). It can
  // be saved or used like any value during the backward pass. Gradients are
  // taken with respect to hook values only: weights never require grad.
  Value grad() const;
  // Replaces the gradient flowing back through this point with `v` (its
  // shape): what reaches earlier points is computed from `v`.
  void set_grad(const Value& v) const;
  const graph::Point& point() const { return point_; }

 private:
  graph::Point point_;
};

// A module of the model, by its dotted path, at a given call and invoke.
class ModuleRef {
 public:
  ModuleRef(Builder* builder, std::string path, int32_t invoke, uint32_t trace = 0)
      : builder_(builder), path_(std::move(path)), invoke_(invoke), trace_(trace) {}

  // The whole output, or element `element` of a tuple output.
  HookPoint output(int32_t element = -1) const;
  // Positional argument `arg` of forward.
  HookPoint input(int32_t arg = 0) const;
  // The same module on its n-th call (0-based; modules called repeatedly).
  // In a generation, call n is step n (step 0 is the prompt pass).
  ModuleRef call(uint32_t n) const;
  ModuleRef step(uint32_t n) const { return call(n); }
  // Steps [first, end): what is computed from such a point runs again at
  // each step, a set applies at each, and a save gives NAME@K per step K.
  ModuleRef steps(uint32_t first, uint32_t end) const;
  // Every step from `first` on (default: all of them).
  ModuleRef all_steps(uint32_t first = 0) const;
  // The module does not run (on this call); its output is `v`, which must
  // have the shape and dtype the output would have had (scan checks it).
  void skip(const Value& v) const;

 private:
  Builder* builder_;
  std::string path_;
  int32_t invoke_;
  uint32_t call_ = 0;
  uint32_t call_end_ = 0;
  uint32_t trace_ = 0;
};

class Builder {
 public:
  explicit Builder(uint32_t invokes = 1);
  Builder(const Builder&) = delete;
  Builder& operator=(const Builder&) = delete;
  virtual ~Builder() = default;

  // `invoke` -1 is the whole batch (of the current trace); >= 0 is that
  // invoke's rows, in the trace the invoke belongs to.
  ModuleRef module(const std::string& path, int32_t invoke = -1);
  // Sessions: later invokes and module() calls belong to a new trace, a
  // forward pass of its own that runs after the earlier ones in the same
  // job; its nodes may use values of the earlier traces (a prompt of
  // another length, patched with an activation of the first). Returns the
  // new trace's index. Forward traces only: a session does not generate.
  uint32_t next_trace();
  uint32_t current_trace() const { return graph_.traces() - 1; }
  // The model's own output / input (the root module, path "").
  HookPoint output(int32_t element = -1) { return module("", -1).output(element); }
  HookPoint input(int32_t arg = 0) { return module("", -1).input(arg); }

  Value constant(graph::TensorData tensor);
  Value scalar(double v);
  // A tensor uploaded earlier, by its content's SHA-256 (hex).
  Value constant_ref(const std::string& sha256);
  // Any allowlisted ATen op by schema name, positional arguments.
  Value op(const std::string& schema_name, std::vector<OpArg> args);
  // Hands `v` to the client callback `callback` mid-run and continues with
  // its reply, which must have v's shape and dtype unless `any_shape`.
  Value stream(const std::string& callback, const Value& v, bool any_shape = false);
  // Sends `text` and `v` to the client as a LOG event.
  void log(const std::string& text, const Value& v);
  // Ends the forward pass as soon as `after` is available.
  void stop(const Value& after);
  // Runs a backward pass from `loss` (a scalar) as soon as it is available;
  // HookPoint::grad() values come from it. One per trace.
  void backward(const Value& loss);
  // Saves the output (and with `inputs` the input 0) of each module in
  // `modules` as "PATH.output" / "PATH.input" ("output"/"input" for the
  // root); a tuple output saves its tensor elements as "PATH.output.K". With
  // `every_step` (generations) a value per step: "PATH.output@K". Modules
  // that do not run (containers such as a ModuleList) have no entry.
  void cache(const std::vector<std::string>& modules, bool inputs = false, bool every_step = false);

  const graph::Graph& graph() const { return graph_; }
  uint32_t invokes() const { return graph_.invokes; }

  // Used by the value types; not needed by callers.
  uint32_t add_node(graph::Node node);
  uint32_t read_node(const graph::Point& point);
  uint32_t grad_node(const graph::Point& point);

 protected:
  uint32_t add_invoke();

 private:
  graph::Graph graph_;
  std::map<std::string, uint32_t> reads_;  // point key -> read node, one node per point
  std::map<std::string, uint32_t> grads_;  // point key -> grad node, likewise
};

}  // namespace loom
