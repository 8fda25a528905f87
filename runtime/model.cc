#include "runtime/model.h"

#include <sys/stat.h>

#include "runtime/gpt2.h"
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

Result<std::unique_ptr<Model>> load_model(const std::string& path, const ModelOptions& options) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return not_found(path + ": no such file or directory");
  if (options.device != "cpu" && options.device.rfind("cuda", 0) != 0) {
    return invalid_argument("device \"" + options.device + "\" is not supported (use cpu or cuda:N)");
  }
  if (S_ISDIR(st.st_mode) && is_llama_dir(path)) {
    auto m = LlamaModel::load(path, options.device, options.compute_dtype);
    if (!m.ok()) return m.status();
    return std::unique_ptr<Model>(std::move(m).value());
  }
  if (S_ISDIR(st.st_mode)) {
    auto m = Gpt2Model::load(path, options.device);
    if (!m.ok()) return m.status();
    return std::unique_ptr<Model>(std::move(m).value());
  }
  auto m = TorchScriptModel::load(path, options.device);
  if (!m.ok()) return m.status();
  return std::unique_ptr<Model>(std::move(m).value());
}

}  // namespace loom::runtime
