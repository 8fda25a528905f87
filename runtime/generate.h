// Generation with a KV cache and per-step interventions, for any CausalLm
// (GPT-2, the Llama family), as transformers' generate(use_cache=True).
//
// Step 0 runs the whole prompt; every later step runs the one token chosen
// at the step before. A module's call index is the step, so a graph point
// `@K` addresses step K, and points covering several steps (Point::repeats:
// ModuleRef::steps / all_steps) make what depends on them run at every step
// (runtime/interleaver.h). Prompts of several invokes, or of one invoke,
// may differ in length only across invokes: they are left-padded, with the
// attention mask and position ids generate() makes (cumsum(mask) - 1, and 1
// on padding), so each row gets the tokens it gets alone.
//
// The result holds the graph's saves and "tokens" [B, T + N] int64: the
// prompt (left-padded), then the generated ids; a row that reached a stop
// token continues with the pad id. A stop node ends the whole generation.
// Points at steps a generation ended before (every row stopped) leave
// what needs them out of the result; points at or past max_new_tokens are
// refused before anything runs.
// Thread safety: one generate() per model at a time (see Model).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "graph/generation.h"
#include "runtime/causal_lm.h"
#include "runtime/execute.h"

namespace loom::runtime {

using graph::GenerateOptions;

// After each step: its index, each row's new token, seconds since the start.
struct TokenStep {
  int64_t step;
  std::vector<int64_t> tokens;
  double elapsed_s;
};
using TokenHandler = std::function<void(const TokenStep&)>;

// The name of the generated ids in RunOutput::saved.
constexpr char kTokensName[] = "tokens";

// Every invoke's input 0 is its prompt ids [rows, T_i] (integer).
Result<RunOutput> generate(CausalLm& model, const graph::Graph& graph,
                           const std::vector<std::vector<c10::IValue>>& invoke_inputs, const ExecOptions& options,
                           const GenerateOptions& gen, const TokenHandler& on_token = {});

}  // namespace loom::runtime
