#include "server/keys_command.h"

#include <CLI/CLI.hpp>

#include <filesystem>
#include <iostream>
#include <memory>

#include "server/delivery.h"
#include "server/redis_job_store.h"
#include "server/sqlite_job_store.h"

namespace loom::server {
namespace {

Result<std::unique_ptr<JobStore>> open_store(const std::string& data_dir, const std::string& redis_url, bool create) {
  if (!redis_url.empty()) {
    LOOM_ASSIGN_OR_RETURN(std::shared_ptr<Redis> redis, Redis::open(redis_url));
    return std::unique_ptr<JobStore>(std::make_unique<RedisJobStore>(std::move(redis)));
  }
  if (data_dir.empty()) return invalid_argument("give the server's --data-dir (embedded) or --redis URL (scale-out)");
  std::error_code ec;
  if (create) std::filesystem::create_directories(data_dir, ec);
  if (!create && !std::filesystem::exists(data_dir + "/loom.db", ec)) {
    return not_found("no loom-server data in " + data_dir + " (no loom.db): give the server's --data-dir");
  }
  LOOM_ASSIGN_OR_RETURN(auto store, SqliteJobStore::open(data_dir + "/loom.db"));
  return std::unique_ptr<JobStore>(std::move(store));
}

int report(const Status& s) {
  std::cerr << "loom-server keys: " << s.message() << "\n";
  return s.code() == StatusCode::kNotFound ? 7 : 3;
}

}  // namespace

int run_keys_command(int argc, char** argv) {
  CLI::App app{"loom-server keys: API key management for operators"};
  app.name("loom-server keys");
  app.require_subcommand(1);
  std::string name, key_id, data_dir, redis_url;
  CLI::App* create = app.add_subcommand("create", "create an API key; prints it as the last line (shown once)");
  create->add_option("name", name, "who the key is for")->required();
  create->add_option("--data-dir", data_dir, "the server's --data-dir (embedded)");
  create->add_option("--redis", redis_url, "the cluster's Redis, redis://HOST:PORT (scale-out)");
  CLI::App* list = app.add_subcommand("list", "list the keys: id, name, creation time (never the keys)");
  list->add_option("--data-dir", data_dir, "the server's --data-dir (embedded)");
  list->add_option("--redis", redis_url, "the cluster's Redis, redis://HOST:PORT (scale-out)");
  CLI::App* revoke = app.add_subcommand("revoke", "revoke a key by its id (a running server refuses it within 1 s)");
  revoke->add_option("key_id", key_id, "the key's id, as `list` prints it")->required();
  revoke->add_option("--data-dir", data_dir, "the server's --data-dir (embedded)");
  revoke->add_option("--redis", redis_url, "the cluster's Redis, redis://HOST:PORT (scale-out)");
  try {
    app.parse(argc - 1, argv + 1);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  auto store = open_store(data_dir, redis_url, create->parsed());
  if (!store.ok()) return report(store.status());
  if (create->parsed()) {
    if (name.empty()) {
      std::cerr << "loom-server keys create: NAME must not be empty\n";
      return 2;
    }
    auto key = (*store)->create_key(name);
    if (!key.ok()) return report(key.status());
    std::cout << "created API key \"" << name << "\"; it is shown once, store it now "
              << "(clients read it from LOOM_API_KEY or --api-key):\n"
              << *key << std::endl;
    return 0;
  }
  if (list->parsed()) {
    auto keys = (*store)->list_keys();
    if (!keys.ok()) return report(keys.status());
    for (const ApiKey& k : *keys) std::cout << k.key_id << "  " << rfc3339(k.created_ms) << "  " << k.name << "\n";
    return 0;
  }
  Status s = (*store)->revoke_key(key_id);
  if (!s.ok()) return report(s);
  std::cout << "revoked API key " << key_id << "\n";
  return 0;
}

}  // namespace loom::server
