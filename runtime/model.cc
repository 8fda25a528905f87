#include "runtime/model.h"

#include <sys/stat.h>

#include <ATen/ATen.h>

#include <map>
#include <optional>
#include <set>

#include "graph/edits.h"
#include "runtime/execute.h"
#include "runtime/gpt2.h"
#include "runtime/internal/meta_fallback.h"
#include "runtime/llama.h"
#include "runtime/torchscript_model.h"

namespace loom::runtime {

int Model::module_id(std::string_view path) const {
  auto it = ids_.find(std::string(path));
  return it == ids_.end() ? -1 : it->second;
}

void Model::set_module_paths(std::vector<std::string> paths) {
  paths_ = std::move(paths);
  ids_.clear();
  for (size_t i = 0; i < paths_.size(); ++i) ids_.emplace(paths_[i], static_cast<int>(i));
}

int64_t Model::parameter_bytes() {
  std::set<const void*> seen;
  int64_t bytes = 0;
  for_each_tensor([&](at::Tensor& t) {
    if (!t.defined() || !seen.insert(t.storage().data()).second) return;
    bytes += static_cast<int64_t>(t.storage().nbytes());
  });
  return bytes;
}

c10::IValue Model::forward_meta(std::vector<c10::IValue> inputs, HookSink* sink) {
  if (kind() == "torchscript") {
    throw std::invalid_argument("a TorchScript model cannot run on shapes only (scan): its weights live in the archive's "
                                "module; native models (gpt2, llama) can");
  }
  internal::install_meta_fallback();
  std::vector<at::Tensor> real;
  for_each_tensor([&](at::Tensor& t) {
    real.push_back(t);
    if (t.defined()) t = at::empty_strided(t.sizes(), t.strides(), t.options().device(at::kMeta));
  });
  const std::string device_was = device();
  struct Restore {
    Model* m;
    std::vector<at::Tensor>* real;
    const std::string* device;
    ~Restore() {
      size_t i = 0;
      m->for_each_tensor([&](at::Tensor& t) { t = (*real)[i++]; });
      m->set_device(*device);
    }
  } restore{this, &real, &device_was};
  set_device("meta");
  return forward(std::move(inputs), sink);
}

Status Model::edit(const graph::Graph& edit) {
  LOOM_RETURN_IF_ERROR(graph::check_edit(edit));
  LOOM_RETURN_IF_ERROR(validate_for_model(edit, *this));
  if (!edits_) {
    edits_ = edit;
    return Status();
  }
  // The new edit after the earlier ones: one graph, still an edit.
  LOOM_ASSIGN_OR_RETURN(graph::Graph both, graph::apply_edit(*edits_, edit));
  edits_ = std::move(both);
  return Status();
}

std::vector<at::Tensor> Model::tensors() {
  std::vector<at::Tensor> out;
  for_each_tensor([&](at::Tensor& t) { out.push_back(t); });
  return out;
}

Status Model::to_device(const std::string& device) {
  std::optional<at::Device> dev;
  try {
    dev.emplace(device);
  } catch (const std::exception&) {
    return invalid_argument("device \"" + device + "\" is not a device (use cpu or cuda:N)");
  }
  // Tensors that share storage (tied weights) move once and stay shared.
  std::map<std::pair<const void*, std::vector<int64_t>>, at::Tensor> moved;
  try {
    for_each_tensor([&](at::Tensor& t) {
      if (!t.defined() || t.device() == *dev) return;
      auto key = std::make_pair(static_cast<const void*>(t.data_ptr()), t.sizes().vec());
      auto it = moved.find(key);
      if (it == moved.end()) it = moved.emplace(key, t.to(*dev)).first;
      t = it->second;
    });
  } catch (const std::exception& e) {
    std::string what = e.what();
    return Status(StatusCode::kResourceExhausted,
                  "moving the model to " + device + " failed: " + what.substr(0, what.find('\n')));
  }
  set_device(device);
  return Status();
}

Result<std::unique_ptr<Model>> load_model(const std::string& path, const ModelOptions& options) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return not_found(path + ": no such file or directory");
  if (options.device != "cpu" && options.device != "meta" && options.device.rfind("cuda", 0) != 0) {
    return invalid_argument("device \"" + options.device + "\" is not supported (use cpu or cuda:N; meta for scans)");
  }
  if (options.device == "meta" && !S_ISDIR(st.st_mode)) {
    return invalid_argument(path + ": a TorchScript archive cannot load on the meta device (native checkpoints can)");
  }
  if (S_ISDIR(st.st_mode) && is_llama_dir(path)) {
    auto m = LlamaModel::load(path, options.device, options.compute_dtype, options.progress);
    if (!m.ok()) return m.status();
    return std::unique_ptr<Model>(std::move(m).value());
  }
  if (S_ISDIR(st.st_mode)) {
    auto m = Gpt2Model::load(path, options.device, options.progress);
    if (!m.ok()) return m.status();
    return std::unique_ptr<Model>(std::move(m).value());
  }
  if (options.progress) options.progress(0.0);
  auto m = TorchScriptModel::load(path, options.device);
  if (!m.ok()) return m.status();
  if (options.progress) options.progress(1.0);
  return std::unique_ptr<Model>(std::move(m).value());
}

}  // namespace loom::runtime
