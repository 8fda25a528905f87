// The JobStore contract, run against both stores: SqliteJobStore on real
// SQLite files in a temporary directory, RedisJobStore on a real
// redis-server (a child process with AOF; "reopen" restarts it with kill -9).
// Then what only one of them promises.
#include "server/job_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include "graph/sha256.h"
#include "server/redis_job_store.h"
#include "server/sqlite_job_store.h"
#include "tests/server/redis_process.h"
#include "tests/server/temp_dir.h"

namespace loom::server {
namespace {

using loom::testing::read_file_bytes;
using loom::testing::ServerTempDir;

#define EXPECT_OK_STATUS(expr)                           \
  do {                                                   \
    const auto& loom_s_ = (expr);                        \
    EXPECT_TRUE(loom_s_.ok()) << loom_s_.to_string();    \
  } while (0)

#define ASSERT_OK(expr)                                  \
  do {                                                   \
    const auto& loom_s_ = (expr);                        \
    ASSERT_TRUE(loom_s_.ok()) << loom_s_.to_string();    \
  } while (0)

// Unwraps a Result or fails the test with its status.
template <typename T>
T unwrap(Result<T> r) {
  if (!r.ok()) {
    ADD_FAILURE() << r.status().to_string();
    return T();
  }
  return std::move(r).value();
}

JobRecord make_job(const std::string& id, const std::string& owner, int64_t created_ms,
                   JobState state = JobState::kQueued) {
  JobRecord j;
  j.id = id;
  j.owner = owner;
  j.model = "gpt2";
  j.state = state;
  j.created_ms = created_ms;
  j.updated_ms = created_ms;
  return j;
}

void expect_same(const JobRecord& a, const JobRecord& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.owner, b.owner);
  EXPECT_EQ(a.model, b.model);
  EXPECT_EQ(a.state, b.state);
  EXPECT_EQ(a.created_ms, b.created_ms);
  EXPECT_EQ(a.updated_ms, b.updated_ms);
  EXPECT_EQ(a.error_code, b.error_code);
  EXPECT_EQ(a.error_message, b.error_message);
  EXPECT_EQ(a.identity, b.identity);
  EXPECT_EQ(a.request_id, b.request_id);
  EXPECT_EQ(a.callback_url, b.callback_url);
  EXPECT_EQ(a.result_size, b.result_size);
  EXPECT_EQ(a.result_sha256, b.result_sha256);
  EXPECT_EQ(a.cancel_requested, b.cancel_requested);
}

std::vector<std::string> ids(const std::vector<JobRecord>& jobs) {
  std::vector<std::string> out;
  for (const auto& j : jobs) out.push_back(j.id);
  return out;
}

class SqliteJobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { reopen(); }
  void reopen() {
    store_.reset();
    auto s = SqliteJobStore::open(db_path());
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    store_ = std::move(s).value();
  }
  std::string db_path() const { return dir_.file("loom.db"); }

  ServerTempDir dir_;
  std::unique_ptr<SqliteJobStore> store_;
};

// The same tests on either store. One redis-server serves the whole suite;
// each test has its own key prefix, so they never see each other's keys.
class JobStoreContract : public ::testing::TestWithParam<std::string> {
 protected:
  static void TearDownTestSuite() {
    delete redis_;
    redis_ = nullptr;
    delete redis_dir_;
    redis_dir_ = nullptr;
  }
  void SetUp() override {
    static int n = 0;
    prefix_ = "t" + std::to_string(++n) + ":";
    if (GetParam() == "redis" && redis_ == nullptr) {
      redis_dir_ = new ServerTempDir;
      redis_ = new loom::testing::RedisProcess(redis_dir_->path());
    }
    open();
  }
  void open() {
    store_.reset();
    if (GetParam() == "sqlite") {
      auto s = SqliteJobStore::open(dir_.file("loom.db"));
      ASSERT_TRUE(s.ok()) << s.status().to_string();
      store_ = std::move(s).value();
      return;
    }
    auto r = Redis::open(redis_->url());
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    store_ = std::make_unique<RedisJobStore>(std::move(r).value(), prefix_);
  }
  // A server restart: the SQLite file is opened again; Redis is killed
  // (-9) and started again from its AOF.
  void reopen() {
    store_.reset();
    if (GetParam() == "redis") redis_->restart(/*hard=*/true);
    open();
  }

