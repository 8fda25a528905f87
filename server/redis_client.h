// A small synchronous Redis client over hiredis 0.14 (C), for the
// scale-out backend: job records, events, queues and the model registry.
//
// Redis is addressed by URL, redis://HOST:PORT[/DB] (the port defaults to
// 6379, the database to 0). Every failure becomes a Status: UNAVAILABLE
// when Redis cannot be reached or the connection broke, INTERNAL for an
// error reply, except error replies from loom's own scripts, which start
// with a StatusCode name ("FAILED_PRECONDITION ...") and keep that code.
//
// Ownership: RedisConnection owns one hiredis context. Redis (the pool)
// owns idle connections and lends one per command.
// Thread safety: a RedisConnection belongs to one thread at a time; Redis
// is safe from any thread. Calls block on the network: keep them off Asio
// I/O threads, as with the SQLite store.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "graph/status.h"

struct redisContext;

namespace loom::server {

struct RedisAddress {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
  std::string text() const { return "redis://" + host + ":" + std::to_string(port) + "/" + std::to_string(db); }
};
// INVALID_ARGUMENT naming what is wrong with the URL.
Result<RedisAddress> parse_redis_url(std::string_view url);

struct RedisReply {
  enum class Type { kNil, kString, kInteger, kArray, kStatus };
  Type type = Type::kNil;
  std::string str;  // kString, kStatus
  long long integer = 0;
  std::vector<RedisReply> elements;  // kArray

  bool nil() const { return type == Type::kNil; }
  // The integer, or a string reply holding one (HGET of a counter); `fallback` otherwise.
  long long as_int(long long fallback = 0) const;
};

class RedisConnection {
 public:
  static Result<std::unique_ptr<RedisConnection>> connect(const RedisAddress& address,
                                                          std::chrono::milliseconds timeout);
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // One command; args are binary safe.
  Result<RedisReply> command(const std::vector<std::string_view>& args);
  // Sends a command without reading its reply (SUBSCRIBE), then read() them.
  Status send(const std::vector<std::string_view>& args);
  // The next reply, waiting up to `timeout`; nullopt when none came.
  Result<std::optional<RedisReply>> read(std::chrono::milliseconds timeout);
  // False once an I/O error broke it (the pool drops it).
  bool usable() const { return usable_; }

 private:
  RedisConnection(redisContext* c, RedisAddress address) : c_(c), address_(std::move(address)) {}
  Status io_error(const char* what);
  redisContext* c_;
  RedisAddress address_;
  bool usable_ = true;
};

class Redis {
 public:
  // How long one command keeps retrying while Redis is unreachable (a
  // restart takes about a second): callers see UNAVAILABLE after this.
  static constexpr std::chrono::milliseconds kRetryFor{10000};

  // Connects once to check the address (UNAVAILABLE when nothing answers).
  static Result<std::shared_ptr<Redis>> open(std::string_view url);

  // Runs one command on a pooled connection. A connection that breaks is
  // replaced and the command retried until kRetryFor has passed: commands
  // given here must be safe to repeat (loom's are: their scripts check
  // before they write).
  Result<RedisReply> run(const std::vector<std::string_view>& args);
  Result<RedisReply> run(std::initializer_list<std::string_view> args) {
    return run(std::vector<std::string_view>(args));
  }
  // A connection of the caller's own, for blocking reads and subscriptions.
  Result<std::unique_ptr<RedisConnection>> dedicated();
  const RedisAddress& address() const { return address_; }

 private:
  explicit Redis(RedisAddress address) : address_(std::move(address)) {}
  RedisAddress address_;
  std::mutex mu_;  // guards idle_
  std::vector<std::unique_ptr<RedisConnection>> idle_;
};

// The decimal integer `text`, or `fallback` when it is not one.
long long parse_int(std::string_view text, long long fallback = 0);

// Reply helpers for the shapes loom reads.
// A flat [field, value, field, value ...] array (HGETALL, stream entry fields)
// as pairs; a non-array gives none.
std::vector<std::pair<std::string, std::string>> reply_pairs(const RedisReply& reply);

}  // namespace loom::server
