// JobStore over one SQLite file (the embedded server's DATA_DIR/loom.db).
//
// The file is opened in WAL mode with synchronous=NORMAL: a commit appends to
// the WAL without an fsync (durable across a process crash, and across power
// loss up to the last checkpoint), readers never block the writer. Every
// SQLite error is converted here, once, into a Status: UNAVAILABLE when the
// file stayed locked past the busy timeout (another process holds it), else
// INTERNAL, the message naming the operation, the file and SQLite's text.
//
// Ownership: owns its connection and the prepared statements cached on it.
// Thread safety: safe from any thread. One connection guarded by one mutex:
// calls are serialised, each holds the mutex for its whole transaction. Calls
// do disk I/O, so make them from a thread that may block (a worker or store
// strand), never from an Asio I/O thread. Several stores (or processes) on
// one file are safe too: multi-statement writes run in BEGIN IMMEDIATE
// transactions and wait up to kBusyTimeoutMs for the write lock.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "server/job_store.h"

struct sqlite3;
struct sqlite3_stmt;

namespace loom::server {

class SqliteJobStore : public JobStore {
 public:
  // How long a call waits for a lock held by another connection before it
  // fails with UNAVAILABLE; long enough to ride out a WAL checkpoint.
  static constexpr int kBusyTimeoutMs = 5000;
  // The schema this code writes (PRAGMA user_version). A file with a newer
  // version is refused rather than misread.
  static constexpr int kSchemaVersion = 1;

  // Opens (creating if absent) the database at `path` and its schema.
  // `sync_full`: every commit is fsynced (survives power loss); otherwise
  // WAL with synchronous=NORMAL (survives a crash of the process; the last
  // commits may be lost with the machine).
  static Result<std::unique_ptr<SqliteJobStore>> open(const std::string& path, bool sync_full = false);
  ~SqliteJobStore() override;
  SqliteJobStore(const SqliteJobStore&) = delete;
  SqliteJobStore& operator=(const SqliteJobStore&) = delete;

  Status create(const JobRecord& job) override;
  Result<JobRecord> get(const std::string& id) override;
  Status update(const JobRecord& job) override;
  Result<std::vector<JobRecord>> list_by_owner(const std::string& owner, size_t limit) override;
  Result<std::vector<JobRecord>> list_by_state(const std::vector<JobState>& states) override;
  // An empty identity ("not cacheable") never matches.
  Result<std::optional<JobRecord>> find_completed(const std::string& identity) override;
  // An empty request id ("none") never matches.
  Result<std::optional<JobRecord>> find_by_request_id(const std::string& owner,
                                                      const std::string& request_id) override;
  Result<std::vector<JobRecord>> list_expired(int64_t before_ms) override;
  Result<uint64_t> count_active(const std::string& owner) override;
  // NOT_FOUND if the job does not exist.
  Status remove(const std::string& id) override;
  Status put_blob(int kind, const std::string& id, std::string_view bytes) override;
  Result<std::optional<std::string>> get_blob(int kind, const std::string& id) override;
  Result<bool> copy_blob(int kind, const std::string& from, const std::string& to) override;

  // NOT_FOUND if the job does not exist; INVALID_ARGUMENT unless the text is
  // `{...}` (leading/trailing whitespace allowed). The text is not parsed: a
  // caller that puts its own "seq" member in gets two.
  Result<JobEvent> append_event(const std::string& job_id, const std::string& json_without_seq) override;
  Result<std::vector<JobEvent>> events_after(const std::string& job_id, uint64_t after_seq) override;
  Result<JobEvent> update_and_append(const JobRecord& job, const std::string& json_without_seq) override;

  Status put_webhook(const PendingWebhook& hook) override;
  Status set_webhook_attempts(const std::string& event_id, int attempts) override;
  Status delete_webhook(const std::string& event_id) override;
  Result<std::vector<PendingWebhook>> pending_webhooks() override;

  // The key is "loom_" + 64 hex chars (32 bytes from RAND_bytes); only its
  // SHA-256 is stored, key_id is that hash's first 12 hex chars.
  Result<std::string> create_key(const std::string& name) override;
  Result<std::optional<ApiKey>> find_key(const std::string& key) override;
  Result<std::vector<ApiKey>> list_keys() override;
  Status revoke_key(const std::string& key_id) override;

  const std::string& path() const { return path_; }

 private:
  class Statement;
  SqliteJobStore(sqlite3* db, std::string path);

  // All below run with mu_ held.
  Status init_schema();
  Status exec(const char* sql, const char* what);
  // The bodies of update() and append_event(), for callers holding mu_
  // (append_locked inside a transaction).
  Status update_locked(const JobRecord& job);
  Status append_locked(const std::string& job_id, const std::string& json_without_seq, JobEvent& event);
  // A cached prepared statement for `sql` (reset and unbound on release).
  Result<Statement> prepare(const std::string& sql, const char* what);
  Status error(int rc, const char* what) const;
  // Every row of `stmt`, read as kJobColumns.
  Result<std::vector<JobRecord>> query_jobs(Statement& stmt);
  // Runs `body` inside BEGIN IMMEDIATE ... COMMIT, rolling back on failure.
  template <typename F>
  Status in_transaction(const char* what, F&& body);

  // Checkpoints the WAL on its own connection and thread (see .cc).
  class Checkpointer;
  std::unique_ptr<Checkpointer> checkpointer_;

  std::mutex mu_;
  sqlite3* db_ = nullptr;
  std::string path_;
  std::map<std::string, sqlite3_stmt*> statements_;
};

}  // namespace loom::server
