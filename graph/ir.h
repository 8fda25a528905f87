// The intervention graph in memory: what the builder produces, what the
// codec encodes to Cap'n Proto, and what the runtime executes.
//
// A Graph is a list of nodes; a node refers to earlier nodes by index, so the
// list is its own topological order (validate() rejects forward and self
// references, which is how cycles are excluded). Every node has one value.
// Thread safety: plain values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace loom::graph {

enum class DType : uint8_t {
  kFloat32, kFloat64, kFloat16, kBFloat16, kInt64, kInt32, kInt16, kInt8, kUInt8, kBool,
};
const char* dtype_name(DType dtype);  // safetensors names: "F32", "I64", ...
size_t dtype_size(DType dtype);

// A small tensor carried inside the graph (little-endian, row-major bytes).
struct TensorData {
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  std::string bytes;
};

enum class Io : uint8_t { kOutput, kInput };

// Where a hook fires: a module's output (or element `index` of a tuple
// output) or its positional input `index`, on its `call`-th call (0-based),
// seen from invoke `invoke` (its rows of the batch; -1 = the whole batch).
// In a generation the call is the step (step 0 is the prompt pass). A point
// with `call_end` != 0 covers the calls [call, call_end) (kEveryCall: every
// call from `call` on); what depends on it runs again at each of them.
constexpr uint32_t kEveryCall = 0xFFFFFFFFu;
struct Point {
  std::string module;  // dotted path as named_modules() gives; "" = the root
  Io io = Io::kOutput;
  int32_t index = -1;  // output: tuple element, -1 = whole; input: argument
  uint32_t call = 0;
  int32_t invoke = -1;
  uint32_t call_end = 0;  // 0: the one call `call`
  uint32_t trace = 0;     // sessions: the forward pass (trace) of the job it is in
  // Persistent edits (graph/edits.h): at a hook, the points of stage s read
  // the value after the sets of stages < s; a trace's stage is above its
  // edits'. 0 for a plain trace.
  uint32_t stage = 0;

  bool repeats() const { return call_end != 0; }
  bool covers(uint32_t c) const { return call_end == 0 ? c == call : c >= call && c < call_end; }
  std::string to_string() const;  // "transformer.h.3.output.0@1 (invoke 0)", "...@all", "...@2:5"
};

// A typed operator argument.
struct Arg {
  enum class Kind : uint8_t { kNone, kNode, kInt, kFloat, kBool, kInts, kFloats, kDType, kStr, kNodes };
  Kind kind = Kind::kNone;
  uint32_t node = 0;          // kNode
  int64_t i = 0;              // kInt
  double f = 0;               // kFloat
  bool b = false;             // kBool
  DType dtype = DType::kFloat32;  // kDType
  std::vector<int64_t> ints;  // kInts
  std::vector<double> floats; // kFloats
  std::string str;            // kStr
  std::vector<uint32_t> nodes;  // kNodes (a tensor list)

  static Arg none() { return Arg{}; }
  static Arg of_node(uint32_t n) { Arg a; a.kind = Kind::kNode; a.node = n; return a; }
  static Arg of_int(int64_t v) { Arg a; a.kind = Kind::kInt; a.i = v; return a; }
  static Arg of_float(double v) { Arg a; a.kind = Kind::kFloat; a.f = v; return a; }
  static Arg of_bool(bool v) { Arg a; a.kind = Kind::kBool; a.b = v; return a; }
  static Arg of_ints(std::vector<int64_t> v) { Arg a; a.kind = Kind::kInts; a.ints = std::move(v); return a; }
  static Arg of_floats(std::vector<double> v) { Arg a; a.kind = Kind::kFloats; a.floats = std::move(v); return a; }
  static Arg of_dtype(DType d) { Arg a; a.kind = Kind::kDType; a.dtype = d; return a; }
  static Arg of_str(std::string s) { Arg a; a.kind = Kind::kStr; a.str = std::move(s); return a; }
  static Arg of_nodes(std::vector<uint32_t> n) { Arg a; a.kind = Kind::kNodes; a.nodes = std::move(n); return a; }
};
const char* arg_kind_name(Arg::Kind kind);

enum class NodeKind : uint8_t {
  kRead,      // value of `point` when its hook fires
  kSet,       // replace `point`'s value with node `input`
  kOp,        // ATen operator `op` applied to `args`
  kConstant,  // `tensor` inline, or content `content_sha256` uploaded earlier
  kSave,      // return node `input` to the client as `name`
  kStream,    // hand node `input` to client callback `name`, use its reply
  kLog,       // send `name` (text) and node `input` to the client as a LOG event
  kStop,      // end the forward pass once node `input` is available
  kGrad,      // the gradient flowing back through `point`'s value (backward pass)
  kSetGrad,   // replace that gradient with node `input` before it flows further back
  kBackward,  // run the backward pass from node `input`, a scalar
  kSkip,      // module `point.module` does not run on call `point.call`; its output is node `input`
};
const char* node_kind_name(NodeKind kind);

struct Node {
  NodeKind kind = NodeKind::kOp;
  Point point;                 // kRead, kSet, kGrad, kSetGrad, kSkip
  uint32_t input = 0;          // kSet, kSave, kStream, kLog, kStop, kSetGrad, kBackward, kSkip
  std::string op;              // kOp: "aten::add.Tensor"
  std::vector<Arg> args;       // kOp
  TensorData tensor;           // kConstant (inline)
  std::string content_sha256;  // kConstant by reference: 64 hex chars
  std::string name;            // kSave: result name; kStream: callback; kLog: text
  bool any_shape = false;      // kStream: the reply may differ from the value sent in shape/dtype
  bool elements = false;       // kSave: a tuple saves each tensor element K as NAME.K (cache)

  // Node indexes this node reads.
  std::vector<uint32_t> dependencies() const;
};

// A session runs several traces in one job, one forward pass each, in
// order; later ones may use values of earlier ones. Invokes are numbered
// across the session: trace t owns the next trace_invokes[t] of them.
constexpr uint32_t kMaxSessionTraces = 64;
struct Graph {
  uint32_t invokes = 1;  // batch groups; Point::invoke < invokes
  std::vector<uint32_t> trace_invokes;  // sessions: invokes per trace; empty: one trace of all invokes
  uint32_t traces() const { return trace_invokes.empty() ? 1 : static_cast<uint32_t>(trace_invokes.size()); }
  // The first invoke of trace `t` and how many it has.
  uint32_t first_invoke(uint32_t t) const;
  uint32_t invokes_of(uint32_t t) const { return trace_invokes.empty() ? invokes : trace_invokes[t]; }
  std::vector<Node> nodes;
};

// "node 4 (op aten::add.Tensor)" for error messages.
std::string describe_node(const Graph& graph, uint32_t index);

}  // namespace loom::graph
