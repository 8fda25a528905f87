// `loom trace`: run a model with hook points saved, locally (MODEL is a
// TorchScript file or a GPT-2 / Llama checkpoint directory) or with --remote on a
// loom-server (MODEL is a model key, as `loom models` lists them).
#pragma once

#include <string>
#include <vector>

#include "client/cli_common.h"

namespace loom::client {

struct TraceCommand {
  std::string model;                // local: file or directory; --remote: model key
  std::string inputs;               // safetensors with tensors "0", "1", ...
  std::vector<std::string> prompts; // or text, one invoke each (client/command_inputs.h)
  std::string tokenizer;            // for prompts; default: the local checkpoint directory
  std::vector<std::string> saves;   // SPECs
  std::vector<std::string> grads;   // SPECs: saves "grad:SPEC", d(loss)/d(value at SPEC)
  std::string loss;                 // "lm": mean next-token cross-entropy against the input ids
  std::vector<std::string> cache;   // module paths whose outputs are saved as PATH.output; "all": every module
  bool cache_inputs = false;        // with --cache: their input 0 too (PATH.input)
  std::string output;               // safetensors written with one tensor per SPEC
  std::string device = "cpu";       // local only
  bool remote = false;
  bool no_wait = false;             // --remote: print the job ID (last line) and return at once
  double timeout_s = 0;             // --remote: give up waiting after this (0: no limit)
  bool no_cache = false;            // --remote: run even if an identical request has a stored result
  RemoteFlags flags;
};

// Exit codes (client/cli_common.h, documented in the README): 0 ok, 2 bad
// SPEC or arguments, 3 bad model, input or output file, 4 the run failed;
// remote runs add 5-11.
int run_trace_command(const TraceCommand& cmd);

}  // namespace loom::client