  static ServerTempDir* redis_dir_;
  static loom::testing::RedisProcess* redis_;
  ServerTempDir dir_;
  std::string prefix_;
  std::unique_ptr<JobStore> store_;
};
ServerTempDir* JobStoreContract::redis_dir_ = nullptr;
loom::testing::RedisProcess* JobStoreContract::redis_ = nullptr;

INSTANTIATE_TEST_SUITE_P(Stores, JobStoreContract, ::testing::Values("sqlite", "redis"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

// Job state names are the wire's (transport/wire.h): tests/transport/wire_test.cc.

TEST(NewJobId, Is32LowercaseHexAndUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string id = new_job_id();
    ASSERT_EQ(id.size(), 32u);
    EXPECT_TRUE(std::all_of(id.begin(), id.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }))
        << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST_F(SqliteJobStoreTest, OpenUsesWalMode) {
  ASSERT_OK(store_->create(make_job("aa", "k1", 1)));
  // In WAL mode a committed write lives in DB-wal until a checkpoint; a
  // rollback journal (the default) would have been deleted on commit.
  EXPECT_TRUE(std::filesystem::exists(db_path() + "-wal"));
}

TEST_P(JobStoreContract, CreateGetUpdateRoundTripEveryField) {
  JobRecord j;
  j.id = "0123456789abcdef0123456789abcdef";
  j.owner = "ownerkey0001";
  j.model = "gpt2-small";
  j.state = JobState::kDispatched;
  j.created_ms = 1700000000123;
  j.updated_ms = 1700000000456;
  j.error_code = "";
  j.error_message = "";
  j.identity = std::string(64, 'e');
  j.request_id = "client-req-7";
  j.callback_url = "https://example.com/hook?a=1&b='x'";
  j.result_size = 0;
  j.result_sha256 = "";
  j.cancel_requested = false;
  ASSERT_OK(store_->create(j));
  expect_same(unwrap(store_->get(j.id)), j);

  j.owner = "ownerkey0002";
  j.model = "llama";
  j.state = JobState::kError;
  j.created_ms = 1;
  j.updated_ms = 1700000009999;
  j.error_code = "INVALID_ARGUMENT";
  j.error_message = "node 3 (op \"add\"): shapes [2,3] and [4] \xE2\x9C\x97";
  j.identity = "";
  j.request_id = "";
  j.callback_url = "";
  j.result_size = (uint64_t{1} << 40) + 7;  // more than 32 bits survive
  j.result_sha256 = std::string(64, 'a');
  j.cancel_requested = true;
  ASSERT_OK(store_->update(j));
  expect_same(unwrap(store_->get(j.id)), j);
}

TEST_P(JobStoreContract, CreateRejectsDuplicateId) {
  ASSERT_OK(store_->create(make_job("ab", "k1", 10)));
  JobRecord other = make_job("ab", "k2", 20);
  Status s = store_->create(other);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
  EXPECT_NE(s.message().find("ab"), std::string::npos) << s.message();
  EXPECT_EQ(unwrap(store_->get("ab")).owner, "k1");  // the first one is untouched
}

TEST_P(JobStoreContract, MissingJobIsNotFound) {
  EXPECT_EQ(store_->get("ff").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->update(make_job("ff", "k1", 1)).code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->remove("ff").code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->append_event("ff", R"({"type":"STATUS"})").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(unwrap(store_->events_after("ff", 0)).empty());
}

TEST_P(JobStoreContract, ListByOwnerIsNewestFirstLimitedAndPerOwner) {
  ASSERT_OK(store_->create(make_job("a1", "alice", 100)));
  ASSERT_OK(store_->create(make_job("b1", "bob", 150)));
  ASSERT_OK(store_->create(make_job("a3", "alice", 300)));
  ASSERT_OK(store_->create(make_job("a2", "alice", 200)));
  ASSERT_OK(store_->create(make_job("a4", "alice", 300)));  // same ms as a3, inserted later: newer

  EXPECT_EQ(ids(unwrap(store_->list_by_owner("alice", 100))), (std::vector<std::string>{"a4", "a3", "a2", "a1"}));
  EXPECT_EQ(ids(unwrap(store_->list_by_owner("alice", 2))), (std::vector<std::string>{"a4", "a3"}));
  EXPECT_EQ(ids(unwrap(store_->list_by_owner("bob", 100))), (std::vector<std::string>{"b1"}));
  EXPECT_TRUE(unwrap(store_->list_by_owner("carol", 100)).empty());
  EXPECT_TRUE(unwrap(store_->list_by_owner("alice", 0)).empty());
}

TEST_P(JobStoreContract, ListByStateIsOldestFirstAcrossStates) {
  ASSERT_OK(store_->create(make_job("c1", "k", 30, JobState::kRunning)));
  ASSERT_OK(store_->create(make_job("c2", "k", 10, JobState::kQueued)));
  ASSERT_OK(store_->create(make_job("c3", "k", 20, JobState::kCompleted)));
  ASSERT_OK(store_->create(make_job("c4", "k", 5, JobState::kDispatched)));

  EXPECT_EQ(ids(unwrap(store_->list_by_state({JobState::kQueued, JobState::kRunning, JobState::kDispatched}))),
            (std::vector<std::string>{"c4", "c2", "c1"}));
  EXPECT_EQ(ids(unwrap(store_->list_by_state({JobState::kCompleted}))), (std::vector<std::string>{"c3"}));
  EXPECT_TRUE(unwrap(store_->list_by_state({JobState::kError})).empty());
  EXPECT_TRUE(unwrap(store_->list_by_state({})).empty());
}

TEST_P(JobStoreContract, FindCompletedPicksNewestCompletedWithThatIdentity) {
  auto with = [](JobRecord j, const std::string& identity, int64_t updated_ms) {
    j.identity = identity;
    j.updated_ms = updated_ms;
    return j;
  };
  ASSERT_OK(store_->create(with(make_job("d1", "k1", 10, JobState::kCompleted), "same", 100)));
  ASSERT_OK(store_->create(with(make_job("d2", "k2", 20, JobState::kCompleted), "same", 200)));
  ASSERT_OK(store_->create(with(make_job("d3", "k1", 30, JobState::kRunning), "same", 300)));
  ASSERT_OK(store_->create(with(make_job("d4", "k1", 40, JobState::kError), "same", 400)));
  ASSERT_OK(store_->create(with(make_job("d5", "k1", 50, JobState::kCompleted), "other", 500)));
  ASSERT_OK(store_->create(with(make_job("d6", "k1", 60, JobState::kCompleted), "", 600)));

  auto found = unwrap(store_->find_completed("same"));
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->id, "d2");
  EXPECT_EQ(found->state, JobState::kCompleted);
  EXPECT_FALSE(unwrap(store_->find_completed("none")).has_value());
  // "" means "not cacheable": never a match, although d6 has it.
  EXPECT_FALSE(unwrap(store_->find_completed("")).has_value());

  // A running job with the identity completes later: it becomes the newest.
  JobRecord d3 = unwrap(store_->get("d3"));
  d3.state = JobState::kCompleted;
  d3.updated_ms = 700;
  ASSERT_OK(store_->update(d3));
  EXPECT_EQ(unwrap(store_->find_completed("same"))->id, "d3");
}

TEST_P(JobStoreContract, FindByRequestIdIsPerOwner) {
  JobRecord a = make_job("e1", "alice", 10);
  a.request_id = "retry-1";
  JobRecord b = make_job("e2", "bob", 20);
  b.request_id = "retry-1";
  ASSERT_OK(store_->create(a));
  ASSERT_OK(store_->create(b));
  ASSERT_OK(store_->create(make_job("e3", "alice", 30)));  // no request id

  auto fa = unwrap(store_->find_by_request_id("alice", "retry-1"));
  ASSERT_TRUE(fa.has_value());
  EXPECT_EQ(fa->id, "e1");
  auto fb = unwrap(store_->find_by_request_id("bob", "retry-1"));
  ASSERT_TRUE(fb.has_value());
  EXPECT_EQ(fb->id, "e2");
  EXPECT_FALSE(unwrap(store_->find_by_request_id("carol", "retry-1")).has_value());
  EXPECT_FALSE(unwrap(store_->find_by_request_id("alice", "retry-2")).has_value());
  EXPECT_FALSE(unwrap(store_->find_by_request_id("alice", "")).has_value());
}

TEST_P(JobStoreContract, ListExpiredReturnsTerminalJobsUpdatedBeforeTheCutoff) {
  auto updated = [](JobRecord j, int64_t ms) {
    j.updated_ms = ms;
    return j;
  };
  ASSERT_OK(store_->create(updated(make_job("f1", "k", 1, JobState::kCompleted), 100)));
  ASSERT_OK(store_->create(updated(make_job("f2", "k", 2, JobState::kError), 50)));
  ASSERT_OK(store_->create(updated(make_job("f3", "k", 3, JobState::kCancelled), 150)));
  ASSERT_OK(store_->create(updated(make_job("f4", "k", 4, JobState::kCompleted), 200)));  // not before 200
  ASSERT_OK(store_->create(updated(make_job("f5", "k", 5, JobState::kRunning), 10)));     // not terminal
  ASSERT_OK(store_->create(updated(make_job("f6", "k", 6, JobState::kQueued), 10)));      // not terminal

  EXPECT_EQ(ids(unwrap(store_->list_expired(200))), (std::vector<std::string>{"f2", "f1", "f3"}));
  EXPECT_TRUE(unwrap(store_->list_expired(50)).empty());
}

TEST_P(JobStoreContract, RemoveDeletesTheJobAndItsEventsOnly) {
  ASSERT_OK(store_->create(make_job("a0", "k", 1)));
  ASSERT_OK(store_->create(make_job("b0", "k", 2)));
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(store_->append_event("a0", R"({"type":"LOG"})").ok());
    ASSERT_TRUE(store_->append_event("b0", R"({"type":"LOG"})").ok());
  }
  ASSERT_OK(store_->remove("a0"));
  EXPECT_EQ(store_->get("a0").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(unwrap(store_->events_after("a0", 0)).empty());
  EXPECT_EQ(unwrap(store_->events_after("b0", 0)).size(), 3u);
  EXPECT_EQ(store_->remove("a0").code(), StatusCode::kNotFound);

  // A job created again under the id starts its events at 1.
  ASSERT_OK(store_->create(make_job("a0", "k", 3)));
  EXPECT_EQ(unwrap(store_->append_event("a0", R"({"type":"STATUS"})")).seq, 1u);
}

TEST_P(JobStoreContract, AppendEventAssignsSeqAndStoresItFirst) {
  ASSERT_OK(store_->create(make_job("c0", "k", 1)));
  JobEvent e1 = unwrap(store_->append_event("c0", R"({"type":"STATUS","state":"QUEUED"})"));
  JobEvent e2 = unwrap(store_->append_event("c0", " \n{ \"type\": \"LOG\", \"text\": \"{}\" }\n"));
  JobEvent e3 = unwrap(store_->append_event("c0", "{}"));
  EXPECT_EQ(e1.seq, 1u);
  EXPECT_EQ(e2.seq, 2u);
  EXPECT_EQ(e3.seq, 3u);
  EXPECT_EQ(e1.job_id, "c0");
  EXPECT_EQ(e1.json, R"({"seq":1,"type":"STATUS","state":"QUEUED"})");
  EXPECT_EQ(e2.json, "{\"seq\":2, \"type\": \"LOG\", \"text\": \"{}\" }");
  EXPECT_EQ(e3.json, R"({"seq":3})");

  auto stored = unwrap(store_->events_after("c0", 0));
  ASSERT_EQ(stored.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(stored[i].seq, i + 1);
    EXPECT_EQ(stored[i].job_id, "c0");
  }
  EXPECT_EQ(stored[0].json, e1.json);
  EXPECT_EQ(stored[1].json, e2.json);
  EXPECT_EQ(stored[2].json, e3.json);
}

TEST_P(JobStoreContract, AppendEventRejectsTextThatIsNotAnObject) {
  ASSERT_OK(store_->create(make_job("c1", "k", 1)));
  for (const char* bad : {"", "   ", "[1,2]", "\"x\"", "{", "}", "x{}", "{\"a\":1", "{} x"}) {
    EXPECT_EQ(store_->append_event("c1", bad).status().code(), StatusCode::kInvalidArgument) << "'" << bad << "'";
  }
  EXPECT_TRUE(unwrap(store_->events_after("c1", 0)).empty());  // no seq was used up
  EXPECT_EQ(unwrap(store_->append_event("c1", "{\"ok\":true}")).seq, 1u);
}

TEST_P(JobStoreContract, EventsAfterReturnsOnlyLaterEventsInOrder) {
  ASSERT_OK(store_->create(make_job("d0", "k", 1)));
  ASSERT_OK(store_->create(make_job("d1", "k", 1)));
  for (int i = 1; i <= 5; ++i) {
    ASSERT_TRUE(store_->append_event("d0", "{\"n\":" + std::to_string(i) + "}").ok());
  }
  ASSERT_TRUE(store_->append_event("d1", "{\"n\":99}").ok());
  auto after2 = unwrap(store_->events_after("d0", 2));
  ASSERT_EQ(after2.size(), 3u);
  EXPECT_EQ(after2[0].seq, 3u);
  EXPECT_EQ(after2[0].json, R"({"seq":3,"n":3})");
  EXPECT_EQ(after2[2].seq, 5u);
  EXPECT_TRUE(unwrap(store_->events_after("d0", 5)).empty());
  EXPECT_TRUE(unwrap(store_->events_after("d0", UINT64_MAX)).empty());
}

// Checks that `events` are exactly seq 1..n, each stored with its own seq.
void expect_dense(const std::vector<JobEvent>& events, size_t n) {
  ASSERT_EQ(events.size(), n);
  for (size_t i = 0; i < n; ++i) {
    ASSERT_EQ(events[i].seq, i + 1);
    ASSERT_EQ(events[i].json.rfind("{\"seq\":" + std::to_string(i + 1) + ",", 0), 0u) << events[i].json;
  }
}

TEST_P(JobStoreContract, ConcurrentAppendsGetDenseUniqueSeqs) {
  ASSERT_OK(store_->create(make_job("e0", "k", 1)));
  constexpr int kThreads = 4, kPerThread = 200;
  std::vector<std::vector<uint64_t>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto e = store_->append_event("e0", "{\"thread\":" + std::to_string(t) + "}");
        if (e.ok()) got[t].push_back(e->seq);
      }
    });
  }
  for (auto& th : threads) th.join();

  std::vector<uint64_t> all;
  for (const auto& g : got) {
    EXPECT_EQ(g.size(), static_cast<size_t>(kPerThread));
    EXPECT_TRUE(std::is_sorted(g.begin(), g.end()));  // each thread sees its own seqs increase
    all.insert(all.end(), g.begin(), g.end());
  }
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), static_cast<size_t>(kThreads * kPerThread));
  for (size_t i = 0; i < all.size(); ++i) ASSERT_EQ(all[i], i + 1);
  expect_dense(unwrap(store_->events_after("e0", 0)), kThreads * kPerThread);
}

