#include "server/sqlite_job_store.h"

#include <sqlite3.h>

#include <chrono>
#include <condition_variable>
#include <limits>
#include <thread>
#include <utility>

#include "graph/sha256.h"

namespace loom::server {
namespace {

// Column order shared by every SELECT that reads a JobRecord (read_job).
constexpr const char* kJobColumns =
    "id, owner, model, state, created_ms, updated_ms, error_code, error_message, identity, "
    "request_id, callback_url, result_size, result_sha256, cancel_requested";

// Version 1. Times are Unix epoch milliseconds; states are their names
// (job_state_name) so the file reads the same if the enum is reordered.
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS jobs (
  id               TEXT PRIMARY KEY NOT NULL,
  owner            TEXT NOT NULL,
  model            TEXT NOT NULL,
  state            TEXT NOT NULL,
  created_ms       INTEGER NOT NULL,
  updated_ms       INTEGER NOT NULL,
  error_code       TEXT NOT NULL,
  error_message    TEXT NOT NULL,
  identity         TEXT NOT NULL,
  request_id       TEXT NOT NULL,
  callback_url     TEXT NOT NULL,
  result_size      INTEGER NOT NULL,
  result_sha256    TEXT NOT NULL,
  cancel_requested INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_owner_created ON jobs (owner, created_ms);
CREATE INDEX IF NOT EXISTS jobs_identity_state ON jobs (identity, state);
CREATE INDEX IF NOT EXISTS jobs_owner_request ON jobs (owner, request_id);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state);
CREATE INDEX IF NOT EXISTS jobs_owner_state ON jobs (owner, state);
CREATE TABLE IF NOT EXISTS events (
  job_id TEXT NOT NULL,
  seq    INTEGER NOT NULL,
  json   TEXT NOT NULL,
  PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blobs (
  kind   INTEGER NOT NULL,
  id     TEXT NOT NULL,
  bytes  BLOB NOT NULL,
  PRIMARY KEY (kind, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS webhooks (
  event_id TEXT PRIMARY KEY NOT NULL,
  job_id   TEXT NOT NULL,
  url      TEXT NOT NULL,
  body     TEXT NOT NULL,
  attempts INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS keys (
  key_id     TEXT PRIMARY KEY NOT NULL,
  name       TEXT NOT NULL,
  key_sha256 TEXT NOT NULL UNIQUE,
  created_ms INTEGER NOT NULL
);
)sql";

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

// A cached prepared statement on loan to one call: bind, step, read columns.
// Bind errors are kept and reported by the next step(). Releasing it resets
// the statement and clears its bindings for the next user.
class SqliteJobStore::Statement {
 public:
  Statement(sqlite3_stmt* stmt, const SqliteJobStore* store, const char* what)
      : stmt_(stmt), store_(store), what_(what) {}
  Statement(Statement&& o) noexcept
      : stmt_(std::exchange(o.stmt_, nullptr)), store_(o.store_), what_(o.what_), bind_rc_(o.bind_rc_) {}
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  Statement& operator=(Statement&&) = delete;
  ~Statement() {
    if (stmt_ != nullptr) {
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
    }
  }

  void bind(int index, const std::string& v) {
    keep(sqlite3_bind_text(stmt_, index, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }
  void bind(int index, int64_t v) { keep(sqlite3_bind_int64(stmt_, index, v)); }
  void bind_blob(int index, std::string_view v) {
    keep(sqlite3_bind_blob64(stmt_, index, v.data(), v.size(), SQLITE_TRANSIENT));
  }

  // true: a row is ready; false: done.
  Result<bool> step() {
    if (bind_rc_ != SQLITE_OK) return store_->error(bind_rc_, what_);
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return store_->error(rc, what_);
  }
  // Steps a statement that returns no rows (INSERT, UPDATE, DELETE).
  Status run() {
    auto r = step();
    return r.ok() ? Status() : r.status();
  }
  // The raw result code of one step, for callers that map a specific code.
  int step_rc() { return bind_rc_ != SQLITE_OK ? bind_rc_ : sqlite3_step(stmt_); }

  std::string text(int col) const {
    const unsigned char* p = sqlite3_column_text(stmt_, col);
    int n = sqlite3_column_bytes(stmt_, col);
    return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
  }
  int64_t int64(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string blob(int col) const {
    const void* p = sqlite3_column_blob(stmt_, col);
    int n = sqlite3_column_bytes(stmt_, col);
    return p == nullptr ? std::string() : std::string(static_cast<const char*>(p), static_cast<size_t>(n));
  }

 private:
  void keep(int rc) {
    if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  }

  sqlite3_stmt* stmt_;
  const SqliteJobStore* store_;
  const char* what_;
  int bind_rc_ = SQLITE_OK;
};

// A checkpoint copies WAL frames into the database file and, with
// synchronous=NORMAL, fsyncs both: milliseconds. SQLite's automatic one runs
// inside whichever commit crosses 1000 WAL pages, stalling that job (it
// was the remote benchmark's p99). Here commits only count pages (the WAL
// hook) and wake this thread, which checkpoints on its own connection;
// WAL-mode writers carry on meanwhile.
class SqliteJobStore::Checkpointer {
 public:
  static constexpr int kPages = 1000;  // SQLite's own default threshold

  static std::unique_ptr<Checkpointer> start(const std::string& path) {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
      sqlite3_close_v2(db);
      return nullptr;
    }
    sqlite3_busy_timeout(db, kBusyTimeoutMs);
    // A connection learns the file is in WAL mode when it first reads it;
    // until then a checkpoint is a no-op.
    if (sqlite3_exec(db, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr) != SQLITE_OK) {
      sqlite3_close_v2(db);
      return nullptr;
    }
    return std::unique_ptr<Checkpointer>(new Checkpointer(db));
  }
  ~Checkpointer() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
    sqlite3_close_v2(db_);
  }
  // Called by the WAL hook after each commit.
  static int on_commit(void* self, sqlite3*, const char*, int pages) {
    if (pages >= kPages) {
      auto* c = static_cast<Checkpointer*>(self);
      {
        std::lock_guard<std::mutex> lock(c->mu_);
        c->due_ = true;
      }
      c->cv_.notify_one();
    }
    return SQLITE_OK;
  }

 private:
  explicit Checkpointer(sqlite3* db) : db_(db), thread_([this] { run(); }) {}
  void run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      cv_.wait(lock, [this] { return due_ || stop_; });
      if (stop_) break;
      due_ = false;
      lock.unlock();
      // PASSIVE: never waits for readers or writers; what is left goes next time.
      sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
      lock.lock();
    }
  }

  sqlite3* db_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool due_ = false;
  bool stop_ = false;
  std::thread thread_;
};

Result<std::unique_ptr<SqliteJobStore>> SqliteJobStore::open(const std::string& path, bool sync_full) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return internal_error("sqlite open " + path + ": " + msg + " (code " + std::to_string(rc) + ")");
  }
  std::unique_ptr<SqliteJobStore> store(new SqliteJobStore(db, path));
  std::lock_guard<std::mutex> lock(store->mu_);
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  {
    LOOM_ASSIGN_OR_RETURN(Statement st, store->prepare("PRAGMA journal_mode=WAL", "set WAL mode"));
    LOOM_ASSIGN_OR_RETURN(bool row, st.step());
    std::string mode = row ? st.text(0) : "";
    if (mode != "wal") {
      return failed_precondition("sqlite " + path + ": cannot switch to WAL mode (journal_mode is '" + mode +
                                 "'); is the file on a network filesystem?");
    }
  }
  LOOM_RETURN_IF_ERROR(store->exec(sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
                                   "set synchronous"));
  LOOM_RETURN_IF_ERROR(store->init_schema());
  // Without its own thread (a connection that cannot open), SQLite's
  // automatic checkpoints stay on.
  store->checkpointer_ = Checkpointer::start(path);
  if (store->checkpointer_) sqlite3_wal_hook(db, &Checkpointer::on_commit, store->checkpointer_.get());
  return store;
}

SqliteJobStore::SqliteJobStore(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}

SqliteJobStore::~SqliteJobStore() {
  checkpointer_.reset();  // before the last connection closes (which checkpoints what is left)
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  // The last connection to close checkpoints the WAL into the main file.
  sqlite3_close_v2(db_);
}

Status SqliteJobStore::error(int rc, const char* what) const {
  // sqlite3_errmsg describes the connection's last error, which is `rc` unless
  // it came from a bind (those are not recorded on the connection).
  const char* text = sqlite3_extended_errcode(db_) == rc ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  std::string msg = std::string("sqlite ") + what + " (" + path_ + "): " + text + " (code " + std::to_string(rc) + ")";
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status(StatusCode::kUnavailable, msg);
    case SQLITE_FULL:
      return resource_exhausted(msg);
    default:
      return internal_error(msg);
  }
}

Status SqliteJobStore::exec(const char* sql, const char* what) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  sqlite3_free(err);  // the same text as sqlite3_errmsg, which error() reads
  return rc == SQLITE_OK ? Status() : error(rc, what);
}

