#include "runtime/ops.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/function_schema.h>
#include <ATen/core/stack.h>

#include "graph/allowlist.h"
#include "runtime/tensor_data.h"

namespace loom::runtime {

struct ResolvedOp::Impl {
  bool element = false;  // the loom::element pseudo-op
  c10::OperatorHandle handle;
  explicit Impl(c10::OperatorHandle h) : handle(std::move(h)) {}
  Impl() : handle(*c10::Dispatcher::singleton().findSchema({"aten::clone", ""})) {}
};

namespace {

using graph::Arg;
using Kind = graph::Arg::Kind;

std::string type_name(const c10::Argument& formal) { return formal.real_type()->str(); }

// Whether `arg` may be passed for `type` (by kind; values are checked at call).
bool accepts(const c10::TypePtr& type, const c10::TypePtr& real, const Arg& arg) {
  if (auto opt = type->cast<c10::OptionalType>()) {
    if (arg.kind == Kind::kNone) return true;
    auto real_opt = real->cast<c10::OptionalType>();
    return accepts(opt->getElementType(), real_opt ? real_opt->getElementType() : opt->getElementType(), arg);
  }
  switch (real->kind()) {
    case c10::TypeKind::TensorType: return arg.kind == Kind::kNode;
    case c10::TypeKind::ScalarTypeType: return arg.kind == Kind::kDType;
    case c10::TypeKind::IntType: return arg.kind == Kind::kInt;
    case c10::TypeKind::SymIntType: return arg.kind == Kind::kInt;
    case c10::TypeKind::FloatType: return arg.kind == Kind::kFloat || arg.kind == Kind::kInt;
    case c10::TypeKind::NumberType: return arg.kind == Kind::kFloat || arg.kind == Kind::kInt || arg.kind == Kind::kBool;
    case c10::TypeKind::BoolType: return arg.kind == Kind::kBool;
    case c10::TypeKind::StringType: return arg.kind == Kind::kStr;
    case c10::TypeKind::ListType: {
      auto elem = real->castRaw<c10::ListType>()->getElementType();
      if (auto o = elem->cast<c10::OptionalType>()) elem = o->getElementType();
      switch (elem->kind()) {
        case c10::TypeKind::IntType: case c10::TypeKind::SymIntType: return arg.kind == Kind::kInts;
        case c10::TypeKind::FloatType: return arg.kind == Kind::kFloats;
        case c10::TypeKind::TensorType: return arg.kind == Kind::kNodes;
        default: return false;
      }
    }
    default: return false;
  }
}

c10::IValue to_ivalue(const c10::Argument& formal, const Arg& arg, const std::vector<const c10::IValue*>& node_args,
                      size_t& next_node) {
  c10::TypePtr real = formal.real_type();
  if (auto opt = real->cast<c10::OptionalType>()) real = opt->getElementType();
  switch (arg.kind) {
    case Kind::kNone: return c10::IValue();
    case Kind::kNode: {
      const c10::IValue& v = *node_args[next_node++];
      if (!v.isTensor()) {
        throw std::invalid_argument("argument \"" + formal.name() + "\" needs a Tensor but got a " + v.tagKind() +
                                    " (use loom::element to take a tuple's element)");
      }
      return v;
    }
    case Kind::kInt:
      if (real->kind() == c10::TypeKind::FloatType) return c10::IValue(static_cast<double>(arg.i));
      return c10::IValue(arg.i);
    case Kind::kFloat: return c10::IValue(arg.f);
    case Kind::kBool: return c10::IValue(arg.b);
    case Kind::kInts: return c10::IValue(c10::List<int64_t>(arg.ints));
    case Kind::kFloats: return c10::IValue(c10::List<double>(arg.floats));
    case Kind::kDType: return c10::IValue(static_cast<int64_t>(to_scalar_type(arg.dtype)));
    case Kind::kStr: return c10::IValue(arg.str);
    case Kind::kNodes: {
      bool optional_elems = real->castRaw<c10::ListType>()->getElementType()->kind() == c10::TypeKind::OptionalType;
      std::vector<at::Tensor> ts;
      for (size_t k = 0; k < arg.nodes.size(); ++k) {
        const c10::IValue& v = *node_args[next_node++];
        if (!v.isTensor()) throw std::invalid_argument("argument \"" + formal.name() + "\" needs Tensors");
        ts.push_back(v.toTensor());
      }
      if (optional_elems) {
        c10::List<c10::optional<at::Tensor>> l;
        for (auto& t : ts) l.push_back(t);
        return c10::IValue(l);
      }
      return c10::IValue(c10::List<at::Tensor>(ts));
    }
  }
  return c10::IValue();
}

}  // namespace

Result<ResolvedOp> ResolvedOp::resolve(const graph::Node& node) {
  ResolvedOp op;
  if (node.op == "loom::element") {
    if (node.args.size() != 2 || node.args[0].kind != Kind::kNode || node.args[1].kind != Kind::kInt) {
      return invalid_argument("loom::element takes (node, int)");
    }
    auto impl = std::make_shared<Impl>();
    impl->element = true;
    op.impl_ = impl;
    return op;
  }
  const std::string& full = node.op;
  size_t dot = full.find('.');
  std::string name = full.substr(0, dot);
  std::string overload = dot == std::string::npos ? "" : full.substr(dot + 1);
  auto handle = c10::Dispatcher::singleton().findSchema({name, overload});
  if (!graph::is_allowlisted_op(full)) {
    if (handle) return invalid_argument("op \"" + full + "\" exists but is not on the allowlist");
    return invalid_argument("unknown op \"" + full + "\" (not an ATen operator schema name such as aten::add.Tensor)");
  }
  if (!handle) return invalid_argument("op \"" + full + "\" is allowlisted but missing from this LibTorch build");
  const c10::FunctionSchema& schema = handle->schema();
  const auto& formals = schema.arguments();
  if (node.args.size() > formals.size()) {
    return invalid_argument(full + " takes at most " + std::to_string(formals.size()) + " arguments, got " +
                            std::to_string(node.args.size()));
  }
  for (size_t i = 0; i < formals.size(); ++i) {
    const c10::Argument& f = formals[i];
    if (i >= node.args.size()) {
      if (!f.default_value()) {
        return invalid_argument("argument " + std::to_string(i) + " (" + f.name() + ": " + type_name(f) + ") of " + full +
                                " is missing and has no default");
      }
      continue;
    }
    if (!accepts(f.type(), f.real_type(), node.args[i])) {
      return invalid_argument("argument " + std::to_string(i) + " (" + f.name() + ") of " + full + " must be " +
                              type_name(f) + ", got " + graph::arg_kind_name(node.args[i].kind));
    }
  }
  op.impl_ = std::make_shared<Impl>(*handle);
  return op;
}

std::vector<uint32_t> ResolvedOp::node_arguments(const graph::Node& node) { return node.dependencies(); }

c10::IValue ResolvedOp::call(const graph::Node& node, const std::vector<const c10::IValue*>& node_args) const {
  if (impl_->element) {
    const c10::IValue& v = *node_args[0];
    if (!v.isTuple()) throw std::invalid_argument(std::string("loom::element needs a tuple, got a ") + v.tagKind());
    const auto& elems = v.toTupleRef().elements();
    int64_t i = node.args[1].i;
    if (i < 0) i += static_cast<int64_t>(elems.size());
    if (i < 0 || i >= static_cast<int64_t>(elems.size())) {
      throw std::invalid_argument("loom::element index " + std::to_string(node.args[1].i) + " is out of range for a " +
                                  std::to_string(elems.size()) + "-tuple");
    }
    return elems[i];
  }
  const c10::FunctionSchema& schema = impl_->handle.schema();
  const auto& formals = schema.arguments();
  torch::jit::Stack stack;
  stack.reserve(formals.size());
  size_t next_node = 0;
  for (size_t i = 0; i < formals.size(); ++i) {
    if (i < node.args.size()) {
      stack.push_back(to_ivalue(formals[i], node.args[i], node_args, next_node));
    } else {
      stack.push_back(*formals[i].default_value());
    }
  }
  impl_->handle.callBoxed(&stack);
  if (stack.size() == 1) return std::move(stack[0]);
  return c10::ivalue::Tuple::create(std::move(stack));
}

Status AtenOpChecker::check(const graph::Node& node, const graph::Graph& graph) const {
  auto op = ResolvedOp::resolve(node);
  return op.ok() ? Status() : op.status();
}

}  // namespace loom::runtime
