#include "client/keys_command.h"

#include <filesystem>
#include <iostream>

#include "server/sqlite_job_store.h"

namespace loom::client {

int run_keys_create(const std::string& name, const std::string& data_dir) {
  if (name.empty()) {
    std::cerr << "loom keys create: NAME must not be empty\n";
    return 2;
  }
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  auto store = server::SqliteJobStore::open(data_dir + "/loom.db");
  if (!store.ok()) {
    std::cerr << "loom keys create: " << store.status().message() << "\n";
    return 3;
  }
  auto key = (*store)->create_key(name);
  if (!key.ok()) {
    std::cerr << "loom keys create: " << key.status().message() << "\n";
    return 3;
  }
  std::cout << "created API key \"" << name << "\"; it is shown once, store it now "
            << "(clients read it from LOOM_API_KEY or --api-key):\n"
            << *key << std::endl;
  return 0;
}

}  // namespace loom::client