TEST_F(SqliteJobStoreTest, TwoConnectionsOnOneFileStillGetDenseSeqs) {
  // Two stores on one file behave as two server processes would: the write
  // lock (BEGIN IMMEDIATE + busy timeout), not the mutex, keeps seqs dense.
  ASSERT_OK(store_->create(make_job("e1", "k", 1)));
  auto second = SqliteJobStore::open(db_path());
  ASSERT_TRUE(second.ok()) << second.status().to_string();
  constexpr int kPerThread = 400;
  std::atomic<int> ready{0};
  std::vector<Status> failures[2];
  auto append = [&](SqliteJobStore* s, int t) {
    ++ready;
    while (ready.load() < 2) std::this_thread::yield();  // start together
    for (int i = 0; i < kPerThread; ++i) {
      auto e = s->append_event("e1", R"({"type":"LOG"})");
      if (!e.ok()) failures[t].push_back(e.status());
    }
  };
  std::thread a(append, store_.get(), 0), b(append, second->get(), 1);
  a.join();
  b.join();
  for (const auto& f : failures) {
    EXPECT_TRUE(f.empty()) << f.size() << " failed appends, first: " << f.front().to_string();
  }
  expect_dense(unwrap(store_->events_after("e1", 0)), 2 * kPerThread);
}

