#include "runtime/internal/meta_fallback.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <memory>
#include <mutex>

namespace loom::runtime::internal {
namespace {

at::Tensor stand_in(const at::Tensor& t, bool written) {
  if (!t.defined() || !t.is_meta()) return t;
  const auto options = t.options().device(at::kCPU);
  if (written) return at::zeros(t.sizes(), options);
  return at::zeros({}, options).expand(t.sizes());
}

c10::IValue stand_in(const c10::IValue& v, bool written) {
  if (v.isTensor()) return stand_in(v.toTensor(), written);
  if (v.isTensorList()) {
    c10::List<at::Tensor> out;
    for (const at::Tensor& t : v.toTensorList()) out.push_back(stand_in(t, written));
    return out;
  }
  if (v.isOptionalTensorList()) {
    c10::List<c10::optional<at::Tensor>> out;
    for (const c10::optional<at::Tensor>& t : v.toOptionalTensorList()) {
      out.push_back(t.has_value() ? c10::optional<at::Tensor>(stand_in(*t, written)) : c10::nullopt);
    }
    return out;
  }
  return v;
}

at::Tensor to_meta(const at::Tensor& t) {
  if (!t.defined() || t.is_meta()) return t;
  return at::empty_strided(t.sizes(), t.strides(), t.options().device(at::kMeta));
}

c10::IValue to_meta(const c10::IValue& v) {
  if (v.isTensor()) return to_meta(v.toTensor());
  if (v.isTensorList()) {
    c10::List<at::Tensor> out;
    for (const at::Tensor& t : v.toTensorList()) out.push_back(to_meta(t));
    return out;
  }
  return v;
}

void meta_fallback(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  const c10::FunctionSchema& schema = op.schema();
  const size_t n_args = schema.arguments().size();
  const auto first = stack->end() - static_cast<std::ptrdiff_t>(n_args);
  std::vector<c10::IValue> originals(first, stack->end());
  for (size_t i = 0; i < n_args; ++i) {
    const auto* alias = schema.arguments()[i].alias_info();
    *(first + static_cast<std::ptrdiff_t>(i)) = stand_in(originals[i], alias != nullptr && alias->isWrite());
  }
  op.callBoxed(stack);  // the stand-ins are CPU tensors: the CPU kernel runs
  const size_t n_rets = schema.returns().size();
  for (size_t j = 0; j < n_rets; ++j) {
    c10::IValue& r = (*stack)[stack->size() - n_rets + j];
    const auto* alias = schema.returns()[j].alias_info();
    // An in-place or out= op returns its argument: the meta original.
    bool aliased = false;
    if (alias != nullptr) {
      for (size_t i = 0; i < n_args && !aliased; ++i) {
        const auto* a = schema.arguments()[i].alias_info();
        if (a != nullptr && a->beforeSets() == alias->beforeSets()) {
          r = originals[i];
          aliased = true;
        }
      }
    }
    if (!aliased) r = to_meta(r);
  }
}

}  // namespace

void install_meta_fallback() {
  static std::once_flag once;
  static std::unique_ptr<torch::Library> library;
  std::call_once(once, [] {
    library = std::make_unique<torch::Library>(torch::Library::IMPL, "_", c10::DispatchKey::Meta, __FILE__, __LINE__);
    library->fallback(torch::CppFunction::makeFromBoxedFunction<&meta_fallback>());
  });
}

}  // namespace loom::runtime::internal
