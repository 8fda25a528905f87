#include "server/redis_job_store.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>

#include "graph/sha256.h"

namespace loom::server {

using json = nlohmann::json;

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Shared by the scripts: key names and the terminal states.
constexpr const char* kLuaCommon = R"lua(
local p = ARGV[1]
local terminal = {COMPLETED = true, ERROR = true, CANCELLED = true}
local function reqkey(owner, rid) return p .. 'reqid:' .. redis.sha1hex(owner .. '\n' .. rid) end
-- Moves job `id` from state `old` (nil: new) to `new` in the indexes.
local function index(id, owner, old, new, updated)
  if old and old ~= new then redis.call('SREM', p .. 'state:' .. old, id) end
  redis.call('SADD', p .. 'state:' .. new, id)
  if terminal[new] then
    redis.call('SREM', p .. 'active:' .. owner, id)
    redis.call('ZADD', p .. 'terminal', updated, id)
  else
    redis.call('SADD', p .. 'active:' .. owner, id)
  end
end
)lua";

// ARGV: prefix, id, then field/value pairs. Fails if the id exists.
constexpr const char* kLuaCreate = R"lua(
local id = ARGV[2]
local jk = p .. 'job:' .. id
if redis.call('EXISTS', jk) == 1 then return redis.error_reply('INVALID_ARGUMENT job ' .. id .. ' exists') end
local f = {}
for i = 3, #ARGV, 2 do f[ARGV[i]] = ARGV[i + 1] end
if f.request_id ~= '' then
  if not redis.call('SET', reqkey(f.owner, f.request_id), id, 'NX') then
    return redis.error_reply('FAILED_PRECONDITION request id is in use by another job')
  end
end
redis.call('HSET', jk, unpack(ARGV, 3))
redis.call('HSET', jk, 'next_seq', 0)
redis.call('ZADD', p .. 'owner:' .. f.owner, f.created_ms, id)
index(id, f.owner, nil, f.state, f.updated_ms)
if f.state == 'COMPLETED' and f.identity ~= '' then redis.call('SET', p .. 'identity:' .. f.identity, id) end
return 'OK'
)lua";

// ARGV: prefix, mode ('update', 'update_append', 'append'), id, event json,
// publish channel ('' = none), origin, then field/value pairs. Returns
// {seq, text} when it appends; with a channel, the stored event is also
// published there as redis_bus.h encodes it (one round trip, not two).
constexpr const char* kLuaWrite = R"lua(
local mode, id, ev, channel, origin = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local jk = p .. 'job:' .. id
if redis.call('EXISTS', jk) == 0 then return redis.error_reply('NOT_FOUND job ' .. id .. ' does not exist') end
if mode ~= 'append' then
  local f = {}
  for i = 7, #ARGV, 2 do f[ARGV[i]] = ARGV[i + 1] end
  local old = redis.call('HMGET', jk, 'state', 'owner')
  if terminal[old[1]] and (f.state ~= old[1] or mode == 'update_append') then
    return redis.error_reply('FAILED_PRECONDITION job ' .. id .. ' has ended (' .. old[1] .. ')')
  end
  redis.call('HSET', jk, unpack(ARGV, 7))
  index(id, old[2], old[1], f.state, f.updated_ms)
  if f.state == 'COMPLETED' and f.identity ~= '' then redis.call('SET', p .. 'identity:' .. f.identity, id) end
end
if mode == 'update' then return 'OK' end
local seq = redis.call('HINCRBY', jk, 'next_seq', 1)
local inner = string.match(ev, '^%s*{(.*)}%s*$')
local text = '{"seq":' .. seq
if not string.match(inner, '^%s*$') then text = text .. ',' .. inner end
text = text .. '}'
redis.call('XADD', p .. 'ev:' .. id, seq .. '-0', 'json', text)
if channel ~= '' then redis.call('PUBLISH', channel, origin .. '\n' .. id .. '\n' .. seq .. '\n' .. text) end
return {seq, text}
)lua";