TEST_P(JobStoreContract, ReopeningTheFileKeepsJobsEventsAndKeys) {
  JobRecord j = make_job("f0", "owner1", 42, JobState::kCompleted);
  j.identity = "ident";
  j.request_id = "r1";
  j.result_size = 1234;
  j.result_sha256 = std::string(64, 'c');
  ASSERT_OK(store_->create(j));
  ASSERT_TRUE(store_->append_event("f0", R"({"type":"STATUS"})").ok());
  ASSERT_TRUE(store_->append_event("f0", R"({"type":"COMPLETED"})").ok());
  std::string key = unwrap(store_->create_key("ci"));

  reopen();  // a server restart

  expect_same(unwrap(store_->get("f0")), j);
  EXPECT_EQ(unwrap(store_->find_completed("ident"))->id, "f0");
  EXPECT_EQ(unwrap(store_->find_by_request_id("owner1", "r1"))->id, "f0");
  auto events = unwrap(store_->events_after("f0", 0));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].json, R"({"seq":2,"type":"COMPLETED"})");
  EXPECT_EQ(unwrap(store_->append_event("f0", R"({"type":"LOG"})")).seq, 3u);  // continues, no reuse
  auto found = unwrap(store_->find_key(key));
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->name, "ci");
}

TEST_P(JobStoreContract, CreatedKeyIsFoundAndWrongKeysAreNot) {
  int64_t before = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  std::string key = unwrap(store_->create_key("alice laptop"));
  ASSERT_EQ(key.size(), 5u + 64u);
  EXPECT_EQ(key.substr(0, 5), "loom_");
  EXPECT_TRUE(std::all_of(key.begin() + 5, key.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }));

  auto found = unwrap(store_->find_key(key));
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->key_id, sha256_hex(key).substr(0, 12));
  EXPECT_EQ(found->name, "alice laptop");
  EXPECT_GE(found->created_ms, before);

  std::string other = unwrap(store_->create_key("bob"));
  EXPECT_NE(other, key);
  EXPECT_EQ(unwrap(store_->find_key(other))->name, "bob");

  std::string wrong = key;
  wrong.back() = wrong.back() == '0' ? '1' : '0';
  EXPECT_FALSE(unwrap(store_->find_key(wrong)).has_value());
  EXPECT_FALSE(unwrap(store_->find_key("")).has_value());
  EXPECT_FALSE(unwrap(store_->find_key(sha256_hex(key))).has_value());  // the stored hash is not a key
}

