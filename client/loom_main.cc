// The `loom` command-line tool.
#include <CLI/CLI.hpp>

#include <iostream>

#include "client/trace_command.h"
#include "runtime/gpt2_config.h"

int main(int argc, char** argv) {
  CLI::App app{"loom: run intervention graphs on neural networks"};
  app.require_subcommand(1);

  loom::client::TraceCommand trace;
  CLI::App* tr = app.add_subcommand("trace", "run a model with hook points saved (locally)");
  tr->add_option("model", trace.model, "TorchScript file or GPT-2 checkpoint directory")->required();
  tr->add_option("--inputs", trace.inputs, "safetensors file with inputs named \"0\", \"1\", ...")->required();
  tr->add_option("--save", trace.saves, "SPEC to save: PATH.output, PATH.output.K, PATH.input.K, optionally @N")
      ->required();
  tr->add_option("-o,--output", trace.output, "safetensors file to write")->required();
  tr->add_option("--device", trace.device, "cpu or cuda:N");

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

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (tr->parsed()) return loom::client::run_trace_command(trace);
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
