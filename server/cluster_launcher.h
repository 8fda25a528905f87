// `loom cluster up|status|down` (server/cluster_main.cc): starts the
// servers of a ClusterConfig on this machine and its worker groups through
// a launcher, then finds them again to report on and stop them.
//
// - Servers (`servers.count` loom-servers) run here, where `up` runs: the
//   login or service node of an HPC site. Their logs go to STATE/logs.
// - Workers: launcher "slurm" renders one sbatch script per worker group
//   (STATE/GROUP.sbatch: the group's #SBATCH options, `module load`, env,
//   then `srun` one loom-worker per node) and submits it with the real
//   sbatch; launcher "local" starts the same loom-worker command lines here
//   (one per node of the group; `modules` do not apply).
// - STATE/state.json records what was started (pids with their start times,
//   Slurm job ids), so status and down need only the state directory, and a
//   half-finished `up` is undone by `down`.
// Binaries are found beside the running one (loom-server, loom-worker):
// with Slurm, that directory must be on the filesystem the nodes share.
#pragma once

#include <chrono>
#include <iosfwd>
#include <string>

#include "graph/status.h"
#include "server/cluster_config.h"

namespace loom::server {

struct ClusterCommandOptions {
  std::string state_dir = ".loom-cluster";
  std::string launcher = "slurm";  // or "local"
  std::string bin_dir;             // where loom-server and loom-worker are
  std::chrono::milliseconds wait{0};  // up: how long to wait for every worker's heartbeat
};

// Each prints what it does to `out` and returns the first failure.
Status cluster_up(const ClusterConfig& config, const std::string& config_path, const ClusterCommandOptions& options,
                  std::ostream& out);
// Fails (UNAVAILABLE) when a server or worker of the cluster is not running.
Status cluster_status(const ClusterCommandOptions& options, std::ostream& out);
Status cluster_down(const ClusterCommandOptions& options, std::ostream& out);

// The sbatch script of one group (public for tests).
std::string render_sbatch(const ClusterConfig& config, const WorkerGroupConfig& group,
                          const ClusterCommandOptions& options);

}  // namespace loom::server
