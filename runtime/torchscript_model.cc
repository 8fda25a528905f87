#include "runtime/torchscript_model.h"

#include <c10/core/InferenceMode.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/runtime/custom_operator.h>
#include <torch/script.h>

#include <unordered_set>

namespace loom::runtime {
namespace {

thread_local HookSink* tls_sink = nullptr;

// The ops are pass-through when no sink is active (a model may be used bare).
torch::jit::RegisterOperators register_hook_ops({
    torch::jit::Operator(
        "loom::hook_in(int module, int arg, Any value) -> Any",
        [](torch::jit::Stack& stack) {
          c10::IValue value = torch::jit::pop(stack);
          int64_t arg = torch::jit::pop(stack).toInt();
          int64_t module = torch::jit::pop(stack).toInt();
          if (tls_sink != nullptr) tls_sink->on_input(static_cast<int>(module), static_cast<int>(arg), value);
          torch::jit::push(stack, std::move(value));
        },
        c10::AliasAnalysisKind::CONSERVATIVE),
    torch::jit::Operator(
        "loom::hook_out(int module, Any value) -> Any",
        [](torch::jit::Stack& stack) {
          c10::IValue value = torch::jit::pop(stack);
          int64_t module = torch::jit::pop(stack).toInt();
          if (tls_sink != nullptr) tls_sink->on_output(static_cast<int>(module), value);
          torch::jit::push(stack, std::move(value));
        },
        c10::AliasAnalysisKind::CONSERVATIVE),
});

constexpr const char* kIdAttr = "_loom_id";

void collect_calls(torch::jit::Block* block, torch::jit::Value* self, std::vector<torch::jit::Node*>& out) {
  for (torch::jit::Node* n : block->nodes()) {
    for (torch::jit::Block* sub : n->blocks()) collect_calls(sub, self, out);
    if (n->kind() != c10::prim::CallMethod) continue;
    torch::jit::Value* obj = n->inputs()[0];
    auto cls = obj->type()->cast<c10::ClassType>();
    if (!cls || !cls->is_module() || obj == self) continue;
    if (!cls->hasAttribute(kIdAttr)) continue;  // not one of our modules
    out.push_back(n);
  }
}

void instrument_graph(torch::jit::Graph& graph) {
  static const c10::Symbol kHookIn = c10::Symbol::fromQualString("loom::hook_in");
  static const c10::Symbol kHookOut = c10::Symbol::fromQualString("loom::hook_out");
  std::vector<torch::jit::Node*> calls;
  collect_calls(graph.block(), graph.inputs().empty() ? nullptr : graph.inputs()[0], calls);
  for (torch::jit::Node* call : calls) {
    torch::jit::WithInsertPoint guard(call);
    torch::jit::Value* id = graph.insertGetAttr(call->inputs()[0], kIdAttr);
    for (size_t i = 1; i < call->inputs().size(); ++i) {
      torch::jit::Value* in = call->inputs()[i];
      torch::jit::Value* arg = graph.insertConstant(static_cast<int64_t>(i - 1));
      torch::jit::Node* hook = graph.create(kHookIn, {id, arg, in});
      hook->output()->setType(in->type());
      graph.insertNode(hook);
      call->replaceInput(i, hook->output());
    }
    if (call->outputs().size() != 1) continue;
    torch::jit::Value* out = call->output();
    torch::jit::Node* hook = graph.create(kHookOut, {id, out});
    hook->output()->setType(out->type());
    hook->insertAfter(call);
    out->replaceAllUsesAfterNodeWith(hook, hook->output());
  }
}

}  // namespace

struct TorchScriptModel::Impl {
  torch::jit::Module module;
};

TorchScriptModel::TorchScriptModel() : impl_(std::make_unique<Impl>()) {}
TorchScriptModel::~TorchScriptModel() = default;

Result<std::unique_ptr<TorchScriptModel>> TorchScriptModel::load(const std::string& path, const std::string& device) {
  std::unique_ptr<TorchScriptModel> m(new TorchScriptModel());
  m->device_ = device;
  try {
    m->impl_->module = torch::jit::load(path, at::Device(device));
  } catch (const std::exception& e) {
    std::string what = e.what();
    return invalid_argument(path + ": not a loadable TorchScript archive: " + what.substr(0, what.find('\n')));
  }
  torch::jit::Module& root = m->impl_->module;
  root.eval();
  // Gradients are taken with respect to hook values only: no memory goes to weight gradients.
  for (at::Tensor p : root.parameters()) p.requires_grad_(false);
  std::vector<std::string> paths;
  std::vector<torch::jit::Module> modules;
  for (const auto& item : root.named_modules()) {
    paths.push_back(item.name);
    modules.push_back(item.value);
  }
  try {
    for (size_t i = 0; i < modules.size(); ++i) {
      modules[i].register_attribute(kIdAttr, c10::IntType::get(), static_cast<int64_t>(i));
    }
    // Instances of one class share method graphs: instrument each graph once.
    std::unordered_set<torch::jit::Graph*> done;
    for (auto& mod : modules) {
      for (const auto& method : mod.get_methods()) {
        std::shared_ptr<torch::jit::Graph> g = method.graph();
        if (done.insert(g.get()).second) instrument_graph(*g);
      }
    }
  } catch (const std::exception& e) {
    return internal_error(path + ": could not add hook points: " + std::string(e.what()));
  }
  m->set_module_paths(std::move(paths));
  return m;
}

void TorchScriptModel::for_each_tensor(const std::function<void(at::Tensor&)>& f) {
  for (at::Tensor t : impl_->module.parameters()) f(t);
  for (at::Tensor t : impl_->module.buffers()) f(t);
}

Status TorchScriptModel::to_device(const std::string& device) {
  try {
    impl_->module.to(at::Device(device));
  } catch (const std::exception& e) {
    std::string what = e.what();
    return Status(StatusCode::kResourceExhausted,
                  "moving the model to " + device + " failed: " + what.substr(0, what.find('\n')));
  }
  set_device(device);
  return Status();
}

c10::IValue TorchScriptModel::forward(std::vector<c10::IValue> inputs, HookSink* sink) {
  c10::InferenceMode guard(sink == nullptr || !sink->wants_grad());
  at::Device dev(device_);
  for (auto& in : inputs) {
    if (in.isTensor()) in = in.toTensor().to(dev);
  }
  struct SinkScope {
    HookSink* prev;
    explicit SinkScope(HookSink* s) : prev(tls_sink) { tls_sink = s; }
    ~SinkScope() { tls_sink = prev; }
  } scope(sink);
  if (sink == nullptr) return impl_->module.forward(std::move(inputs));
  for (size_t i = 0; i < inputs.size(); ++i) sink->on_input(0, static_cast<int>(i), inputs[i]);
  c10::IValue out = impl_->module.forward(std::move(inputs));
  sink->on_output(0, out);
  return out;
}

}  // namespace loom::runtime
