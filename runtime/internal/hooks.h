// Running a native model's submodule with its hooks reported to a HookSink:
// shared by the GPT-2 and Llama implementations. Torch-heavy; included only
// by their .cc files. Thread safety: as the model's forward.
#pragma once

#include <ATen/ATen.h>

#include <stdexcept>
#include <string>

#include "runtime/model.h"

namespace loom::runtime::internal {

inline at::Tensor tensor_of(const c10::IValue& v, const std::string& path, const char* what) {
  if (!v.isTensor()) {
    throw std::runtime_error("module \"" + path + "\": its " + what + " must be a tensor, but an intervention made it " +
                             v.tagKind());
  }
  return v.toTensor();
}

// at::embedding, also on shapes only: LibTorch 1.13 has no meta kernel for
// the index_select under it (a scan, Model::forward_meta).
inline at::Tensor embedding(const at::Tensor& weight, const at::Tensor& ids) {
  if (!weight.is_meta()) return at::embedding(weight, ids);
  std::vector<int64_t> shape = ids.sizes().vec();
  shape.push_back(weight.size(1));
  return at::empty(shape, weight.options());
}

// Runs `f` as module `id`: reports input 0 and the output to the sink, which
// may replace either, or skip f. Without a sink it is just f(x).
template <typename F>
at::Tensor hooked(const Model& m, HookSink* sink, int id, at::Tensor x, F&& f) {
  if (sink == nullptr) return f(x);
  const std::string& path = m.module_paths()[id];
  c10::IValue in(std::move(x));
  sink->on_input(id, 0, in);
  c10::IValue out;
  if (!sink->skip(id, out)) out = f(tensor_of(in, path, "input"));
  sink->on_output(id, out);
  return tensor_of(out, path, "output");
}

// Like hooked() for modules whose transformers output is a tuple whose first
// element is the tensor the model continues with: (y,) or (y, None).
template <typename F>
at::Tensor hooked_tuple(const Model& m, HookSink* sink, int id, at::Tensor x, bool with_none, F&& f) {
  if (sink == nullptr) return f(x);
  const std::string& path = m.module_paths()[id];
  c10::IValue in(std::move(x));
  sink->on_input(id, 0, in);
  c10::IValue skipped;
  at::Tensor y = sink->skip(id, skipped) ? tensor_of(skipped, path, "skip value") : f(tensor_of(in, path, "input"));
  c10::IValue out = with_none ? c10::ivalue::Tuple::create({y, c10::IValue()}) : c10::ivalue::Tuple::create({y});
  sink->on_output(id, out);
  if (!out.isTuple() || out.toTupleRef().elements().empty()) {
    throw std::runtime_error("module \"" + path + "\": its output must stay a tuple, but an intervention made it " +
                             out.tagKind());
  }
  return tensor_of(out.toTupleRef().elements()[0], path, "output element 0");
}

}  // namespace loom::runtime::internal