// ARGV: prefix, id.
constexpr const char* kLuaRemove = R"lua(
local id = ARGV[2]
local jk = p .. 'job:' .. id
local r = redis.call('HMGET', jk, 'owner', 'state', 'identity', 'request_id')
if not r[1] then return redis.error_reply('NOT_FOUND job ' .. id .. ' does not exist') end
redis.call('DEL', jk, p .. 'ev:' .. id, p .. 'blob:0:' .. id, p .. 'blob:1:' .. id)
redis.call('ZREM', p .. 'owner:' .. r[1], id)
redis.call('SREM', p .. 'active:' .. r[1], id)
redis.call('SREM', p .. 'state:' .. r[2], id)
redis.call('ZREM', p .. 'terminal', id)
if r[3] ~= '' and redis.call('GET', p .. 'identity:' .. r[3]) == id then redis.call('DEL', p .. 'identity:' .. r[3]) end
if r[4] ~= '' and redis.call('GET', reqkey(r[1], r[4])) == id then redis.call('DEL', reqkey(r[1], r[4])) end
return 'OK'
)lua";

std::vector<std::string> record_fields(const JobRecord& j) {
  return {"id", j.id,
          "owner", j.owner,
          "model", j.model,
          "state", job_state_name(j.state),
          "created_ms", std::to_string(j.created_ms),
          "updated_ms", std::to_string(j.updated_ms),
          "error_code", j.error_code,
          "error_message", j.error_message,
          "identity", j.identity,
          "request_id", j.request_id,
          "callback_url", j.callback_url,
          "result_size", std::to_string(j.result_size),
          "result_sha256", j.result_sha256,
          "cancel_requested", j.cancel_requested ? "1" : "0"};
}

Result<JobRecord> parse_record(const RedisReply& reply) {
  JobRecord j;
  bool has_state = false;
  for (auto& [k, v] : reply_pairs(reply)) {
    if (k == "id") j.id = v;
    else if (k == "owner") j.owner = v;
    else if (k == "model") j.model = v;
    else if (k == "state") {
      j.state = parse_job_state(v);
      if (j.state == JobState::kUnknown) {
        return internal_error("redis: job record has an unknown state \"" + v.substr(0, 40) + "\"");
      }
      has_state = true;
    } else if (k == "created_ms") j.created_ms = parse_int(v);
    else if (k == "updated_ms") j.updated_ms = parse_int(v);
    else if (k == "error_code") j.error_code = v;
    else if (k == "error_message") j.error_message = v;
    else if (k == "identity") j.identity = v;
    else if (k == "request_id") j.request_id = v;
    else if (k == "callback_url") j.callback_url = v;
    else if (k == "result_size") j.result_size = static_cast<uint64_t>(parse_int(v));
    else if (k == "result_sha256") j.result_sha256 = v;
    else if (k == "cancel_requested") j.cancel_requested = v == "1";
  }
  if (!has_state || j.id.empty()) return internal_error("redis: job record is incomplete");
  return j;
}

}  // namespace

Result<JobEvent> RedisJobStore::write(const char* mode, const JobRecord* job, const std::string& id,
                                      const std::string& event) {
  static const std::string script = std::string(kLuaCommon) + kLuaWrite;
  if (std::string(mode) != "update") LOOM_RETURN_IF_ERROR(splice_seq(event, 0).status());
  std::vector<std::string> fields;
  if (job != nullptr) fields = record_fields(*job);
  std::vector<std::string_view> args = {"EVAL", script, "0", prefix_, mode, id, event, publish_channel_, origin_};
  for (const std::string& f : fields) args.push_back(f);
  LOOM_ASSIGN_OR_RETURN(RedisReply r, redis_->run(args));
  JobEvent out;
  out.job_id = id;
  if (r.type == RedisReply::Type::kArray && r.elements.size() == 2) {
    out.seq = static_cast<uint64_t>(r.elements[0].as_int());
    out.json = r.elements[1].str;
  }
  return out;
}

