// loom-cluster, run as `loom cluster up|status|down` (loom execs it): a
// scale-out cluster from one config file (server/cluster_config.h), its
// servers here and its workers through Slurm or on this machine
// (server/cluster_launcher.h). Exit 0 on success, 2 for a bad command line
// or config, 3 when the cluster is not (all) running, 1 otherwise.
#include <CLI/CLI.hpp>

#include <filesystem>
#include <iostream>

#include "server/cluster_launcher.h"

int main(int argc, char** argv) {
  loom::server::ClusterCommandOptions opt;
  std::error_code ec;
  opt.bin_dir = std::filesystem::read_symlink("/proc/self/exe", ec).parent_path().string();
  if (ec) opt.bin_dir = std::filesystem::absolute(argv[0]).parent_path().string();
  if (const char* dir = std::getenv("LOOM_CLUSTER_STATE")) opt.state_dir = dir;

  CLI::App app{"loom cluster: start, inspect and stop a scale-out cluster (loom-servers and loom-workers)"};
  app.name("loom cluster");
  app.require_subcommand(1);
  std::string config_path;
  double wait_s = 0;
  CLI::App* up = app.add_subcommand("up", "start the servers here and the workers through the launcher");
  up->add_option("config", config_path, "the cluster config, YAML or JSON")->required();
  up->add_option("--launcher", opt.launcher, "slurm (sbatch, one job per worker group) or local (this machine)")
      ->check(CLI::IsMember({"slurm", "local"}));
  up->add_option("--wait", wait_s, "seconds to wait for every worker's heartbeat (0: do not wait)")
      ->check(CLI::Range(0.0, 86400.0));
  CLI::App* status = app.add_subcommand("status", "show the servers, squeue and the workers' heartbeats");
  CLI::App* down = app.add_subcommand("down", "cancel the workers, stop the servers, leave nothing running");
  for (CLI::App* cmd : {up, status, down}) {
    cmd->add_option("--state-dir", opt.state_dir, "where up records what it started (default $LOOM_CLUSTER_STATE or .loom-cluster)");
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  opt.wait = std::chrono::milliseconds(static_cast<int64_t>(wait_s * 1000));
  loom::Status s;
  if (up->parsed()) {
    auto config = loom::server::load_cluster_config(config_path);
    if (!config.ok()) {
      std::cerr << "loom cluster up: " << config.status().message() << "\n";
      return 2;
    }
    s = loom::server::cluster_up(*config, std::filesystem::absolute(config_path).string(), opt, std::cout);
  } else if (status->parsed()) {
    s = loom::server::cluster_status(opt, std::cout);
  } else {
    s = loom::server::cluster_down(opt, std::cout);
  }
  if (s.ok()) return 0;
  std::cerr << "loom cluster: " << s.message() << "\n";
  return s.code() == loom::StatusCode::kUnavailable && status->parsed() ? 3 : 1;
}
