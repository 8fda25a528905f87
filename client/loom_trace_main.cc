// `loom-trace`: the subcommands of `loom` that need LibTorch (trace,
// generate, make-checkpoint, make-inputs). `loom` runs this binary for them, so its
// remote subcommands start without loading LibTorch; its arguments are
// those of `loom` (argv[1] is the subcommand).
#include <ATen/ATen.h>
#include <CLI/CLI.hpp>

#include <iostream>

#include "client/generate_command.h"
#include "client/trace_command.h"
#include "runtime/gpt2_config.h"
#include "runtime/llama_config.h"
#include "runtime/safetensors.h"

int main(int argc, char** argv) {
  CLI::App app{"loom: run intervention graphs on neural networks"};
  app.name("loom");
  app.require_subcommand(1);

  // Flags of every command that talks to a loom-server.
  loom::client::RemoteFlags remote;

  loom::client::TraceCommand trace;
  CLI::App* tr = app.add_subcommand("trace", "run a model with hook points saved (locally, or on a server with --remote)");
  tr->add_option("model", trace.model, "TorchScript file or GPT-2 checkpoint directory; with --remote, a model key")
      ->required();
  tr->add_option("--inputs", trace.inputs, "safetensors file with inputs named \"0\", \"1\", ...");
  tr->add_option("--prompt", trace.prompts, "text input instead of --inputs (repeatable: one invoke each)");
  tr->add_option("--tokenizer", trace.tokenizer, "directory with tokenizer.json or vocab.json + merges.txt "
                                                 "(default: the checkpoint directory)");
  tr->add_option("--save", trace.saves, "SPEC to save: PATH.output, PATH.output.K, PATH.input.K, optionally @N");
  tr->add_option("--grad", trace.grads, "SPEC whose gradient d(loss)/d(value) to save as grad:SPEC (needs --loss)");
  tr->add_option("--loss", trace.loss, "the loss --grad differentiates: lm (next-token cross-entropy on the inputs)")
      ->check(CLI::IsMember({"lm"}));
  tr->add_option("--cache", trace.cache, "module PATH whose output to save as PATH.output (repeatable; all: every module)");
  tr->add_flag("--cache-inputs", trace.cache_inputs, "with --cache: save each module's input 0 as PATH.input too");
  tr->add_option("-o,--output", trace.output, "safetensors file to write (not with --no-wait)");
  tr->add_option("--device", trace.device, "cpu or cuda:N (local runs)");
  tr->add_flag("--remote", trace.remote, "run on the loom-server at --host / $LOOM_HOST");
  tr->add_flag("--no-wait", trace.no_wait, "with --remote: submit, print the job ID (last line) and return");
  tr->add_option("--timeout", trace.timeout_s, "with --remote: stop waiting after this many seconds (the job keeps running)")
      ->check(CLI::NonNegativeNumber);
  tr->add_flag("--no-cache", trace.no_cache, "with --remote: run even if an identical request has a stored result");
  loom::client::add_remote_flags(tr, remote);

  loom::client::GenerateCommand gen;
  CLI::App* ge = app.add_subcommand("generate", "generate tokens with per-step saves and steering (locally or --remote)");
  ge->add_option("model", gen.model, "GPT-2 or Llama checkpoint directory; with --remote, a model key")->required();
  ge->add_option("--inputs", gen.inputs, "safetensors file with the prompt ids as \"0\" [B, T]");
  ge->add_option("--prompt", gen.prompts, "prompt text instead of --inputs (repeatable: one row each)");
  ge->add_option("--tokenizer", gen.tokenizer, "directory with tokenizer.json or vocab.json + merges.txt "
                                               "(default: the checkpoint directory)");
  ge->add_option("--max-new-tokens", gen.max_new_tokens, "tokens to generate")->required();
  ge->add_option("--temperature", gen.temperature, "0: greedy (default); > 0: sample");
  ge->add_option("--top-k", gen.top_k, "sample among the K most likely (0: off)");
  ge->add_option("--top-p", gen.top_p, "sample within probability mass P (1: off)");
  ge->add_option("--seed", gen.seed, "sampling seed: the same seed gives the same tokens");
  ge->add_option("--stop-id", gen.stop_ids, "a token id that ends a row (repeatable; default: the model's eos)");
  ge->add_option("--save", gen.saves, "SPEC to save; @K one step, @A:B, @A: or @all one tensor per step (SPEC@K)");
  ge->add_option("--steer", gen.steers, "SPEC=FILE[:SCALE]: add FILE's one tensor x SCALE at SPEC (every step unless @)");
  ge->add_option("-o,--output", gen.output, "safetensors file to write: tokens and the saves");
  ge->add_option("--device", gen.device, "cpu or cuda:N (local runs)");
  ge->add_option("--dtype", gen.dtype, "Llama compute dtype: float32, float16 or bfloat16 (default: the checkpoint's)");
  ge->add_flag("--remote", gen.remote, "run on the loom-server at --host / $LOOM_HOST");
  ge->add_flag("--no-wait", gen.no_wait, "with --remote: submit, print the job ID (last line) and return");
  loom::client::add_remote_flags(ge, remote);

  std::string ckpt_dir, shape = "tiny", arch = "gpt2", ck_dtype = "float32", rope;
  int shards = 1;
  int64_t kv_heads = 0;
  bool tied = false;
  uint64_t seed = 0;
  bool prefix = false;
  int64_t layers = 0, embd = 0, heads = 0, vocab = 0;
  CLI::App* mk = app.add_subcommand("make-checkpoint", "write a seeded random GPT-2 or Llama checkpoint (tests, demos, benchmarks)");
  mk->add_option("dir", ckpt_dir, "directory to write config.json and the weights into")->required();
  mk->add_option("--arch", arch, "gpt2 (default), llama or qwen2")->check(CLI::IsMember({"gpt2", "llama", "qwen2"}));
  mk->add_option("--shape", shape, "tiny (2 layers, 64 wide) or small (GPT-2 small; Llama: 12 layers, 768 wide, 4 kv heads)")
      ->check(CLI::IsMember({"tiny", "small"}));
  mk->add_option("--dtype", ck_dtype, "Llama: float32, float16 or bfloat16")
      ->check(CLI::IsMember({"float32", "float16", "bfloat16"}));
  mk->add_option("--shards", shards, "Llama: split the weights over N files with an index")->check(CLI::Range(1, 999));
  mk->add_option("--kv-heads", kv_heads, "Llama: override num_key_value_heads");
  mk->add_option("--rope-scaling", rope, "Llama: linear:F, dynamic:F or llama3:F (low 1, high 4, original 8192)");
  mk->add_flag("--tied", tied, "Llama: tie lm_head to the embeddings (no lm_head.weight)");
  mk->add_option("--seed", seed, "random seed; the same seed writes the same bytes");
  mk->add_option("--layers", layers, "override n_layer");
  mk->add_option("--embd", embd, "override n_embd");
  mk->add_option("--heads", heads, "override n_head");
  mk->add_option("--vocab", vocab, "override vocab_size");
  mk->add_flag("--prefix", prefix, "name tensors with a \"transformer.\" prefix");

  std::string inputs_file;
  int64_t batch = 1, seq = 8, in_vocab = 1000;
  uint64_t in_seed = 0;
  CLI::App* mi = app.add_subcommand("make-inputs", "write seeded random token ids as input \"0\" of a safetensors file");
  mi->add_option("file", inputs_file, "safetensors file to write")->required();
  mi->add_option("--batch", batch, "rows")->check(CLI::Range(int64_t{1}, int64_t{4096}));
  mi->add_option("--seq", seq, "tokens per row")->check(CLI::Range(int64_t{1}, int64_t{1 << 20}));
  mi->add_option("--vocab", in_vocab, "ids are drawn from [0, vocab)")->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  mi->add_option("--seed", in_seed, "random seed");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (tr->parsed()) {
    trace.flags = remote;
    return loom::client::run_trace_command(trace);
  }
  if (mi->parsed()) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(in_seed);
    at::Tensor ids = at::randint(0, in_vocab, {batch, seq}, gen, at::kLong);
    loom::Status s = loom::runtime::write_safetensors_file(inputs_file, {{"0", ids}});
    if (!s.ok()) {
      std::cerr << "loom make-inputs: " << s.message() << "\n";
      return 3;
    }
    std::cout << "wrote " << inputs_file << ": \"0\" int64 [" << batch << ", " << seq << "]\n";
    return 0;
  }
  if (ge->parsed()) {
    gen.flags = remote;
    return loom::client::run_generate_command(gen);
  }
  if (mk->parsed() && arch != "gpt2") {
    auto config = shape == "small" ? loom::runtime::LlamaConfig::small() : loom::runtime::LlamaConfig::tiny();
    config.model_type = arch;
    if (layers > 0) config.num_hidden_layers = layers;
    if (embd > 0) config.hidden_size = embd;
    if (heads > 0) config.num_attention_heads = heads;
    if (kv_heads > 0) config.num_key_value_heads = kv_heads;
    if (vocab > 0) config.vocab_size = vocab;
    config.tie_word_embeddings = tied;
    if (!rope.empty()) {
      const size_t colon = rope.find(':');
      config.rope_scaling.type = rope.substr(0, colon);
      try {
        config.rope_scaling.factor = colon == std::string::npos ? 0 : std::stod(rope.substr(colon + 1));
      } catch (const std::exception&) {
        config.rope_scaling.factor = 0;
      }
      if (config.rope_scaling.factor <= 0) {
        std::cerr << "loom make-checkpoint: --rope-scaling must be TYPE:FACTOR, e.g. llama3:8\n";
        return 2;
      }
    }
    loom::Status s = loom::runtime::write_random_llama_checkpoint(ckpt_dir, config, seed, {ck_dtype, shards});
    if (!s.ok()) {
      std::cerr << "loom make-checkpoint: " << s.message() << "\n";
      return s.code() == loom::StatusCode::kInvalidArgument ? 2 : 3;
    }
    std::cout << "wrote " << ckpt_dir << "/config.json and the " << arch << " weights\n";
    return 0;
  }
  if (mk->parsed()) {
    auto config = shape == "small" ? loom::runtime::Gpt2Config::small() : loom::runtime::Gpt2Config::tiny();
    if (layers > 0) config.n_layer = layers;
    if (embd > 0) config.n_embd = embd;
    if (heads > 0) config.n_head = heads;
    if (vocab > 0) config.vocab_size = vocab;
    if (config.n_embd % config.n_head != 0) {
      std::cerr << "loom make-checkpoint: --embd must be divisible by --heads\n";
      return 2;
    }
    loom::Status s = loom::runtime::write_random_gpt2_checkpoint(ckpt_dir, config, seed, prefix);
    if (!s.ok()) {
      std::cerr << "loom make-checkpoint: " << s.message() << "\n";
      return 3;
    }
    std::cout << "wrote " << ckpt_dir << "/config.json and model.safetensors\n";
    return 0;
  }
  return 2;
}