Result<SqliteJobStore::Statement> SqliteJobStore::prepare(const std::string& sql, const char* what) {
  auto it = statements_.find(sql);
  if (it == statements_.end()) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &stmt,
                                nullptr);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(stmt);
      return error(rc, what);
    }
    it = statements_.emplace(sql, stmt).first;
  }
  return Statement(it->second, this, what);
}

template <typename F>
Status SqliteJobStore::in_transaction(const char* what, F&& body) {
  LOOM_RETURN_IF_ERROR(exec("BEGIN IMMEDIATE", what));
  Status s = body();
  if (s.ok()) s = exec("COMMIT", what);
  // SQLite may already have rolled back (e.g. after SQLITE_FULL); only roll
  // back a transaction that is still open.
  if (!s.ok() && sqlite3_get_autocommit(db_) == 0) exec("ROLLBACK", what).ok();
  return s;
}

Status SqliteJobStore::init_schema() {
  return in_transaction("create schema", [&]() -> Status {
    int64_t version = 0;
    {
      LOOM_ASSIGN_OR_RETURN(Statement st, prepare("PRAGMA user_version", "read schema version"));
      LOOM_ASSIGN_OR_RETURN(bool row, st.step());
      version = row ? st.int64(0) : 0;
    }  // released (reset) before the DDL below
    if (version > kSchemaVersion) {
      return failed_precondition("sqlite " + path_ + ": schema version " + std::to_string(version) +
                                 " is newer than this loom's " + std::to_string(kSchemaVersion) +
                                 "; upgrade loom-server");
    }
    LOOM_RETURN_IF_ERROR(exec(kSchema, "create schema"));
    std::string set_version = "PRAGMA user_version=" + std::to_string(kSchemaVersion);
    return exec(set_version.c_str(), "set schema version");
  });
}

