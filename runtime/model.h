// A model loom can run graphs against: its module tree (hook points) and a
// forward pass that calls a HookSink at every module's inputs and outputs.
//
// Two kinds load from standard files (load_model): a TorchScript archive
// (torch.jit.trace or torch.jit.script output) and a Hugging Face checkpoint
// directory of GPT-2 or the Llama family (runtime/gpt2.h, runtime/llama.h).
//
// Thread safety: forward() may be called from one thread at a time per
// model (the per-device executor); module_paths() is immutable after load.
#pragma once

#include <ATen/core/ivalue.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "graph/ir.h"
#include "graph/status.h"

namespace loom::runtime {

// Receives hook points during a forward pass. Modules are named by id: the
// index into Model::module_paths() (0 is the root, path ""). A sink may
// replace the value in place; it reports failure by throwing (the model's
// forward unwinds; the sink remembers why).
class HookSink {
 public:
  virtual ~HookSink() = default;
  virtual void on_input(int module_id, int arg, c10::IValue& value) = 0;
  virtual void on_output(int module_id, c10::IValue& value) = 0;
  // Whether the forward pass must record autograd history (the graph runs a
  // backward pass): the models then run outside InferenceMode.
  virtual bool wants_grad() const { return false; }
  // Asked after a module's input hook, before it runs: true when an
  // intervention skips it, with `output` set to what it gives instead
  // (native models; on_output still fires with that value).
  virtual bool skip(int /*module_id*/, c10::IValue& /*output*/) { return false; }
};

class Model {
 public:
  virtual ~Model() = default;

  // Every module by dotted path, as named_modules() gives them; [0] is "".
  const std::vector<std::string>& module_paths() const { return paths_; }
  // -1 when the model has no such module.
  int module_id(std::string_view path) const;

  // Runs forward(inputs...) with hooks reported to `sink` (nullptr: none).
  // Exceptions from the model or the sink propagate.
  virtual c10::IValue forward(std::vector<c10::IValue> inputs, HookSink* sink) = 0;
  // The same forward on shapes only: every parameter and buffer is replaced
  // by a meta tensor of its shape and dtype for the call (restored after,
  // also when it throws), and the inputs go to the meta device. No data is
  // computed and no weight is read (scan). Native models only: a
  // TorchScript module's tensors cannot be swapped (FAILED_PRECONDITION).
  // Not while another forward runs (the executor's thread calls both).
  c10::IValue forward_meta(std::vector<c10::IValue> inputs, HookSink* sink);

  virtual std::string kind() const = 0;  // "torchscript", "gpt2", "llama" or "qwen2"
  // "cpu", "cuda:0": where parameters live and inputs are moved.
  virtual std::string device() const = 0;

  // Bytes held by its parameters and buffers, tied ones counted once: what
  // the server's tier budgets (--device-memory, --host-memory) count.
  int64_t parameter_bytes();
  // Every parameter and buffer (handles sharing their storage): how tests
  // check that a backward pass left no weight gradients behind.
  std::vector<at::Tensor> tensors();
  // Moves its parameters and buffers to `device` ("cpu", "cuda:N"); later
  // forwards run there and move their inputs there. Tied tensors stay tied.
  // The server's tiers use it: HOT on the device, WARM in host memory.
  // Not while a forward runs (the executor's thread calls both).
  virtual Status to_device(const std::string& device);

  // Persistent edits (graph/edits.h): interventions that run before every
  // later trace, scan and generation of this model, until cleared. Checked
  // once, here, against the model. Edits accumulate in order.
  Status edit(const graph::Graph& edit);
  void clear_edits() { edits_.reset(); }
  // nullptr when there are none.
  const graph::Graph* edits() const { return edits_ ? &*edits_ : nullptr; }

 protected:
  void set_module_paths(std::vector<std::string> paths);
  // Every parameter and buffer, by reference (to_device replaces them).
  virtual void for_each_tensor(const std::function<void(at::Tensor&)>& f) = 0;
  virtual void set_device(const std::string& device) = 0;

 private:
  std::vector<std::string> paths_;
  std::unordered_map<std::string, int> ids_;
  std::optional<graph::Graph> edits_;
};

struct ModelOptions {
  std::string device = "cpu";  // "cuda:N" where present; "meta": shapes only, no weight read (scans)
  // Llama family: "" computes in the checkpoint's dtype; "float32",
  // "float16" or "bfloat16" converts the weights to that one.
  std::string compute_dtype;
  // Called with the fraction loaded (0..1) as the checkpoint is read and
  // its tensors placed (a server's LOADING progress); may be empty.
  std::function<void(double)> progress;
};

// A directory is a checkpoint (its config.json's model_type: llama or qwen2
// for LlamaModel, else GPT-2); a file is a TorchScript archive.
Result<std::unique_ptr<Model>> load_model(const std::string& path, const ModelOptions& options = {});

}  // namespace loom::runtime
