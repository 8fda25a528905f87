// What `loom trace` and `loom generate` read their inputs from: a
// safetensors file (--inputs, tensors "0", "1", ... by position: one
// invoke) or text (--prompt, repeatable: one invoke of one row each,
// encoded with the tokenizer of the checkpoint directory or --tokenizer).
// Thread safety: plain functions.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <string>
#include <vector>

#include "text/tokenizer.h"

namespace loom::client {

struct CommandInputs {
  std::vector<std::vector<at::Tensor>> invokes;
  std::optional<text::Tokenizer> tokenizer;  // set with --prompt
};

// On failure prints "loom COMMAND: why" and returns the exit code (3: a file
// cannot be read, 2: bad arguments); 0 on success.
int load_command_inputs(const std::string& command, const std::string& inputs_file,
                        const std::vector<std::string>& prompts, const std::string& tokenizer_dir,
                        CommandInputs* out);

}  // namespace loom::client