// ---- jobs ----

namespace {

// Binds every JobRecord field but the id to parameters 1..13, in kJobColumns
// order after id (owner .. cancel_requested).
template <typename Stmt>
void bind_job_fields(Stmt& st, const JobRecord& j) {
  st.bind(1, j.owner);
  st.bind(2, j.model);
  st.bind(3, std::string(job_state_name(j.state)));
  st.bind(4, j.created_ms);
  st.bind(5, j.updated_ms);
  st.bind(6, j.error_code);
  st.bind(7, j.error_message);
  st.bind(8, j.identity);
  st.bind(9, j.request_id);
  st.bind(10, j.callback_url);
  st.bind(11, static_cast<int64_t>(j.result_size));
  st.bind(12, j.result_sha256);
  st.bind(13, static_cast<int64_t>(j.cancel_requested ? 1 : 0));
}

template <typename Stmt>
Result<JobRecord> read_job_row(const Stmt& st) {
  JobRecord j;
  j.id = st.text(0);
  j.owner = st.text(1);
  j.model = st.text(2);
  std::string state = st.text(3);
  j.state = parse_job_state(state);
  if (j.state == JobState::kUnknown) {
    return internal_error("job " + j.id + " has unknown state '" + state + "' in the database");
  }
  j.created_ms = st.int64(4);
  j.updated_ms = st.int64(5);
  j.error_code = st.text(6);
  j.error_message = st.text(7);
  j.identity = st.text(8);
  j.request_id = st.text(9);
  j.callback_url = st.text(10);
  j.result_size = static_cast<uint64_t>(st.int64(11));
  j.result_sha256 = st.text(12);
  j.cancel_requested = st.int64(13) != 0;
  return j;
}

}  // namespace

Result<std::vector<JobRecord>> SqliteJobStore::query_jobs(Statement& st) {
  std::vector<JobRecord> out;
  while (true) {
    LOOM_ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) break;
    LOOM_ASSIGN_OR_RETURN(JobRecord j, read_job_row(st));
    out.push_back(std::move(j));
  }
  return out;
}

