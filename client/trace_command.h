// `loom trace` run locally: load MODEL, read inputs, save the SPECs' values.
#pragma once

#include <string>
#include <vector>

namespace loom::client {

struct TraceCommand {
  std::string model;                // TorchScript file or GPT-2 checkpoint directory
  std::string inputs;               // safetensors with tensors "0", "1", ...
  std::vector<std::string> saves;   // SPECs
  std::string output;               // safetensors written with one tensor per SPEC
  std::string device = "cpu";
};

// Exit codes (documented in the README): 0 ok, 2 bad SPEC or arguments,
// 3 bad model or input file, 4 the run failed.
int run_trace_command(const TraceCommand& cmd);

}  // namespace loom::client
