// The `loom` commands that talk to a loom-server about jobs and models:
// models, jobs, status, wait, result, cancel. Each returns an exit code
// (client/cli_common.h) and prints what went wrong on stderr; results go to
// stdout so scripts can read them.
#pragma once

#include <string>

#include "client/cli_common.h"

namespace loom::client {

int run_models_command(const RemoteFlags& flags, bool json);
int run_jobs_command(const RemoteFlags& flags, bool json);
int run_status_command(const RemoteFlags& flags, const std::string& job_id, bool json);
// Follows the job with the status display; exit 0 when it COMPLETED, 4 for
// ERROR, 9 for CANCELLED, 8 when `timeout_s` (> 0) passed first.
int run_wait_command(const RemoteFlags& flags, const std::string& job_id, double timeout_s);
// Writes the result as a safetensors file (or the zstd bytes as sent with `compressed`).
int run_result_command(const RemoteFlags& flags, const std::string& job_id, const std::string& output,
                       bool compressed);
int run_cancel_command(const RemoteFlags& flags, const std::string& job_id);

}  // namespace loom::client