Status SqliteJobStore::create(const JobRecord& job) {
  std::lock_guard<std::mutex> lock(mu_);
  const char* what = "create job";
  LOOM_ASSIGN_OR_RETURN(Statement st, prepare(std::string("INSERT INTO jobs (owner, model, state, created_ms, "
                                                          "updated_ms, error_code, error_message, identity, "
                                                          "request_id, callback_url, result_size, result_sha256, "
                                                          "cancel_requested, id) "
                                                          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
                                                          "?12, ?13, ?14)"),
                                              what));
  bind_job_fields(st, job);
  st.bind(14, job.id);
  int rc = st.step_rc();
  if (rc == SQLITE_DONE) return Status();
  if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) return invalid_argument("job id " + job.id + " already exists");
  return error(rc, what);
}

Result<JobRecord> SqliteJobStore::get(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  LOOM_ASSIGN_OR_RETURN(Statement st,
                        prepare(std::string("SELECT ") + kJobColumns + " FROM jobs WHERE id = ?1", "get job"));
  st.bind(1, id);
  LOOM_ASSIGN_OR_RETURN(bool row, st.step());
  if (!row) return not_found("job " + id + " not found");
  return read_job_row(st);
}

Status SqliteJobStore::update(const JobRecord& job) {
  std::lock_guard<std::mutex> lock(mu_);
  return update_locked(job);
}

Status SqliteJobStore::update_locked(const JobRecord& job) {
  LOOM_ASSIGN_OR_RETURN(Statement st, prepare("UPDATE jobs SET owner = ?1, model = ?2, state = ?3, created_ms = ?4, "
                                              "updated_ms = ?5, error_code = ?6, error_message = ?7, identity = ?8, "
                                              "request_id = ?9, callback_url = ?10, result_size = ?11, "
                                              "result_sha256 = ?12, cancel_requested = ?13 WHERE id = ?14",
                                              "update job"));
  bind_job_fields(st, job);
  st.bind(14, job.id);
  LOOM_RETURN_IF_ERROR(st.run());
  if (sqlite3_changes(db_) == 0) return not_found("job " + job.id + " not found");
  return Status();
}

Result<std::vector<JobRecord>> SqliteJobStore::list_by_owner(const std::string& owner, size_t limit) {
  std::lock_guard<std::mutex> lock(mu_);
  // rowid breaks ties between jobs created in the same millisecond: the later
  // insert is the newer job. The (owner, created_ms) index ends in rowid.
  LOOM_ASSIGN_OR_RETURN(Statement st, prepare(std::string("SELECT ") + kJobColumns +
                                                  " FROM jobs WHERE owner = ?1 "
                                                  "ORDER BY created_ms DESC, rowid DESC LIMIT ?2",
                                              "list jobs by owner"));
  st.bind(1, owner);
  constexpr size_t kMax = static_cast<size_t>(std::numeric_limits<int64_t>::max());
  st.bind(2, static_cast<int64_t>(limit < kMax ? limit : kMax));
  return query_jobs(st);
}

Result<std::vector<JobRecord>> SqliteJobStore::list_by_state(const std::vector<JobState>& states) {
  if (states.empty()) return std::vector<JobRecord>();
  std::lock_guard<std::mutex> lock(mu_);
  // One cached statement per number of states (at most a handful).
  std::string sql = std::string("SELECT ") + kJobColumns + " FROM jobs WHERE state IN (";
  for (size_t i = 0; i < states.size(); ++i) sql += i == 0 ? "?" : ", ?";
  sql += ") ORDER BY created_ms, rowid";
  LOOM_ASSIGN_OR_RETURN(Statement st, prepare(sql, "list jobs by state"));
  for (size_t i = 0; i < states.size(); ++i) st.bind(static_cast<int>(i + 1), std::string(job_state_name(states[i])));
  return query_jobs(st);
}

Result<std::optional<JobRecord>> SqliteJobStore::find_completed(const std::string& identity) {
  if (identity.empty()) return std::optional<JobRecord>();
  std::lock_guard<std::mutex> lock(mu_);
  // Newest = most recently completed (updated_ms of a COMPLETED job).
  LOOM_ASSIGN_OR_RETURN(Statement st, prepare(std::string("SELECT ") + kJobColumns +
                                                  " FROM jobs WHERE identity = ?1 AND state = 'COMPLETED' "
                                                  "ORDER BY updated_ms DESC, created_ms DESC, rowid DESC LIMIT 1",
                                              "find completed job"));
  st.bind(1, identity);
  LOOM_ASSIGN_OR_RETURN(bool row, st.step());
  if (!row) return std::optional<JobRecord>();
  LOOM_ASSIGN_OR_RETURN(JobRecord j, read_job_row(st));
  return std::optional<JobRecord>(std::move(j));
}