Status RedisJobStore::create(const JobRecord& job) {
  static const std::string script = std::string(kLuaCommon) + kLuaCreate;
  std::vector<std::string> fields = record_fields(job);
  std::vector<std::string_view> args = {"EVAL", script, "0", prefix_, job.id};
  for (const std::string& f : fields) args.push_back(f);
  return redis_->run(args).status();
}

Result<std::optional<JobRecord>> RedisJobStore::get_if_any(const std::string& id) {
  LOOM_ASSIGN_OR_RETURN(RedisReply r, redis_->run({"HGETALL", prefix_ + "job:" + id}));
  if (r.elements.empty()) return std::optional<JobRecord>();
  LOOM_ASSIGN_OR_RETURN(JobRecord j, parse_record(r));
  return std::optional<JobRecord>(std::move(j));
}

Result<JobRecord> RedisJobStore::get(const std::string& id) {
  LOOM_ASSIGN_OR_RETURN(std::optional<JobRecord> j, get_if_any(id));
  if (!j) return not_found("no job " + id.substr(0, 64));
  return std::move(*j);
}

Status RedisJobStore::update(const JobRecord& job) { return write("update", &job, job.id, "").status(); }

Result<std::vector<JobRecord>> RedisJobStore::records(const std::vector<std::string>& ids) {
  std::vector<JobRecord> out;
  for (const std::string& id : ids) {
    LOOM_ASSIGN_OR_RETURN(std::optional<JobRecord> j, get_if_any(id));
    if (j) out.push_back(std::move(*j));  // removed meanwhile
  }
  return out;
}

Result<std::vector<JobRecord>> RedisJobStore::list_by_owner(const std::string& owner, size_t limit) {
  if (limit == 0) return std::vector<JobRecord>();
  const std::string stop = std::to_string(std::min<size_t>(limit, 1u << 20) - 1);
  LOOM_ASSIGN_OR_RETURN(RedisReply r, redis_->run({"ZREVRANGE", prefix_ + "owner:" + owner, "0", stop}));
  std::vector<std::string> ids;
  for (auto& e : r.elements) ids.push_back(e.str);
  return records(ids);
}

Result<std::vector<JobRecord>> RedisJobStore::list_by_state(const std::vector<JobState>& states) {
  std::vector<std::string> ids;
  for (JobState s : states) {
    LOOM_ASSIGN_OR_RETURN(RedisReply r, redis_->run({"SMEMBERS", prefix_ + "state:" + job_state_name(s)}));
    for (auto& e : r.elements) ids.push_back(e.str);
  }
  LOOM_ASSIGN_OR_RETURN(std::vector<JobRecord> out, records(ids));
  std::stable_sort(out.begin(), out.end(), [](const JobRecord& a, const JobRecord& b) { return a.created_ms < b.created_ms; });
  return out;
}

Result<std::optional<JobRecord>> RedisJobStore::find_completed(const std::string& identity) {
  if (identity.empty()) return std::optional<JobRecord>();
  LOOM_ASSIGN_OR_RETURN(RedisReply r, redis_->run({"GET", prefix_ + "identity:" + identity}));
  if (r.nil()) return std::optional<JobRecord>();
  LOOM_ASSIGN_OR_RETURN(std::optional<JobRecord> j, get_if_any(r.str));
  if (!j || j->state != JobState::kCompleted) return std::optional<JobRecord>();
  return j;
}

Result<std::optional<JobRecord>> RedisJobStore::find_by_request_id(const std::string& owner,
                                                                   const std::string& request_id) {
  if (request_id.empty()) return std::optional<JobRecord>();
  // The same name the scripts give it: sha1 of owner, newline, request id.
  LOOM_ASSIGN_OR_RETURN(RedisReply key, redis_->run({"EVAL", "return redis.sha1hex(ARGV[1])", "0",
                                                     owner + "\n" + request_id}));
  LOOM_ASSIGN_OR_RETURN(RedisReply r, redis_->run({"GET", prefix_ + "reqid:" + key.str}));
  if (r.nil()) return std::optional<JobRecord>();
  return get_if_any(r.str);
}

