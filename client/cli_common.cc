#include "client/cli_common.h"

#include <iostream>

namespace loom::client {

int exit_code_for(const LoomError& error) {
  if (dynamic_cast<const ConnectionError*>(&error)) return kExitConnection;
  if (dynamic_cast<const AuthError*>(&error)) return kExitAuth;
  if (dynamic_cast<const VersionError*>(&error)) return kExitVersion;
  if (dynamic_cast<const ValidationError*>(&error)) return kExitRunFailed;
  if (dynamic_cast<const QuotaError*>(&error)) return kExitQuota;
  if (dynamic_cast<const NotFoundError*>(&error)) return kExitNotFound;
  if (dynamic_cast<const ExecutionError*>(&error)) return kExitRunFailed;
  if (dynamic_cast<const TimeoutError*>(&error)) return kExitTimeout;
  if (dynamic_cast<const CancelledError*>(&error)) return kExitCancelled;
  return kExitOther;
}

void add_remote_flags(CLI::App* cmd, RemoteFlags& flags) {
  cmd->add_option("--host", flags.host, "server address http://HOST:PORT (default: $LOOM_HOST)");
  cmd->add_option("--api-key", flags.api_key, "API key (default: $LOOM_API_KEY)");
  cmd->add_flag("-v,--verbose", flags.verbose, "keep each job state on its own line");
  cmd->add_flag("-q,--quiet", flags.quiet, "no status line or progress bar");
}

ClientOptions client_options(const RemoteFlags& flags) {
  ClientOptions o;
  o.host = flags.host;
  o.api_key = flags.api_key;
  o.verbose = flags.verbose;
  o.quiet = flags.quiet;
  return o;
}

int run_guarded(const std::string& command, const std::function<int()>& body) {
  try {
    return body();
  } catch (const LoomError& e) {
    std::cerr << "loom " << command << ": " << e.what() << "\n";
    return exit_code_for(e);
  } catch (const std::exception& e) {
    std::cerr << "loom " << command << ": " << e.what() << "\n";
    return kExitOther;
  }
}

}  // namespace loom::client
