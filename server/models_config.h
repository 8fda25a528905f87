// The models a server keeps warm: `--models FILE`, YAML or JSON (JSON is
// YAML), e.g. {"models": [{"key": "gpt2-tiny", "path": "ckpt/", "device": "cpu"}]}.
// Unknown fields and bad values are rejected with the field named, so a typo
// in a deployment file fails at start, not at the first job.
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "graph/status.h"

namespace YAML {
class Node;
}

namespace loom::server {

struct ModelSpec {
  std::string key;     // what clients name: [A-Za-z0-9._-]{1,128}
  std::string path;    // checkpoint directory or TorchScript file; relative = to the config file
  std::string device = "cpu";  // "cpu" or "cuda:N"
  // Test-only: each job sleeps this long before its forward pass, a stand-in
  // for a slower device, so scale-out benchmarks measure the cluster and not
  // two CPU cores shared by every worker (scripts/bench scale).
  uint32_t test_forward_delay_ms = 0;
};

Result<std::vector<ModelSpec>> parse_models_config(const std::string& text, const std::string& base_dir = "");
Result<std::vector<ModelSpec>> load_models_config(const std::string& path);
// The list part, for files that embed one (the cluster config): errors read
// `prefix` + `path`[i].field, e.g. "cluster config: cluster.workers[0].models[1].key ...".
Result<std::vector<ModelSpec>> parse_model_list(const YAML::Node& models, const std::string& prefix,
                                                const std::string& path, const std::string& base_dir);
// `models` as a models config file (JSON) that parse_models_config reads back.
std::string models_config_json(const std::vector<ModelSpec>& models);

// The model's revision: SHA-256 (hex) over the relative names and contents of
// the files at `path` (a directory, walked in name order, or one file). It
// joins every request's identity, so a checkpoint swapped under the same key
// is never answered from the old one's results. Reads every byte once at
// load (about a second per GB here).
Result<std::string> model_revision(const std::string& path);

}  // namespace loom::server