Result<uint64_t> RedisJobStore::count_active(const std::string& owner) {
  LOOM_ASSIGN_OR_RETURN(RedisReply r, redis_->run({"SCARD", prefix_ + "active:" + owner}));
  return static_cast<uint64_t>(r.as_int());
}

Result<std::vector<JobRecord>> RedisJobStore::list_expired(int64_t before_ms) {
  LOOM_ASSIGN_OR_RETURN(RedisReply r, redis_->run({"ZRANGEBYSCORE", prefix_ + "terminal", "-inf",
                                                   "(" + std::to_string(before_ms), "LIMIT", "0", "10000"}));
  std::vector<std::string> ids;
  for (auto& e : r.elements) ids.push_back(e.str);
  return records(ids);
}

Status RedisJobStore::remove(const std::string& id) {
  static const std::string script = std::string(kLuaCommon) + kLuaRemove;
  return redis_->run({"EVAL", script, "0", prefix_, id}).status();
}

Status RedisJobStore::put_blob(int kind, const std::string& id, std::string_view bytes) {
  return redis_->run({"SET", prefix_ + "blob:" + std::to_string(kind) + ":" + id, bytes}).status();
}

Result<std::optional<std::string>> RedisJobStore::get_blob(int kind, const std::string& id) {
  LOOM_ASSIGN_OR_RETURN(RedisReply r, redis_->run({"GET", prefix_ + "blob:" + std::to_string(kind) + ":" + id}));
  if (r.nil()) return std::optional<std::string>();
  return std::optional<std::string>(std::move(r.str));
}

Result<bool> RedisJobStore::copy_blob(int kind, const std::string& from, const std::string& to) {
  const std::string k = prefix_ + "blob:" + std::to_string(kind) + ":";
  LOOM_ASSIGN_OR_RETURN(RedisReply r, redis_->run({"COPY", k + from, k + to, "REPLACE"}));
  return r.as_int() == 1;
}

Result<JobEvent> RedisJobStore::append_event(const std::string& job_id, const std::string& json_without_seq) {
  return write("append", nullptr, job_id, json_without_seq);
}

Result<JobEvent> RedisJobStore::update_and_append(const JobRecord& job, const std::string& json_without_seq) {
  return write("update_append", &job, job.id, json_without_seq);
}

Result<std::vector<JobEvent>> RedisJobStore::events_after(const std::string& job_id, uint64_t after_seq) {
  // Entry ids are SEQ-0: the range starts just after `after_seq`.
  const std::string start = after_seq >= (uint64_t{1} << 62) ? "+" : std::to_string(after_seq + 1) + "-0";
  LOOM_ASSIGN_OR_RETURN(RedisReply r, redis_->run({"XRANGE", prefix_ + "ev:" + job_id, start, "+"}));
  std::vector<JobEvent> out;
  for (const RedisReply& entry : r.elements) {
    if (entry.elements.size() != 2) continue;
    JobEvent ev;
    ev.job_id = job_id;
    const std::string& id = entry.elements[0].str;
    ev.seq = static_cast<uint64_t>(parse_int(std::string_view(id).substr(0, id.find('-'))));
    for (auto& [k, v] : reply_pairs(entry.elements[1])) {
      if (k == "json") ev.json = v;
    }
    out.push_back(std::move(ev));
  }
  return out;
}

Status RedisJobStore::put_webhook(const PendingWebhook& hook) {
  // `n` keeps the order they were recorded in (a hash has none of its own).
  LOOM_ASSIGN_OR_RETURN(RedisReply n, redis_->run({"INCR", prefix_ + "webhooks:n"}));
  json j = {{"job_id", hook.job_id}, {"url", hook.url}, {"body", hook.body}, {"attempts", hook.attempts},
            {"n", n.as_int()}};
  return redis_->run({"HSET", prefix_ + "webhooks", hook.event_id,
                      j.dump(-1, ' ', false, json::error_handler_t::replace)})
      .status();
}

Status RedisJobStore::set_webhook_attempts(const std::string& event_id, int attempts) {
  static const std::string script = R"lua(
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
local j = cjson.decode(v)
j.attempts = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(j))
return 1
)lua";
  return redis_->run({"EVAL", script, "1", prefix_ + "webhooks", event_id, std::to_string(attempts)}).status();
}