TEST_F(SqliteJobStoreTest, KeyTextIsNotStoredInTheDatabaseFiles) {
  std::string key = unwrap(store_->create_key("secret-holder"));
  std::string hash = sha256_hex(key);
  auto contents = [&] {
    // The main file plus the WAL, whichever holds the row right now.
    return read_file_bytes(db_path()) + read_file_bytes(db_path() + "-wal");
  };
  std::string open_bytes = contents();
  EXPECT_NE(open_bytes.find(hash), std::string::npos) << "the hash should be stored; is this the right file?";
  EXPECT_EQ(open_bytes.find(key.substr(5)), std::string::npos);
  EXPECT_EQ(open_bytes.find(key), std::string::npos);

  store_.reset();  // closing checkpoints the WAL into the main file
  std::string closed_bytes = contents();
  EXPECT_NE(closed_bytes.find(hash), std::string::npos);
  EXPECT_EQ(closed_bytes.find(key.substr(5)), std::string::npos);
}

TEST(SqliteJobStoreOpen, FailsCleanlyOnAFileThatIsNotADatabase) {
  ServerTempDir dir;
  {
    std::ofstream out(dir.file("junk.db"), std::ios::binary);
    out << std::string(8192, 'x');
  }
  auto s = SqliteJobStore::open(dir.file("junk.db"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInternal) << s.status().to_string();
  EXPECT_NE(s.status().message().find("junk.db"), std::string::npos) << s.status().message();
}

TEST(SqliteJobStoreOpen, FailsCleanlyInAMissingDirectory) {
  ServerTempDir dir;
  auto s = SqliteJobStore::open(dir.file("no/such/dir/loom.db"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("no/such/dir/loom.db"), std::string::npos) << s.status().message();
}

}  // namespace
}  // namespace loom::server

