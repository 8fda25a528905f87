#include "graph/builder.h"

#include <cstring>
#include <stdexcept>

namespace loom {
namespace {

Builder* builder_of(const Value& v) {
  if (!v.valid()) throw std::logic_error("loom: use of an empty Value (default-constructed)");
  return v.builder();
}

Builder* same_builder(const Value& a, const Value& b) {
  Builder* ba = builder_of(a);
  if (builder_of(b) != ba) throw std::logic_error("loom: values from two different traces combined");
  return ba;
}

std::string point_key(const graph::Point& p) {
  return p.module + '\n' + std::to_string(static_cast<int>(p.io)) + '\n' + std::to_string(p.index) + '\n' +
         std::to_string(p.call) + '\n' + std::to_string(p.invoke) + '\n' + std::to_string(p.call_end) + '\n' +
         std::to_string(p.trace) + '\n' + std::to_string(p.stage);
}

// A Value handed to one of `b`'s own methods must belong to `b`.
void check_own(const Builder* b, const Value& v) {
  if (builder_of(v) != b) throw std::logic_error("loom: a value from another trace passed to its builder");
}

}  // namespace

OpArg::OpArg(const Value& v) : arg(graph::Arg::of_node(v.node())), origin(builder_of(v)) {}

OpArg::OpArg(const std::vector<Value>& values) {
  std::vector<uint32_t> nodes;
  for (const Value& v : values) {
    origin = same_builder(values.front(), v);  // all from one trace, none empty
    nodes.push_back(v.node());
  }
  arg = graph::Arg::of_nodes(std::move(nodes));
}

// ---- Value -----------------------------------------------------------------

Value Value::save(const std::string& name) const {
  graph::Node n;
  n.kind = graph::NodeKind::kSave;
  n.input = node_;
  n.name = name;
  Builder* b = builder_of(*this);  // before add_node: throws for an empty Value
  return Value(b, b->add_node(std::move(n)));
}

Value Value::index(std::initializer_list<Index> indices) const {
  Value v = *this;
  int64_t dim = 0;
  for (const Index& idx : indices) {
    if (const int64_t* i = std::get_if<int64_t>(&idx)) {
      v = v.select(dim, *i);  // select drops the dimension: dim stays
    } else {
      const Slice& s = std::get<Slice>(idx);
      if (s.start || s.stop || s.step != 1) v = v.slice(dim, s.start, s.stop, s.step);
      ++dim;
    }
  }
  return v;
}

Value Value::select(int64_t dim, int64_t index) const {
  return builder_of(*this)->op("aten::select.int", {*this, dim, index});
}

Value Value::slice(int64_t dim, std::optional<int64_t> start, std::optional<int64_t> stop, int64_t step) const {
  OpArg a_start = start ? OpArg(*start) : OpArg(std::nullopt);
  OpArg a_stop = stop ? OpArg(*stop) : OpArg(std::nullopt);
  return builder_of(*this)->op("aten::slice.Tensor", {*this, dim, a_start, a_stop, step});
}

Value Value::matmul(const Value& other) const { return loom::matmul(*this, other); }
Value Value::softmax(int64_t dim) const { return builder_of(*this)->op("aten::softmax.int", {*this, dim}); }
Value Value::log_softmax(int64_t dim) const {
  return builder_of(*this)->op("aten::log_softmax.int", {*this, dim});
}
Value Value::mean(std::vector<int64_t> dims, bool keepdim) const {
  return builder_of(*this)->op("aten::mean.dim", {*this, std::move(dims), keepdim});
}
Value Value::sum(std::vector<int64_t> dims, bool keepdim) const {
  return builder_of(*this)->op("aten::sum.dim_IntList", {*this, std::move(dims), keepdim});
}
Value Value::norm(std::vector<int64_t> dims, bool keepdim) const {
  return builder_of(*this)->op("aten::norm.ScalarOpt_dim", {*this, 2.0, std::move(dims), keepdim});
}
Value Value::argmax(int64_t dim, bool keepdim) const {
  return builder_of(*this)->op("aten::argmax", {*this, dim, keepdim});
}
Value Value::reshape(std::vector<int64_t> shape) const {
  return builder_of(*this)->op("aten::reshape", {*this, std::move(shape)});
}
Value Value::view(std::vector<int64_t> shape) const {
  return builder_of(*this)->op("aten::view", {*this, std::move(shape)});
}
Value Value::transpose(int64_t dim0, int64_t dim1) const {
  return builder_of(*this)->op("aten::transpose.int", {*this, dim0, dim1});
}
Value Value::permute(std::vector<int64_t> dims) const {
  return builder_of(*this)->op("aten::permute", {*this, std::move(dims)});
}
Value Value::unsqueeze(int64_t dim) const { return builder_of(*this)->op("aten::unsqueeze", {*this, dim}); }
Value Value::squeeze(int64_t dim) const { return builder_of(*this)->op("aten::squeeze.dim", {*this, dim}); }
Value Value::flatten(int64_t start_dim, int64_t end_dim) const {
  return builder_of(*this)->op("aten::flatten.using_ints", {*this, start_dim, end_dim});
}
Value Value::to(DType dtype) const {
  return builder_of(*this)->op("aten::to.dtype", {*this, dtype, false, false, std::nullopt});
}
Value Value::clone() const { return builder_of(*this)->op("aten::clone", {*this, std::nullopt}); }
Value Value::zeros_like() const { return unary("aten::zeros_like"); }
Value Value::exp() const { return unary("aten::exp"); }
Value Value::log() const { return unary("aten::log"); }
Value Value::abs() const { return unary("aten::abs"); }
Value Value::sqrt() const { return unary("aten::sqrt"); }
Value Value::relu() const { return unary("aten::relu"); }
Value Value::tanh() const { return unary("aten::tanh"); }
Value Value::sigmoid() const { return unary("aten::sigmoid"); }
Value Value::pow(double exponent) const {
  return builder_of(*this)->op("aten::pow.Tensor_Scalar", {*this, exponent});
}
Value Value::operator-() const { return unary("aten::neg"); }
Value Value::unary(const char* op) const { return builder_of(*this)->op(op, {*this}); }

Value operator+(const Value& a, const Value& b) { return same_builder(a, b)->op("aten::add.Tensor", {a, b, 1}); }
Value operator-(const Value& a, const Value& b) { return same_builder(a, b)->op("aten::sub.Tensor", {a, b, 1}); }
Value operator*(const Value& a, const Value& b) { return same_builder(a, b)->op("aten::mul.Tensor", {a, b}); }
Value operator/(const Value& a, const Value& b) { return same_builder(a, b)->op("aten::div.Tensor", {a, b}); }
Value operator+(const Value& a, double b) { return builder_of(a)->op("aten::add.Scalar", {a, b, 1}); }
Value operator-(const Value& a, double b) { return builder_of(a)->op("aten::sub.Scalar", {a, b, 1}); }
Value operator*(const Value& a, double b) { return builder_of(a)->op("aten::mul.Scalar", {a, b}); }
Value operator/(const Value& a, double b) { return builder_of(a)->op("aten::div.Scalar", {a, b}); }
Value operator+(double a, const Value& b) { return b + a; }
Value operator-(double a, const Value& b) { return builder_of(b)->op("aten::rsub.Scalar", {b, a, 1}); }
Value operator*(double a, const Value& b) { return b * a; }
Value operator/(double a, const Value& b) { return builder_of(b)->op("aten::reciprocal", {b}) * a; }
Value matmul(const Value& a, const Value& b) { return same_builder(a, b)->op("aten::matmul", {a, b}); }
Value cat(const std::vector<Value>& values, int64_t dim) {
  if (values.empty()) throw std::logic_error("loom: cat of no values");
  return builder_of(values[0])->op("aten::cat", {values, dim});
}
Value stack(const std::vector<Value>& values, int64_t dim) {
  if (values.empty()) throw std::logic_error("loom: stack of no values");
  return builder_of(values[0])->op("aten::stack", {values, dim});
}
Value where(const Value& condition, const Value& a, const Value& b) {
  same_builder(condition, a);
  return same_builder(a, b)->op("aten::where.self", {condition, a, b});
}

// ---- HookPoint, ModuleRef ----------------------------------------------------

HookPoint::HookPoint(Builder* builder, graph::Point point)
    : Value(builder, builder->read_node(point)), point_(std::move(point)) {}

void HookPoint::set(const Value& v) const {
  if (builder_of(v) != builder()) throw std::logic_error("loom: set() with a value from another trace");
  graph::Node n;
  n.kind = graph::NodeKind::kSet;
  n.point = point_;
  n.input = v.node();
  builder()->add_node(std::move(n));
}

Value HookPoint::grad() const { return Value(builder(), builder()->grad_node(point_)); }

void HookPoint::set_grad(const Value& v) const {
  if (builder_of(v) != builder()) throw std::logic_error("loom: set_grad() with a value from another trace");
  graph::Node n;
  n.kind = graph::NodeKind::kSetGrad;
  n.point = point_;
  n.input = v.node();
  builder()->add_node(std::move(n));
}

void ModuleRef::skip(const Value& v) const {
  if (builder_of(v) != builder_) throw std::logic_error("loom: skip() with a value from another trace");
  graph::Node n;
  n.kind = graph::NodeKind::kSkip;
  n.point = graph::Point{path_, graph::Io::kOutput, -1, call_, invoke_, call_end_, trace_};
  n.input = v.node();
  builder_->add_node(std::move(n));
}

HookPoint ModuleRef::output(int32_t element) const {
  graph::Point p{path_, graph::Io::kOutput, element, call_, invoke_, call_end_, trace_};
  return HookPoint(builder_, std::move(p));
}

HookPoint ModuleRef::input(int32_t arg) const {
  graph::Point p{path_, graph::Io::kInput, arg, call_, invoke_, call_end_, trace_};
  return HookPoint(builder_, std::move(p));
}

ModuleRef ModuleRef::call(uint32_t n) const {
  ModuleRef m = *this;
  m.call_ = n;
  m.call_end_ = 0;
  return m;
}

ModuleRef ModuleRef::steps(uint32_t first, uint32_t end) const {
  ModuleRef m = *this;
  m.call_ = first;
  m.call_end_ = end;  // validate() rejects end <= first
  return m;
}

ModuleRef ModuleRef::all_steps(uint32_t first) const { return steps(first, graph::kEveryCall); }

// ---- Builder ---------------------------------------------------------------

Builder::Builder(uint32_t invokes) { graph_.invokes = invokes; }

ModuleRef Builder::module(const std::string& path, int32_t invoke) {
  uint32_t trace = current_trace();
  if (invoke >= 0 && !graph_.trace_invokes.empty()) {
    // The trace that owns the invoke.
    uint32_t first = 0;
    for (trace = 0; trace + 1 < graph_.trace_invokes.size(); ++trace) {
      if (static_cast<uint32_t>(invoke) < first + graph_.trace_invokes[trace]) break;
      first += graph_.trace_invokes[trace];
    }
  }
  return ModuleRef(this, path, invoke, trace);
}

uint32_t Builder::add_invoke() {
  if (!graph_.trace_invokes.empty()) ++graph_.trace_invokes.back();
  return graph_.invokes++;
}

uint32_t Builder::next_trace() {
  if (graph_.trace_invokes.empty()) graph_.trace_invokes.push_back(graph_.invokes);
  graph_.trace_invokes.push_back(0);
  return current_trace();
}

uint32_t Builder::add_node(graph::Node node) {
  graph_.nodes.push_back(std::move(node));
  return static_cast<uint32_t>(graph_.nodes.size() - 1);
}

uint32_t Builder::grad_node(const graph::Point& point) {
  auto [it, inserted] = grads_.emplace(point_key(point), 0);
  if (inserted) {
    graph::Node n;
    n.kind = graph::NodeKind::kGrad;
    n.point = point;
    it->second = add_node(std::move(n));
  }
  return it->second;
}

uint32_t Builder::read_node(const graph::Point& point) {
  auto [it, inserted] = reads_.emplace(point_key(point), 0);
  if (inserted) {
    graph::Node n;
    n.kind = graph::NodeKind::kRead;
    n.point = point;
    it->second = add_node(std::move(n));
  }
  return it->second;
}

Value Builder::constant(graph::TensorData tensor) {
  graph::Node n;
  n.kind = graph::NodeKind::kConstant;
  n.tensor = std::move(tensor);
  return Value(this, add_node(std::move(n)));
}

Value Builder::scalar(double v) {
  graph::TensorData t;
  t.dtype = DType::kFloat32;
  float f = static_cast<float>(v);
  t.bytes.assign(reinterpret_cast<const char*>(&f), sizeof f);
  return constant(std::move(t));
}

Value Builder::constant_ref(const std::string& sha256) {
  graph::Node n;
  n.kind = graph::NodeKind::kConstant;
  n.content_sha256 = sha256;
  return Value(this, add_node(std::move(n)));
}

Value Builder::op(const std::string& schema_name, std::vector<OpArg> args) {
  for (const OpArg& a : args) {
    if (a.origin != nullptr && a.origin != this) throw std::logic_error("loom: op() with a value from another trace");
  }
  graph::Node n;
  n.kind = graph::NodeKind::kOp;
  n.op = schema_name;
  for (OpArg& a : args) n.args.push_back(std::move(a.arg));
  return Value(this, add_node(std::move(n)));
}

Value Builder::stream(const std::string& callback, const Value& v, bool any_shape) {
  check_own(this, v);
  graph::Node n;
  n.kind = graph::NodeKind::kStream;
  n.input = v.node();
  n.name = callback;
  n.any_shape = any_shape;
  return Value(this, add_node(std::move(n)));
}

void Builder::log(const std::string& text, const Value& v) {
  check_own(this, v);
  graph::Node n;
  n.kind = graph::NodeKind::kLog;
  n.input = v.node();
  n.name = text;
  add_node(std::move(n));
}

void Builder::stop(const Value& after) {
  check_own(this, after);
  graph::Node n;
  n.kind = graph::NodeKind::kStop;
  n.input = after.node();
  add_node(std::move(n));
}

void Builder::backward(const Value& loss) {
  check_own(this, loss);
  graph::Node n;
  n.kind = graph::NodeKind::kBackward;
  n.input = loss.node();
  add_node(std::move(n));
}

void Builder::cache(const std::vector<std::string>& modules, bool inputs, bool every_step) {
  // Tuple outputs (blocks) save each tensor element as PATH.output.K.
  auto save_elements = [this](const Value& v, std::string name) {
    graph::Node n;
    n.kind = graph::NodeKind::kSave;
    n.input = v.node();
    n.name = std::move(name);
    n.elements = true;
    add_node(std::move(n));
  };
  for (const std::string& path : modules) {
    ModuleRef m = module(path);
    if (every_step) m = m.all_steps();
    const std::string prefix = path.empty() ? "" : path + ".";
    save_elements(m.output(), prefix + "output");
    if (inputs) save_elements(m.input(0), prefix + "input");
  }
}

Value next_token_loss(const Value& logits, const Value& input_ids) {
  Value logp = logits.slice(1, 0, -1).log_softmax(-1);
  Value next = input_ids.slice(1, 1, std::nullopt).unsqueeze(-1);
  Value picked = builder_of(logits)->op("aten::gather", {logp, -1, next, false});
  return -picked.mean({0, 1, 2});
}

}  // namespace loom
