// Processes `loom cluster` starts and stops: detached children that outlive
// it (found again later by pid and start time, so a reused pid is never
// mistaken for ours), and short commands whose output it reads (sbatch,
// squeue, scancel).
// Thread safety: free functions; spawn_detached forks, call it before
// starting threads.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "graph/status.h"

namespace loom::server {

struct ProcessId {
  pid_t pid = 0;
  uint64_t start_ticks = 0;  // /proc/PID/stat's starttime
};

// Starts argv[0] (a path) in a session of its own, stdin from /dev/null,
// stdout and stderr appended to `log`, with `env` added to this process's.
Result<ProcessId> spawn_detached(const std::vector<std::string>& argv, const std::string& log,
                                 const std::vector<std::pair<std::string, std::string>>& env = {});
// True while the process runs (a zombie or a different process under the
// same pid counts as gone).
bool process_alive(const ProcessId& id);
// SIGTERM to its process group, then SIGKILL after `grace`; true once gone.
bool stop_process(const ProcessId& id, std::chrono::milliseconds grace);

struct CommandOutput {
  int exit_code = -1;  // -1: killed after the timeout
  std::string output;  // stdout and stderr, interleaved
};
// Runs argv (argv[0] looked up on PATH) to its end or `timeout`.
Result<CommandOutput> run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout);

}  // namespace loom::server