namespace loom::server {
namespace {

TEST_P(JobStoreContract, SmallBlobsRoundTripSurviveReopenAndGoWithTheirJob) {
  JobRecord job;
  job.id = new_job_id();
  job.owner = "k";
  job.model = "m";
  ASSERT_TRUE(store_->create(job).ok());
  const std::string bytes("\0binary\xff bytes", 14);
  ASSERT_TRUE(store_->put_blob(1, job.id, bytes).ok());
  ASSERT_TRUE(store_->put_blob(0, job.id, "request").ok());
  auto none = store_->get_blob(1, "0123");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  reopen();
  auto got = store_->get_blob(1, job.id);
  ASSERT_TRUE(got.ok() && got->has_value()) << got.status().to_string();
  EXPECT_EQ(**got, bytes);
  ASSERT_TRUE(store_->put_blob(1, job.id, "replaced").ok());
  EXPECT_EQ(*store_->get_blob(1, job.id).value(), "replaced");
  ASSERT_TRUE(store_->remove(job.id).ok());
  EXPECT_FALSE(store_->get_blob(1, job.id).value().has_value());
  EXPECT_FALSE(store_->get_blob(0, job.id).value().has_value());
}

TEST_P(JobStoreContract, UpdateAndAppendStoreTheStateAndItsEventTogether) {
  JobRecord job;
  job.id = new_job_id();
  job.owner = "k";
  job.model = "m";
  ASSERT_TRUE(store_->create(job).ok());
  job.state = JobState::kRunning;
  auto ev = store_->update_and_append(job, R"({"type":"STATUS","state":"RUNNING"})");
  ASSERT_TRUE(ev.ok()) << ev.status().to_string();
  EXPECT_EQ(ev->seq, 1u);
  EXPECT_EQ(store_->get(job.id).value().state, JobState::kRunning);
  // An unknown job changes nothing: no event without its state.
  JobRecord ghost = job;
  ghost.id = new_job_id();
  EXPECT_EQ(store_->update_and_append(ghost, R"({"type":"STATUS"})").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(store_->events_after(ghost.id, 0).value().empty());
  // A malformed event leaves the state as it was.
  job.state = JobState::kCompleted;
  EXPECT_FALSE(store_->update_and_append(job, "not json").ok());
  EXPECT_EQ(store_->get(job.id).value().state, JobState::kRunning);
  EXPECT_EQ(store_->events_after(job.id, 0).value().size(), 1u);
}

TEST_F(SqliteJobStoreTest, TheWalIsCheckpointedIntoTheDatabaseFileInTheBackground) {
  JobRecord job;
  job.id = new_job_id();
  job.owner = "k";
  job.model = "m";
  ASSERT_TRUE(store_->create(job).ok());
  const uint64_t before = std::filesystem::file_size(db_path());
  // ~8 MB through the WAL: past the 1000-page threshold twice.
  for (int i = 0; i < 128; ++i) ASSERT_TRUE(store_->put_blob(1, job.id + std::to_string(i), std::string(64 << 10, 'x')).ok());
  uint64_t after = before;
  for (int i = 0; i < 500 && after < before + (4u << 20); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    after = std::filesystem::file_size(db_path());
  }
  EXPECT_GE(after, before + (4u << 20)) << "no checkpoint copied the WAL into " << db_path();
  EXPECT_EQ(store_->get_blob(1, job.id + "127").value()->size(), 64u << 10);
}

TEST_P(JobStoreContract, PendingWebhooksSurviveReopenUntilDeleted) {
  ASSERT_TRUE(store_->put_webhook({"j1:COMPLETED", "j1", "http://h/a", "{\"a\":1}", 0}).ok());
  ASSERT_TRUE(store_->put_webhook({"j2:ERROR", "j2", "http://h/b", "{}", 0}).ok());
  ASSERT_TRUE(store_->set_webhook_attempts("j1:COMPLETED", 3).ok());
  reopen();
  auto pending = store_->pending_webhooks();
  ASSERT_TRUE(pending.ok()) << pending.status().to_string();
  ASSERT_EQ(pending->size(), 2u);
  EXPECT_EQ((*pending)[0].event_id, "j1:COMPLETED");
  EXPECT_EQ((*pending)[0].attempts, 3);
  EXPECT_EQ((*pending)[0].body, "{\"a\":1}");
  ASSERT_TRUE(store_->delete_webhook("j1:COMPLETED").ok());
  EXPECT_EQ(store_->pending_webhooks().value().size(), 1u);
  EXPECT_EQ(store_->pending_webhooks().value()[0].url, "http://h/b");
}

TEST_P(JobStoreContract, CopyBlobGivesAnotherIdTheBytesAndSaysWhenThereAreNone) {
  ASSERT_TRUE(store_->put_blob(1, "aa", std::string(1000, 'x')).ok());
  auto copied = store_->copy_blob(1, "aa", "bb");
  ASSERT_TRUE(copied.ok()) << copied.status().to_string();
  EXPECT_TRUE(*copied);
  EXPECT_EQ(store_->get_blob(1, "bb").value().value_or(""), std::string(1000, 'x'));
  EXPECT_FALSE(store_->copy_blob(0, "aa", "cc").value()) << "kind 0 has no blob \"aa\"";
  EXPECT_FALSE(store_->get_blob(0, "cc").value().has_value());
  EXPECT_FALSE(store_->copy_blob(1, "missing", "dd").value());
}

// What only the Redis store promises: a job that ended is never written
// again, so a job two workers ran (after a reclaim) keeps one end.
class RedisJobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    redis_ = std::make_unique<loom::testing::RedisProcess>(dir_.path());
    auto r = Redis::open(redis_->url());
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    redis_client_ = *r;
    store_ = std::make_unique<RedisJobStore>(redis_client_);
  }
  ServerTempDir dir_;
  std::unique_ptr<loom::testing::RedisProcess> redis_;
  std::shared_ptr<Redis> redis_client_;
  std::unique_ptr<RedisJobStore> store_;
};

TEST_F(RedisJobStoreTest, AnEndedJobKeepsItsOneEndAndItsResult) {
  JobRecord job = make_job(new_job_id(), "k", 5, JobState::kRunning);
  ASSERT_OK(store_->create(job));
  job.state = JobState::kCompleted;
  job.result_sha256 = std::string(64, 'a');
  ASSERT_OK(store_->update_and_append(job, R"({"type":"COMPLETED"})").status());
  // The second run's end, whatever it is, is refused and leaves no event.
  JobRecord again = job;
  again.result_sha256 = std::string(64, 'b');
  auto second = store_->update_and_append(again, R"({"type":"COMPLETED"})");
  EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition) << second.status().to_string();
  again.state = JobState::kError;
  EXPECT_EQ(store_->update(again).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->get(job.id).value().result_sha256, std::string(64, 'a'));
  EXPECT_EQ(store_->get(job.id).value().state, JobState::kCompleted);
  EXPECT_EQ(store_->events_after(job.id, 0).value().size(), 1u);
  // The same state may still be written (a late cancel request flag).
  job.cancel_requested = true;
  EXPECT_OK_STATUS(store_->update(job));
  EXPECT_EQ(unwrap(store_->count_active("k")), 0u);
}

