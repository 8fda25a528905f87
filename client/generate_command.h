// `loom generate`: generation with per-step saves and steering vectors,
// locally (MODEL is a GPT-2 or Llama checkpoint directory) or with --remote
// on a loom-server (MODEL is a model key). Both run client::Trace with
// RunOptions::generation, so they take the same code path.
//
// OUT holds "tokens" [B, T + N] (prompt included, left-padded across
// prompts of different lengths) and one tensor per --save SPEC: @K saves
// step K; @all (or @A:B, @A:) saves each step as SPEC@K. Step 0 is the whole
// prompt [B, T, ...], each later step the new position [B, 1, ...].
// --steer SPEC=FILE[:SCALE] adds FILE's single tensor times SCALE to the
// value at SPEC, broadcast over batch and positions, at every step (or at
// the steps SPEC's @ names): llama.cpp's --control-vector.
// Thread safety: called from main.
#pragma once

#include <string>
#include <vector>

#include "client/cli_common.h"

namespace loom::client {

struct GenerateCommand {
  std::string model;
  std::string inputs;
  std::vector<std::string> prompts;
  std::string tokenizer;            // for prompts; default: the local checkpoint directory
  int64_t max_new_tokens = 16;
  double temperature = 0;
  int64_t top_k = 0;
  double top_p = 1.0;
  uint64_t seed = 0;
  std::vector<int64_t> stop_ids;    // empty: the model's eos
  std::vector<std::string> saves;
  std::vector<std::string> steers;  // SPEC=FILE[:SCALE]
  std::string output;
  std::string device = "cpu";
  std::string dtype;                // Llama compute dtype; "": the checkpoint's
  bool remote = false;
  bool no_wait = false;
  RemoteFlags flags;
};

// Exit codes as `loom trace` (client/cli_common.h).
int run_generate_command(const GenerateCommand& cmd);

}  // namespace loom::client