Result<std::optional<JobRecord>> SqliteJobStore::find_by_request_id(const std::string& owner,
                                                                    const std::string& request_id) {
  if (request_id.empty()) return std::optional<JobRecord>();
  std::lock_guard<std::mutex> lock(mu_);
  LOOM_ASSIGN_OR_RETURN(Statement st, prepare(std::string("SELECT ") + kJobColumns +
                                                  " FROM jobs WHERE owner = ?1 AND request_id = ?2 "
                                                  "ORDER BY created_ms DESC, rowid DESC LIMIT 1",
                                              "find job by request id"));
  st.bind(1, owner);
  st.bind(2, request_id);
  LOOM_ASSIGN_OR_RETURN(bool row, st.step());
  if (!row) return std::optional<JobRecord>();
  LOOM_ASSIGN_OR_RETURN(JobRecord j, read_job_row(st));
  return std::optional<JobRecord>(std::move(j));
}

Result<uint64_t> SqliteJobStore::count_active(const std::string& owner) {
  std::lock_guard<std::mutex> lock(mu_);
  LOOM_ASSIGN_OR_RETURN(Statement st, prepare("SELECT COUNT(*) FROM jobs WHERE owner = ?1 AND state IN (?2, ?3, ?4, ?5, ?6)",
                                              "count active jobs"));
  st.bind(1, owner);
  int i = 2;
  for (JobState s :
       {JobState::kReceived, JobState::kQueued, JobState::kDispatched, JobState::kLoading, JobState::kRunning}) {
    st.bind(i++, std::string(job_state_name(s)));
  }
  LOOM_ASSIGN_OR_RETURN(bool row, st.step());
  return row ? static_cast<uint64_t>(st.int64(0)) : uint64_t{0};
}

Result<std::vector<JobRecord>> SqliteJobStore::list_expired(int64_t before_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  LOOM_ASSIGN_OR_RETURN(Statement st, prepare(std::string("SELECT ") + kJobColumns +
                                                  " FROM jobs WHERE state IN (?1, ?2, ?3) AND updated_ms < ?4 "
                                                  "ORDER BY updated_ms, rowid",
                                              "list expired jobs"));
  st.bind(1, std::string(job_state_name(JobState::kCompleted)));
  st.bind(2, std::string(job_state_name(JobState::kError)));
  st.bind(3, std::string(job_state_name(JobState::kCancelled)));
  st.bind(4, before_ms);
  return query_jobs(st);
}

Status SqliteJobStore::remove(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  return in_transaction("remove job", [&]() -> Status {
    {
      LOOM_ASSIGN_OR_RETURN(Statement st, prepare("DELETE FROM events WHERE job_id = ?1", "remove job events"));
      st.bind(1, id);
      LOOM_RETURN_IF_ERROR(st.run());
    }
    {
      LOOM_ASSIGN_OR_RETURN(Statement st, prepare("DELETE FROM blobs WHERE id = ?1", "remove job blobs"));
      st.bind(1, id);
      LOOM_RETURN_IF_ERROR(st.run());
    }
    LOOM_ASSIGN_OR_RETURN(Statement st, prepare("DELETE FROM jobs WHERE id = ?1", "remove job"));
    st.bind(1, id);
    LOOM_RETURN_IF_ERROR(st.run());
    if (sqlite3_changes(db_) == 0) return not_found("job " + id + " not found");
    return Status();
  });
}

// ---- small blobs ----

Status SqliteJobStore::put_blob(int kind, const std::string& id, std::string_view bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  LOOM_ASSIGN_OR_RETURN(Statement st, prepare("INSERT OR REPLACE INTO blobs (kind, id, bytes) VALUES (?1, ?2, ?3)",
                                              "put blob"));
  st.bind(1, static_cast<int64_t>(kind));
  st.bind(2, id);
  st.bind_blob(3, bytes);
  return st.run();
}

