// A scale-out cluster described in one file (YAML or JSON), read by
// `loom cluster up|status|down` (server/cluster_main.cc):
//
//   cluster:
//     name: demo                       # optional, default "loom"
//     redis: redis://10.0.0.5:6379     # the cluster's Redis (must be up)
//     blob_dir: /shared/loom/blobs     # results; on a filesystem every node mounts
//     servers: {count: 2, listen: "0.0.0.0:8080"}   # server i listens on PORT+i
//     workers:
//       - name: gpt2                   # worker group: one sbatch job
//         models: [{key: gpt2, path: /shared/ckpt/gpt2, device: "cuda:0"}]
//         partition: gpu               # the rest are sbatch's options
//         nodes: 2                     # one loom-worker per node
//         gpus_per_node: 1
//         cpus_per_task: 8
//         memory: 64G
//         time: "1-00:00:00"
//         env: {HF_HOME: /shared/hf}
//         modules: [cuda/12.2]         # `module load`, before the worker starts
//         lease_s: 30                  # loom-worker --lease
//         device_memory: 70G           # loom-worker --device-memory (HOT models per GPU)
//         host_memory: 200G            # loom-worker --host-memory (WARM models)
//
// Validation is strict: an unknown field, a wrong type (a quoted "2" where a
// count goes, a list where a name goes) or an impossible value (0 nodes, a
// cuda:1 model on a group with one GPU per node, a port past 65535) fails with
// its path named, e.g. `cluster.workers[1].gpus_per_node: ...`, before
// anything is started.
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "graph/status.h"
#include "server/models_config.h"

namespace loom::server {

struct WorkerGroupConfig {
  std::string name;  // [A-Za-z0-9._-]{1,64}; workers are named NAME-JOBID-TASK (Slurm) or NAME-N (local)
  std::vector<ModelSpec> models;
  std::string partition;  // "" = Slurm's default partition
  uint32_t nodes = 1;
  uint32_t gpus_per_node = 0;
  uint32_t cpus_per_task = 1;
  std::string memory;  // sbatch --mem ("16G"); "" = the partition's default
  std::string time;    // sbatch --time ("HH:MM:SS", "D-HH:MM:SS", minutes); "" = the partition's default
  std::vector<std::pair<std::string, std::string>> env;  // in file order
  std::vector<std::string> modules;
  double lease_s = 30;
  // loom-worker --device-memory / --host-memory (model tiers); "" = no limit.
  std::string device_memory;
  std::string host_memory;
};

struct ClusterConfig {
  std::string name = "loom";
  std::string redis;     // redis://HOST:PORT[/DB]
  std::string blob_dir;  // absolute (a relative one is made absolute against the config's directory)
  uint32_t server_count = 1;
  std::string server_host = "127.0.0.1";
  uint32_t server_port = 8080;  // server i listens on server_port + i; 0 = any free port each
  std::vector<WorkerGroupConfig> workers;
};

// `base_dir` resolves relative paths (blob_dir, model paths); the config
// file's directory when read by load_cluster_config.
Result<ClusterConfig> parse_cluster_config(const std::string& text, const std::string& base_dir);
Result<ClusterConfig> load_cluster_config(const std::string& path);

}  // namespace loom::server
