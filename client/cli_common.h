// What the remote `loom` commands share: the --host / --api-key flags, the
// exit codes (documented in README.md, "Exit codes"), and the one place
// where a client exception becomes a message on stderr and an exit code.
// Thread safety: plain functions, called from main's thread.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>

#include "client/job_client.h"

namespace loom::client {

// Exit codes of the `loom` tool: what a script should do next.
enum ExitCode : int {
  kExitOk = 0,
  kExitOther = 1,       // anything else: a server answer that makes no sense, a corrupt download,
                        // `loom result` on a job that has not finished
  kExitUsage = 2,       // bad arguments, SPEC or job ID
  kExitFile = 3,        // a local file (model, inputs, output) cannot be read or written
  kExitRunFailed = 4,   // the graph is invalid for the model, or the run failed (locally or on the server)
  kExitConnection = 5,  // no server given, or it cannot be reached
  kExitAuth = 6,        // no API key, or the server refused it
  kExitNotFound = 7,    // no such job (for this key) or model
  kExitTimeout = 8,     // --timeout passed (the job keeps running)
  kExitCancelled = 9,   // the job was cancelled
  kExitVersion = 10,    // client and server speak different protocol versions
  kExitQuota = 11,      // the server's queue is full or the request too large: retry later / make it smaller
};

int exit_code_for(const LoomError& error);

// Flags every remote command takes.
struct RemoteFlags {
  std::string host;     // --host; empty: LOOM_HOST
  std::string api_key;  // --api-key; empty: LOOM_API_KEY
  bool verbose = false; // --verbose: each state on its own line
  bool quiet = false;   // --quiet: no status line or progress bar
};

ClientOptions client_options(const RemoteFlags& flags);
// Adds --host, --api-key, -v and -q to `command`, stored in `flags`.
void add_remote_flags(CLI::App* command, RemoteFlags& flags);

// Runs `body`; a LoomError (or any std::exception) thrown from it is printed
// as "loom COMMAND: message" on stderr and mapped to its exit code.
int run_guarded(const std::string& command, const std::function<int()>& body);

}  // namespace loom::client