Result<std::optional<std::string>> SqliteJobStore::get_blob(int kind, const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  LOOM_ASSIGN_OR_RETURN(Statement st, prepare("SELECT bytes FROM blobs WHERE kind = ?1 AND id = ?2", "get blob"));
  st.bind(1, static_cast<int64_t>(kind));
  st.bind(2, id);
  LOOM_ASSIGN_OR_RETURN(bool row, st.step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(st.blob(0));
}

Result<bool> SqliteJobStore::copy_blob(int kind, const std::string& from, const std::string& to) {
  std::lock_guard<std::mutex> lock(mu_);
  LOOM_ASSIGN_OR_RETURN(Statement st, prepare("INSERT OR REPLACE INTO blobs (kind, id, bytes) "
                                              "SELECT kind, ?3, bytes FROM blobs WHERE kind = ?1 AND id = ?2",
                                              "copy blob"));
  st.bind(1, static_cast<int64_t>(kind));
  st.bind(2, from);
  st.bind(3, to);
  LOOM_RETURN_IF_ERROR(st.run());
  return sqlite3_changes(db_) > 0;
}

// ---- webhooks ----

Status SqliteJobStore::put_webhook(const PendingWebhook& hook) {
  std::lock_guard<std::mutex> lock(mu_);
  LOOM_ASSIGN_OR_RETURN(Statement st, prepare("INSERT OR REPLACE INTO webhooks (event_id, job_id, url, body, attempts) "
                                              "VALUES (?1, ?2, ?3, ?4, ?5)",
                                              "put webhook"));
  st.bind(1, hook.event_id);
  st.bind(2, hook.job_id);
  st.bind(3, hook.url);
  st.bind(4, hook.body);
  st.bind(5, static_cast<int64_t>(hook.attempts));
  return st.run();
}

Status SqliteJobStore::set_webhook_attempts(const std::string& event_id, int attempts) {
  std::lock_guard<std::mutex> lock(mu_);
  LOOM_ASSIGN_OR_RETURN(Statement st, prepare("UPDATE webhooks SET attempts = ?2 WHERE event_id = ?1", "webhook attempts"));
  st.bind(1, event_id);
  st.bind(2, static_cast<int64_t>(attempts));
  return st.run();
}

Status SqliteJobStore::delete_webhook(const std::string& event_id) {
  std::lock_guard<std::mutex> lock(mu_);
  LOOM_ASSIGN_OR_RETURN(Statement st, prepare("DELETE FROM webhooks WHERE event_id = ?1", "delete webhook"));
  st.bind(1, event_id);
  return st.run();
}

Result<std::vector<PendingWebhook>> SqliteJobStore::pending_webhooks() {
  std::lock_guard<std::mutex> lock(mu_);
  LOOM_ASSIGN_OR_RETURN(Statement st, prepare("SELECT event_id, job_id, url, body, attempts FROM webhooks "
                                              "ORDER BY rowid",
                                              "list webhooks"));
  std::vector<PendingWebhook> out;
  for (;;) {
    LOOM_ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) break;
    out.push_back({st.text(0), st.text(1), st.text(2), st.text(3), static_cast<int>(st.int64(4))});
  }
  return out;
}

// ---- events ----

Result<JobEvent> SqliteJobStore::append_event(const std::string& job_id, const std::string& json_without_seq) {
  // Validate before taking the lock; the seq only changes the prefix.
  LOOM_RETURN_IF_ERROR(splice_seq(json_without_seq, 0).status());
  std::lock_guard<std::mutex> lock(mu_);
  JobEvent event;
  // BEGIN IMMEDIATE takes the write lock first, so max(seq)+1 cannot race
  // with another connection on the same file.
  Status s = in_transaction("append event", [&] { return append_locked(job_id, json_without_seq, event); });
  if (!s.ok()) return s;
  return event;
}

Result<JobEvent> SqliteJobStore::update_and_append(const JobRecord& job, const std::string& json_without_seq) {
  LOOM_RETURN_IF_ERROR(splice_seq(json_without_seq, 0).status());
  std::lock_guard<std::mutex> lock(mu_);
  JobEvent event;
  Status s = in_transaction("update job and append event", [&]() -> Status {
    LOOM_RETURN_IF_ERROR(update_locked(job));
    return append_locked(job.id, json_without_seq, event);
  });
  if (!s.ok()) return s;
  return event;
}

