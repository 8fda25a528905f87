// `loom-trace`: the subcommands of `loom` that need LibTorch (trace,
// make-checkpoint, make-inputs). `loom` runs this binary for them, so its
// remote subcommands start without loading LibTorch; its arguments are
// those of `loom` (argv[1] is the subcommand).
#include <ATen/ATen.h>
#include <CLI/CLI.hpp>

#include <iostream>

#include "client/trace_command.h"
#include "runtime/gpt2_config.h"
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
  tr->add_option("--inputs", trace.inputs, "safetensors file with inputs named \"0\", \"1\", ...")->required();
  tr->add_option("--save", trace.saves, "SPEC to save: PATH.output, PATH.output.K, PATH.input.K, optionally @N")
      ->required();
  tr->add_option("-o,--output", trace.output, "safetensors file to write (not with --no-wait)");
  tr->add_option("--device", trace.device, "cpu or cuda:N (local runs)");
  tr->add_flag("--remote", trace.remote, "run on the loom-server at --host / $LOOM_HOST");
  tr->add_flag("--no-wait", trace.no_wait, "with --remote: submit, print the job ID (last line) and return");
  tr->add_option("--timeout", trace.timeout_s, "with --remote: stop waiting after this many seconds (the job keeps running)")
      ->check(CLI::NonNegativeNumber);
  tr->add_flag("--no-cache", trace.no_cache, "with --remote: run even if an identical request has a stored result");
  loom::client::add_remote_flags(tr, remote);

  std::string ckpt_dir, shape = "tiny";
  uint64_t seed = 0;
  bool prefix = false;
  int64_t layers = 0, embd = 0, heads = 0, vocab = 0;
  CLI::App* mk = app.add_subcommand("make-checkpoint", "write a seeded random GPT-2 checkpoint (tests, demos, benchmarks)");
  mk->add_option("dir", ckpt_dir, "directory to write config.json and model.safetensors into")->required();
  mk->add_option("--shape", shape, "tiny (2 layers, 64 wide) or small (GPT-2 small: 12 layers, 768 wide)")
      ->check(CLI::IsMember({"tiny", "small"}));
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