Status RedisJobStore::delete_webhook(const std::string& event_id) {
  return redis_->run({"HDEL", prefix_ + "webhooks", event_id}).status();
}

Result<std::vector<PendingWebhook>> RedisJobStore::pending_webhooks() {
  LOOM_ASSIGN_OR_RETURN(RedisReply r, redis_->run({"HGETALL", prefix_ + "webhooks"}));
  std::vector<std::pair<int64_t, PendingWebhook>> found;
  for (auto& [event_id, v] : reply_pairs(r)) {
    json j = json::parse(v, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j["n"].is_number_integer() || !j["attempts"].is_number_integer()) continue;
    PendingWebhook h;
    h.event_id = event_id;
    auto text = [&j](const char* k) { return j[k].is_string() ? j[k].get<std::string>() : std::string(); };
    h.job_id = text("job_id");
    h.url = text("url");
    h.body = text("body");
    h.attempts = j["attempts"].get<int>();
    found.emplace_back(j["n"].get<int64_t>(), std::move(h));
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<PendingWebhook> out;
  for (auto& f : found) out.push_back(std::move(f.second));
  return out;
}

Result<std::string> RedisJobStore::create_key(const std::string& name) {
  LOOM_ASSIGN_OR_RETURN(std::string key, new_api_key(name));
  const std::string hash = sha256_hex(key);
  const std::string key_id = hash.substr(0, 12);
  json j = {{"key_id", key_id}, {"name", name}, {"created_ms", now_ms()}};
  LOOM_RETURN_IF_ERROR(redis_->run({"HSET", prefix_ + "keys", hash,
                                    j.dump(-1, ' ', false, json::error_handler_t::replace)})
                           .status());
  LOOM_RETURN_IF_ERROR(redis_->run({"HSET", prefix_ + "key-ids", key_id, hash}).status());
  return key;
}

namespace {
std::optional<ApiKey> parse_key(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j["key_id"].is_string() || !j["name"].is_string() || !j["created_ms"].is_number_integer()) {
    return std::nullopt;
  }
  return ApiKey{j["key_id"].get<std::string>(), j["name"].get<std::string>(), j["created_ms"].get<int64_t>()};
}
}  // namespace

Result<std::optional<ApiKey>> RedisJobStore::find_key(const std::string& key) {
  LOOM_ASSIGN_OR_RETURN(RedisReply r, redis_->run({"HGET", prefix_ + "keys", sha256_hex(key)}));
  if (r.nil()) return std::optional<ApiKey>();
  return parse_key(r.str);
}

Result<std::vector<ApiKey>> RedisJobStore::list_keys() {
  LOOM_ASSIGN_OR_RETURN(RedisReply r, redis_->run({"HVALS", prefix_ + "keys"}));
  std::vector<ApiKey> out;
  for (auto& e : r.elements) {
    if (auto k = parse_key(e.str)) out.push_back(std::move(*k));
  }
  std::sort(out.begin(), out.end(), [](const ApiKey& a, const ApiKey& b) { return a.created_ms < b.created_ms; });
  return out;
}

Status RedisJobStore::revoke_key(const std::string& key_id) {
  static const std::string script = R"lua(
local h = redis.call('HGET', KEYS[2], ARGV[1])
if not h then return redis.error_reply('NOT_FOUND no API key with id ' .. ARGV[1]) end
redis.call('HDEL', KEYS[1], h)
redis.call('HDEL', KEYS[2], ARGV[1])
return 'OK'
)lua";
  return redis_->run({"EVAL", script, "2", prefix_ + "keys", prefix_ + "key-ids", key_id}).status();
}

Result<int64_t> RedisJobStore::add_death(const std::string& id) {
  LOOM_ASSIGN_OR_RETURN(RedisReply r, redis_->run({"HINCRBY", prefix_ + "job:" + id, "deaths", "1"}));
  return static_cast<int64_t>(r.as_int());
}

}  // namespace loom::server
