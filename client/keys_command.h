// `loom keys create NAME --data-dir DIR`: operator key management. Works on
// the server's data directory directly (the server keeps only key hashes).
#pragma once

#include <string>

namespace loom::client {

// Prints the new key as the last line; exit code 0, or 3 when the store fails.
int run_keys_create(const std::string& name, const std::string& data_dir);

}  // namespace loom::client
