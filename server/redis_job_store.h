// JobStore over Redis: the scale-out backend, shared by any number of
// stateless loom-server processes and the loom-workers.
//
// Layout (every key under one prefix, "loom:" by default):
//   job:ID                 hash: the JobRecord's fields, next_seq, deaths
//   ev:ID                  stream: the job's events, entry id SEQ-0, field json
//   owner:KEY_ID           sorted set of the owner's job ids by created_ms
//   active:KEY_ID          set of the owner's jobs not in a terminal state
//   state:STATE            set of job ids in that state (recovery, listings)
//   terminal               sorted set of ended jobs by updated_ms (retention)
//   identity:SHA           the newest COMPLETED job with that identity (dedup)
//   reqid:SHA1(owner,rid)  the job submitted under that request id
//   blob:KIND:ID           small request and result bytes
//   webhooks               hash: event_id -> pending webhook (JSON)
//   keys, key-ids          hashes: SHA-256(key) -> key JSON, key_id -> SHA-256
// Writes that touch several keys run as one Lua script, so a record, its
// indexes and its event change together or not at all (Redis runs a script
// atomically). Durability is Redis's: run it with AOF (appendonly yes; with
// appendfsync everysec a power loss may cost the last second, with always
// nothing). Scripts compute key names from the prefix, which a single Redis
// allows (Redis Cluster would not; loom does not use it).
//
// Beyond the SQLite store: a job that has ended is never written again (an
// update or event that would change its state fails with
// FAILED_PRECONDITION), so a job run twice after a reclaim keeps one result
// and one terminal event.
// Thread safety: safe from any thread (the Redis pool is).
#pragma once

#include <memory>
#include <string>

#include "server/job_store.h"
#include "server/redis_client.h"

namespace loom::server {

class RedisJobStore : public JobStore {
 public:
  RedisJobStore(std::shared_ptr<Redis> redis, std::string prefix = "loom:")
      : redis_(std::move(redis)), prefix_(std::move(prefix)) {}

  Status create(const JobRecord& job) override;
  Result<JobRecord> get(const std::string& id) override;
  // FAILED_PRECONDITION when the job has ended and `job` changes its state.
  Status update(const JobRecord& job) override;
  Result<std::vector<JobRecord>> list_by_owner(const std::string& owner, size_t limit) override;
  Result<std::vector<JobRecord>> list_by_state(const std::vector<JobState>& states) override;
  Result<std::optional<JobRecord>> find_completed(const std::string& identity) override;
  Result<std::optional<JobRecord>> find_by_request_id(const std::string& owner,
                                                      const std::string& request_id) override;
  Result<uint64_t> count_active(const std::string& owner) override;
  Result<std::vector<JobRecord>> list_expired(int64_t before_ms) override;
  Status remove(const std::string& id) override;
  Status put_blob(int kind, const std::string& id, std::string_view bytes) override;
  Result<std::optional<std::string>> get_blob(int kind, const std::string& id) override;
  Result<bool> copy_blob(int kind, const std::string& from, const std::string& to) override;
  Result<JobEvent> append_event(const std::string& job_id, const std::string& json_without_seq) override;
  Result<std::vector<JobEvent>> events_after(const std::string& job_id, uint64_t after_seq) override;
  // FAILED_PRECONDITION when the job has ended already (nothing is written).
  Result<JobEvent> update_and_append(const JobRecord& job, const std::string& json_without_seq) override;
  Status put_webhook(const PendingWebhook& hook) override;
  Status set_webhook_attempts(const std::string& event_id, int attempts) override;
  Status delete_webhook(const std::string& event_id) override;
  Result<std::vector<PendingWebhook>> pending_webhooks() override;
  Result<std::string> create_key(const std::string& name) override;
  Result<std::optional<ApiKey>> find_key(const std::string& key) override;
  Result<std::vector<ApiKey>> list_keys() override;
  Status revoke_key(const std::string& key_id) override;

  // Counts one more worker that died while running the job; returns the count.
  Result<int64_t> add_death(const std::string& id);

  // Every event stored from now on is also published on `channel` (as
  // redis_bus.h's encode_bus_event(origin, ...)) by the same script. Call
  // before the store is shared between threads.
  void publish_events(std::string channel, std::string origin) {
    publish_channel_ = std::move(channel);
    origin_ = std::move(origin);
  }

  const std::shared_ptr<Redis>& redis() const { return redis_; }
  const std::string& prefix() const { return prefix_; }

 private:
  Result<JobEvent> write(const char* mode, const JobRecord* job, const std::string& id, const std::string& event);
  Result<std::optional<JobRecord>> get_if_any(const std::string& id);
  Result<std::vector<JobRecord>> records(const std::vector<std::string>& ids);

  std::shared_ptr<Redis> redis_;
  const std::string prefix_;
  std::string publish_channel_;  // "" = the caller publishes
  std::string origin_;
};

}  // namespace loom::server
