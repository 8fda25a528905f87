// `loom-server keys create NAME | list | revoke KEY_ID --data-dir DIR`:
// operator key management on the server's data directory (only SHA-256
// hashes of keys are stored). A running server sees a revoked key refused
// within a second (JobService re-checks cached keys that often).
#pragma once

namespace loom::server {

// argv[0] is "loom-server", argv[1] "keys". Exit codes: 0 done, 2 usage,
// 3 the store failed, 7 no such key (revoke).
int run_keys_command(int argc, char** argv);

}  // namespace loom::server