Status SqliteJobStore::append_locked(const std::string& job_id, const std::string& json_without_seq, JobEvent& event) {
  event.job_id = job_id;
  {
    LOOM_ASSIGN_OR_RETURN(Statement st, prepare("SELECT 1 FROM jobs WHERE id = ?1", "append event: find job"));
    st.bind(1, job_id);
    LOOM_ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) return not_found("job " + job_id + " not found (appending an event)");
  }
  {
    LOOM_ASSIGN_OR_RETURN(Statement st, prepare("SELECT COALESCE(MAX(seq), 0) FROM events WHERE job_id = ?1",
                                                "append event: last seq"));
    st.bind(1, job_id);
    LOOM_ASSIGN_OR_RETURN(bool row, st.step());
    event.seq = static_cast<uint64_t>(row ? st.int64(0) : 0) + 1;
  }
  LOOM_ASSIGN_OR_RETURN(event.json, splice_seq(json_without_seq, event.seq));
  LOOM_ASSIGN_OR_RETURN(Statement st, prepare("INSERT INTO events (job_id, seq, json) VALUES (?1, ?2, ?3)",
                                              "append event"));
  st.bind(1, job_id);
  st.bind(2, static_cast<int64_t>(event.seq));
  st.bind(3, event.json);
  return st.run();
}

Result<std::vector<JobEvent>> SqliteJobStore::events_after(const std::string& job_id, uint64_t after_seq) {
  std::lock_guard<std::mutex> lock(mu_);
  LOOM_ASSIGN_OR_RETURN(Statement st, prepare("SELECT seq, json FROM events WHERE job_id = ?1 AND seq > ?2 "
                                              "ORDER BY seq",
                                              "read events"));
  st.bind(1, job_id);
  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  st.bind(2, static_cast<int64_t>(after_seq < kMax ? after_seq : kMax));
  std::vector<JobEvent> out;
  while (true) {
    LOOM_ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) break;
    out.push_back(JobEvent{job_id, static_cast<uint64_t>(st.int64(0)), st.text(1), nullptr});
  }
  return out;
}

// ---- API keys ----

Result<std::string> SqliteJobStore::create_key(const std::string& name) {
  LOOM_ASSIGN_OR_RETURN(std::string key, new_api_key(name));
  std::string hash = sha256_hex(key);
  std::lock_guard<std::mutex> lock(mu_);
  LOOM_ASSIGN_OR_RETURN(Statement st, prepare("INSERT INTO keys (key_id, name, key_sha256, created_ms) "
                                              "VALUES (?1, ?2, ?3, ?4)",
                                              "create API key"));
  st.bind(1, hash.substr(0, 12));
  st.bind(2, name);
  st.bind(3, hash);
  st.bind(4, now_ms());
  LOOM_RETURN_IF_ERROR(st.run());
  return key;
}

Result<std::optional<ApiKey>> SqliteJobStore::find_key(const std::string& key) {
  std::string hash = sha256_hex(key);
  std::lock_guard<std::mutex> lock(mu_);
  LOOM_ASSIGN_OR_RETURN(Statement st, prepare("SELECT key_id, name, created_ms FROM keys WHERE key_sha256 = ?1",
                                              "find API key"));
  st.bind(1, hash);
  LOOM_ASSIGN_OR_RETURN(bool row, st.step());
  if (!row) return std::optional<ApiKey>();
  return std::optional<ApiKey>(ApiKey{st.text(0), st.text(1), st.int64(2)});
}

Result<std::vector<ApiKey>> SqliteJobStore::list_keys() {
  std::lock_guard<std::mutex> lock(mu_);
  LOOM_ASSIGN_OR_RETURN(Statement st, prepare("SELECT key_id, name, created_ms FROM keys ORDER BY created_ms, rowid",
                                              "list API keys"));
  std::vector<ApiKey> out;
  for (;;) {
    LOOM_ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) break;
    out.push_back(ApiKey{st.text(0), st.text(1), st.int64(2)});
  }
  return out;
}

Status SqliteJobStore::revoke_key(const std::string& key_id) {
  std::lock_guard<std::mutex> lock(mu_);
  LOOM_ASSIGN_OR_RETURN(Statement st, prepare("DELETE FROM keys WHERE key_id = ?1", "revoke API key"));
  st.bind(1, key_id);
  LOOM_RETURN_IF_ERROR(st.run());
  if (sqlite3_changes(db_) == 0) return not_found("no API key with id \"" + key_id + "\"");
  return Status();
}

}  // namespace loom::server
