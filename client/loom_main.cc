// The `loom` command-line tool.
#include <CLI/CLI.hpp>

#include <iostream>

#include "client/remote_commands.h"
#include "client/keys_command.h"
#include "client/trace_command.h"
#include "runtime/gpt2_config.h"
#include "runtime/safetensors.h"

#include <ATen/ATen.h>

int main(int argc, char** argv) {
  CLI::App app{"loom: run intervention graphs on neural networks"};
  app.require_subcommand(1);

  // Flags of every command that talks to a loom-server.
  loom::client::RemoteFlags remote;
  auto add_remote_flags = [&remote](CLI::App* cmd) {
    cmd->add_option("--host", remote.host, "server address http://HOST:PORT (default: $LOOM_HOST)");
    cmd->add_option("--api-key", remote.api_key, "API key (default: $LOOM_API_KEY)");
    cmd->add_flag("-v,--verbose", remote.verbose, "keep each job state on its own line");
    cmd->add_flag("-q,--quiet", remote.quiet, "no status line or progress bar");
  };

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
  add_remote_flags(tr);

  bool json = false;
  std::string job_id, result_out;
  double wait_timeout = 0;
  bool compressed = false;
  CLI::App* models_cmd = app.add_subcommand("models", "list the server's models");
  models_cmd->add_flag("--json", json, "print JSON");
  add_remote_flags(models_cmd);
  CLI::App* jobs_cmd = app.add_subcommand("jobs", "list this key's jobs, newest first");
  jobs_cmd->add_flag("--json", json, "print JSON");
  add_remote_flags(jobs_cmd);
  CLI::App* status_cmd = app.add_subcommand("status", "show a job's status");
  status_cmd->add_option("id", job_id, "job ID")->required();
  status_cmd->add_flag("--json", json, "print the server's JSON snapshot");
  add_remote_flags(status_cmd);
  CLI::App* wait_cmd = app.add_subcommand("wait", "follow a job until it ends (exit 0 COMPLETED, 4 ERROR, 9 CANCELLED)");
  wait_cmd->add_option("id", job_id, "job ID")->required();
  wait_cmd->add_option("--timeout", wait_timeout, "stop waiting after this many seconds (exit 8)")
      ->check(CLI::NonNegativeNumber);
  add_remote_flags(wait_cmd);
  CLI::App* result_cmd = app.add_subcommand("result", "download a completed job's result");
  result_cmd->add_option("id", job_id, "job ID")->required();
  result_cmd->add_option("-o,--output", result_out, "file to write (safetensors)")->required();
  result_cmd->add_flag("--compressed", compressed, "write the zstd-compressed bytes as sent");
  add_remote_flags(result_cmd);
  CLI::App* cancel_cmd = app.add_subcommand("cancel", "cancel a job (a running job stops at its next hook point)");
  cancel_cmd->add_option("id", job_id, "job ID")->required();
  add_remote_flags(cancel_cmd);

  std::string ckpt_dir, shape = "tiny";
  uint64_t seed = 0;
  bool prefix = false;
  int64_t layers = 0, embd = 0, heads = 0, vocab = 0;
  std::string key_name, key_dir;
  CLI::App* keys_cmd = app.add_subcommand("keys", "API key management for operators (on the server machine)");
  keys_cmd->require_subcommand(1);
  CLI::App* keys_create = keys_cmd->add_subcommand("create", "create an API key; prints it as the last line");
  keys_create->add_option("name", key_name, "who the key is for")->required();
  keys_create->add_option("--data-dir", key_dir, "the server's --data-dir")->required();

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
  if (models_cmd->parsed()) return loom::client::run_models_command(remote, json);
  if (jobs_cmd->parsed()) return loom::client::run_jobs_command(remote, json);
  if (status_cmd->parsed()) return loom::client::run_status_command(remote, job_id, json);
  if (wait_cmd->parsed()) return loom::client::run_wait_command(remote, job_id, wait_timeout);
  if (result_cmd->parsed()) return loom::client::run_result_command(remote, job_id, result_out, compressed);
  if (cancel_cmd->parsed()) return loom::client::run_cancel_command(remote, job_id);
  if (keys_create->parsed()) return loom::client::run_keys_create(key_name, key_dir);
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
