// Shared by the examples: the GPT-2 checkpoint to run on. LOOM_MODEL_PATH
// names one; otherwise a seeded tiny checkpoint is generated in a
// temporary directory (no downloads needed).
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "runtime/gpt2_config.h"
#include "runtime/model.h"

namespace example {

inline std::string checkpoint_dir() {
  if (const char* p = std::getenv("LOOM_MODEL_PATH")) return p;
  std::string dir = (std::filesystem::temp_directory_path() / "loom-example-gpt2-tiny").string();
  if (!std::filesystem::exists(dir + "/model.safetensors")) {
    auto s = loom::runtime::write_random_gpt2_checkpoint(dir, loom::runtime::Gpt2Config::tiny(), 2024);
    if (!s.ok()) {
      std::cerr << s.message() << "\n";
      std::exit(1);
    }
  }
  return dir;
}

inline std::unique_ptr<loom::runtime::Model> load_or_exit(const std::string& dir) {
  auto m = loom::runtime::load_model(dir);
  if (!m.ok()) {
    std::cerr << "cannot load " << dir << ": " << m.status().message() << "\n";
    std::exit(1);
  }
  return std::move(m).value();
}

// The checkpoint's head count (its config.json), for examples that edit heads.
inline int64_t n_head(const std::string& dir) {
  std::ifstream in(dir + "/config.json");
  std::stringstream text;
  text << in.rdbuf();
  auto config = loom::runtime::parse_gpt2_config(text.str());
  if (!config.ok()) {
    std::cerr << "cannot read " << dir << "/config.json: " << config.status().message() << "\n";
    std::exit(1);
  }
  return config->n_head;
}

// Exits non-zero with a message when `ok` is false.
inline void check(bool ok, const std::string& what) {
  std::cout << (ok ? "ok    " : "FAIL  ") << what << "\n";
  if (!ok) std::exit(1);
}

}  // namespace example