TEST_F(RedisJobStoreTest, DeathsAreCountedPerJob) {
  JobRecord job = make_job(new_job_id(), "k", 5, JobState::kRunning);
  ASSERT_OK(store_->create(job));
  EXPECT_EQ(unwrap(store_->add_death(job.id)), 1);
  EXPECT_EQ(unwrap(store_->add_death(job.id)), 2);
}

TEST_F(RedisJobStoreTest, BinaryAndInvalidUtf8FieldsRoundTripAndACorruptRecordIsAnError) {
  JobRecord job = make_job(new_job_id(), "k", 5, JobState::kError);
  job.error_message = std::string("bad \xff\xfe utf-8 \0 nul", 18);
  job.request_id = "r\n1";
  ASSERT_OK(store_->create(job));
  expect_same(unwrap(store_->get(job.id)), job);
  EXPECT_EQ(unwrap(store_->find_by_request_id("k", "r\n1"))->id, job.id);
  // Someone wrote a state no loom knows: an error that says so, no crash.
  ASSERT_TRUE(redis_client_->run({"HSET", "loom:job:" + job.id, "state", "BOGUS"}).ok());
  auto got = store_->get(job.id);
  EXPECT_EQ(got.status().code(), StatusCode::kInternal);
  EXPECT_NE(got.status().message().find("unknown state"), std::string::npos) << got.status().message();
}

