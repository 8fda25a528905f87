// A TorchScript archive (torch.jit.trace or torch.jit.script output) whose
// every submodule's inputs and outputs are hook points.
//
// At load, a graph pass wraps every call of a submodule method
// (prim::CallMethod on a module other than `self`) in registered custom ops:
// loom::hook_in before each argument, loom::hook_out after the result. Scripted
// modules share one graph among the instances of a class, so the ops read the
// module's id from a per-instance attribute (`_loom_id`) instead of a constant.
// Traced modules call a repeated submodule through extra methods (forward1,
// ...); every method call counts as one call of the module.
// Thread safety: see Model; the active sink is thread-local to forward().
#pragma once

#include <memory>
#include <string>

#include "runtime/model.h"

namespace loom::runtime {

class TorchScriptModel : public Model {
 public:
  static Result<std::unique_ptr<TorchScriptModel>> load(const std::string& path, const std::string& device);
  ~TorchScriptModel() override;

  c10::IValue forward(std::vector<c10::IValue> inputs, HookSink* sink) override;
  std::string kind() const override { return "torchscript"; }
  std::string device() const override { return device_; }
  Status to_device(const std::string& device) override;

 protected:
  // Copies of the parameter and buffer handles (read-only: to_device moves the module).
  void for_each_tensor(const std::function<void(at::Tensor&)>& f) override;
  void set_device(const std::string& device) override { device_ = device; }

 private:
  struct Impl;
  TorchScriptModel();
  std::unique_ptr<Impl> impl_;
  std::string device_;
};

}  // namespace loom::runtime
