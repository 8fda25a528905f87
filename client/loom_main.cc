// The `loom` command-line tool. The remote subcommands and tokenize run
// here, without LibTorch (it costs ~0.3 s and ~150 MiB to load); trace,
// generate, make-checkpoint and make-inputs run in `loom-trace`, and
// `cluster` in `loom-cluster`, both installed beside it.
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>

#include "client/remote_commands.h"
#include "text/tokenizer.h"

namespace {

constexpr const char* kLocalCommands[] = {"trace", "generate", "make-checkpoint", "make-inputs"};

// Replaces this process with `tool` (loom-trace or loom-cluster), installed
// beside loom, same arguments.
int run_beside(const char* tool, char** argv) {
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  std::string bin = (ec ? std::filesystem::path(argv[0]) : self).parent_path() / tool;
  ::execv(bin.c_str(), argv);
  std::cerr << "loom: cannot run " << bin << ": " << std::strerror(errno) << " (" << tool
            << " is built and installed beside loom)\n";
  return 1;
}

// `loom tokenize DIR TEXT [--json]`: exit 3 when the tokenizer cannot be
// read, 2 when the text cannot be encoded (invalid UTF-8).
int run_tokenize(const std::string& dir, const std::string& text, bool json, bool special) {
  auto tok = loom::text::Tokenizer::load_dir(dir);
  if (!tok.ok()) {
    std::cerr << "loom tokenize: " << tok.status().message() << "\n";
    return 3;
  }
  auto ids = tok->encode(text, special);
  if (!ids.ok()) {
    std::cerr << "loom tokenize: " << ids.status().message() << "\n";
    return 2;
  }
  std::string out = json ? "[" : "";
  for (size_t i = 0; i < ids->size(); ++i) {
    if (i > 0) out += json ? "," : " ";
    out += std::to_string((*ids)[i]);
  }
  std::cout << out << (json ? "]" : "") << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) {
    for (const char* local : kLocalCommands) {
      if (std::strcmp(argv[1], local) == 0) return run_beside("loom-trace", argv);
    }
    // The cluster commands are the server side's (Redis, Slurm): loom-cluster.
    if (std::strcmp(argv[1], "cluster") == 0) return run_beside("loom-cluster", argv + 1);
  }
  CLI::App app{"loom: run intervention graphs on neural networks"};
  app.require_subcommand(1);
  // Listed for --help; run by loom-trace and loom-cluster (see run_beside above).
  app.add_subcommand("trace", "run a model with hook points saved (locally, or on a server with --remote)");
  app.add_subcommand("generate", "generate tokens with per-step saves and steering (locally or --remote)");
  app.add_subcommand("cluster", "up|status|down: a scale-out cluster from a config file (Slurm or --launcher local)");
  app.add_subcommand("make-checkpoint", "write a seeded random GPT-2 or Llama checkpoint (tests, demos, benchmarks)");

  std::string tok_dir, tok_text;
  bool tok_json = false, tok_special = false;
  CLI::App* tokenize_cmd = app.add_subcommand("tokenize", "print the token ids of TEXT (space-separated, or --json)");
  tokenize_cmd->add_option("dir", tok_dir, "directory with tokenizer.json or vocab.json + merges.txt")->required();
  tokenize_cmd->add_option("text", tok_text, "the text")->required();
  tokenize_cmd->add_flag("--json", tok_json, "print a JSON array");
  tokenize_cmd->add_flag("--special", tok_special, "match special tokens written in the text");
  app.add_subcommand("make-inputs", "write seeded random token ids as input \"0\" of a safetensors file");

  // Flags of every command that talks to a loom-server.
  loom::client::RemoteFlags remote;

  bool json = false;
  std::string job_id, result_out;
  double wait_timeout = 0;
  bool compressed = false;
  CLI::App* models_cmd = app.add_subcommand("models", "list the server's models");
  models_cmd->add_flag("--json", json, "print JSON");
  loom::client::add_remote_flags(models_cmd, remote);
  CLI::App* jobs_cmd = app.add_subcommand("jobs", "list this key's jobs, newest first");
  jobs_cmd->add_flag("--json", json, "print JSON");
  loom::client::add_remote_flags(jobs_cmd, remote);
  CLI::App* status_cmd = app.add_subcommand("status", "show a job's status");
  status_cmd->add_option("id", job_id, "job ID")->required();
  status_cmd->add_flag("--json", json, "print the server's JSON snapshot");
  loom::client::add_remote_flags(status_cmd, remote);
  CLI::App* wait_cmd = app.add_subcommand("wait", "follow a job until it ends (exit 0 COMPLETED, 4 ERROR, 9 CANCELLED)");
  wait_cmd->add_option("id", job_id, "job ID")->required();
  wait_cmd->add_option("--timeout", wait_timeout, "stop waiting after this many seconds (exit 8)")
      ->check(CLI::NonNegativeNumber);
  loom::client::add_remote_flags(wait_cmd, remote);
  CLI::App* result_cmd = app.add_subcommand("result", "download a completed job's result");
  result_cmd->add_option("id", job_id, "job ID")->required();
  result_cmd->add_option("-o,--output", result_out, "file to write (safetensors)")->required();
  result_cmd->add_flag("--compressed", compressed, "write the zstd-compressed bytes as sent");
  loom::client::add_remote_flags(result_cmd, remote);
  CLI::App* cancel_cmd = app.add_subcommand("cancel", "cancel a job (a running job stops at its next hook point)");
  cancel_cmd->add_option("id", job_id, "job ID")->required();
  loom::client::add_remote_flags(cancel_cmd, remote);

  // Key management belongs to the server (it owns the key store): say where it went.
  CLI::App* keys_cmd = app.add_subcommand("keys", "moved: `loom-server keys create|list|revoke ... --data-dir DIR`");
  keys_cmd->allow_extras();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (tokenize_cmd->parsed()) return run_tokenize(tok_dir, tok_text, tok_json, tok_special);
  if (models_cmd->parsed()) return loom::client::run_models_command(remote, json);
  if (jobs_cmd->parsed()) return loom::client::run_jobs_command(remote, json);
  if (status_cmd->parsed()) return loom::client::run_status_command(remote, job_id, json);
  if (wait_cmd->parsed()) return loom::client::run_wait_command(remote, job_id, wait_timeout);
  if (result_cmd->parsed()) return loom::client::run_result_command(remote, job_id, result_out, compressed);
  if (cancel_cmd->parsed()) return loom::client::run_cancel_command(remote, job_id);
  if (keys_cmd->parsed()) {
    std::cerr << "loom keys: key management moved to the server's command: run `loom-server keys create NAME "
                 "--data-dir DIR` (or `list`, `revoke KEY_ID`) on the server machine\n";
    return 2;
  }
  return 2;
}