TEST_F(RedisJobStoreTest, AcknowledgedWritesSurviveKill9OfRedis) {
  std::vector<std::string> made;
  for (int i = 0; i < 50; ++i) {
    JobRecord job = make_job(new_job_id(), "k", i, JobState::kQueued);
    ASSERT_OK(store_->create(job));
    ASSERT_OK(store_->append_event(job.id, R"({"type":"STATUS"})").status());
    made.push_back(job.id);
  }
  redis_->restart(/*hard=*/true);
  // The pool's connections broke; the next command reconnects.
  for (const std::string& id : made) {
    EXPECT_EQ(unwrap(store_->get(id)).state, JobState::kQueued);
    EXPECT_EQ(store_->events_after(id, 0).value().size(), 1u);
  }
  EXPECT_EQ(unwrap(store_->count_active("k")), 50u);
}

TEST(RedisUrl, BadUrlsAreNamedAndAbsentServersAreUnavailable) {
  EXPECT_EQ(parse_redis_url("http://x").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(parse_redis_url("redis://").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(parse_redis_url("redis://h:99999").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(parse_redis_url("redis://h:12/x").status().code(), StatusCode::kInvalidArgument);
  auto a = parse_redis_url("redis://10.0.0.1:7000/3");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "10.0.0.1");
  EXPECT_EQ(a->port, 7000);
  EXPECT_EQ(a->db, 3);
  EXPECT_EQ(parse_redis_url("redis://h").value().port, 6379);
  auto none = Redis::open("redis://127.0.0.1:" + std::to_string(loom::testing::free_port()));
  EXPECT_EQ(none.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(none.status().message().find("cannot reach redis"), std::string::npos) << none.status().message();
}

}  // namespace
}  // namespace loom::server
