#include "server/redis_client.h"

#include <hiredis/hiredis.h>
#include <poll.h>

#include <cerrno>
#include <charconv>
#include <thread>

#include "transport/wire.h"

namespace loom::server {

namespace {

RedisReply convert(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
      break;
    default: break;  // nil
  }
  return out;
}

// An error reply as a Status: loom's scripts name their StatusCode first.
Status error_reply(const redisReply* r) {
  std::string text(r->str, r->len);
  size_t space = text.find(' ');
  if (space != std::string::npos) {
    if (auto code = transport::parse_status_code(std::string_view(text).substr(0, space))) {
      return Status(*code, text.substr(space + 1));
    }
  }
  return internal_error("redis: " + text);
}

Result<RedisReply> take(redisReply* r) {
  if (r->type == REDIS_REPLY_ERROR) {
    Status s = error_reply(r);
    freeReplyObject(r);
    return s;
  }
  RedisReply out = convert(r);
  freeReplyObject(r);
  return out;
}

}  // namespace

Result<RedisAddress> parse_redis_url(std::string_view url) {
  constexpr std::string_view kScheme = "redis://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    return invalid_argument("redis URL must start with redis:// (got \"" + std::string(url.substr(0, 80)) + "\")");
  }
  std::string_view rest = url.substr(kScheme.size());
  RedisAddress a;
  size_t slash = rest.find('/');
  std::string_view hostport = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    std::string_view db = rest.substr(slash + 1);
    if (!db.empty()) {
      auto [p, ec] = std::from_chars(db.data(), db.data() + db.size(), a.db);
      if (ec != std::errc() || p != db.data() + db.size() || a.db < 0 || a.db > 1 << 16) {
        return invalid_argument("redis URL: database \"" + std::string(db.substr(0, 20)) + "\" is not a number");
      }
    }
  }
  size_t colon = hostport.rfind(':');
  if (colon != std::string_view::npos) {
    std::string_view port = hostport.substr(colon + 1);
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), a.port);
    if (ec != std::errc() || p != port.data() + port.size() || a.port <= 0 || a.port > 65535) {
      return invalid_argument("redis URL: port \"" + std::string(port.substr(0, 20)) + "\" is not 1..65535");
    }
    hostport = hostport.substr(0, colon);
  }
  if (hostport.empty()) return invalid_argument("redis URL has no host");
  a.host = std::string(hostport);
  return a;
}

long long parse_int(std::string_view text, long long fallback) {
  long long v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  return ec == std::errc() && p == text.data() + text.size() && !text.empty() ? v : fallback;
}

long long RedisReply::as_int(long long fallback) const {
  if (type == Type::kInteger) return integer;
  if (type != Type::kString) return fallback;
  return parse_int(str, fallback);
}

std::vector<std::pair<std::string, std::string>> reply_pairs(const RedisReply& reply) {
  std::vector<std::pair<std::string, std::string>> out;
  if (reply.type != RedisReply::Type::kArray) return out;
  for (size_t i = 0; i + 1 < reply.elements.size(); i += 2) {
    out.emplace_back(reply.elements[i].str, reply.elements[i + 1].str);
  }
  return out;
}

Result<std::unique_ptr<RedisConnection>> RedisConnection::connect(const RedisAddress& address,
                                                                  std::chrono::milliseconds timeout) {
  timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
  redisContext* c = redisConnectWithTimeout(address.host.c_str(), address.port, tv);
  if (c == nullptr) return Status(StatusCode::kUnavailable, "redis at " + address.text() + ": out of memory");
  if (c->err != 0) {
    std::string why = c->errstr;
    redisFree(c);
    return Status(StatusCode::kUnavailable, "cannot reach redis at " + address.text() + ": " + why);
  }
  std::unique_ptr<RedisConnection> conn(new RedisConnection(c, address));
  // Commands never block for long; blocking reads use read() with poll.
  timeval cmd{30, 0};
  redisSetTimeout(c, cmd);
  if (address.db != 0) {
    const std::string db = std::to_string(address.db);
    LOOM_RETURN_IF_ERROR(conn->command({"SELECT", db}).status());
  }
  return conn;
}

RedisConnection::~RedisConnection() { redisFree(c_); }

Status RedisConnection::io_error(const char* what) {
  usable_ = false;
  return Status(StatusCode::kUnavailable, std::string("redis at ") + address_.text() + ": " + what + ": " +
                                              (c_->err != 0 ? c_->errstr : "connection lost"));
}

Result<RedisReply> RedisConnection::command(const std::vector<std::string_view>& args) {
  if (!usable_) return io_error("command");
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (std::string_view a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* r = static_cast<redisReply*>(redisCommandArgv(c_, static_cast<int>(argv.size()), argv.data(), lens.data()));
  if (r == nullptr) return io_error(args.empty() ? "command" : std::string(args[0]).c_str());
  return take(r);
}

Status RedisConnection::send(const std::vector<std::string_view>& args) {
  if (!usable_) return io_error("send");
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (std::string_view a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  if (redisAppendCommandArgv(c_, static_cast<int>(argv.size()), argv.data(), lens.data()) != REDIS_OK) {
    return io_error("send");
  }
  int done = 0;
  while (!done) {
    if (redisBufferWrite(c_, &done) != REDIS_OK) return io_error("send");
  }
  return Status();
}

Result<std::optional<RedisReply>> RedisConnection::read(std::chrono::milliseconds timeout) {
  if (!usable_) return io_error("read");
  void* reply = nullptr;
  // A reply may be parsed already from an earlier read.
  if (redisGetReplyFromReader(c_, &reply) != REDIS_OK) return io_error("read");
  if (reply == nullptr) {
    pollfd p{c_->fd, POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (n < 0 && errno != EINTR) return io_error("poll");
    if (n <= 0) return std::optional<RedisReply>();
    if (redisBufferRead(c_) != REDIS_OK) return io_error("read");
    if (redisGetReplyFromReader(c_, &reply) != REDIS_OK) return io_error("read");
    if (reply == nullptr) return std::optional<RedisReply>();
  }
  LOOM_ASSIGN_OR_RETURN(RedisReply r, take(static_cast<redisReply*>(reply)));
  return std::optional<RedisReply>(std::move(r));
}

Result<std::shared_ptr<Redis>> Redis::open(std::string_view url) {
  LOOM_ASSIGN_OR_RETURN(RedisAddress address, parse_redis_url(url));
  std::shared_ptr<Redis> redis(new Redis(address));
  LOOM_ASSIGN_OR_RETURN(auto conn, redis->dedicated());
  LOOM_ASSIGN_OR_RETURN(RedisReply pong, conn->command({"PING"}));
  (void)pong;
  std::lock_guard<std::mutex> lock(redis->mu_);
  redis->idle_.push_back(std::move(conn));
  return redis;
}

Result<std::unique_ptr<RedisConnection>> Redis::dedicated() {
  return RedisConnection::connect(address_, std::chrono::milliseconds(2000));
}

Result<RedisReply> Redis::run(const std::vector<std::string_view>& args) {
  const auto give_up = std::chrono::steady_clock::now() + kRetryFor;
  for (;;) {
    std::unique_ptr<RedisConnection> conn;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!idle_.empty()) {
        conn = std::move(idle_.back());
        idle_.pop_back();
      }
    }
    Status broken;
    if (!conn) {
      auto fresh = dedicated();
      if (fresh.ok()) conn = std::move(fresh).value();
      else broken = fresh.status();
    }
    if (conn) {
      auto r = conn->command(args);
      if (conn->usable()) {
        std::lock_guard<std::mutex> lock(mu_);
        if (idle_.size() < 64) idle_.push_back(std::move(conn));
        return r;
      }
      broken = r.status();
    }
    // Unreachable or cut: Redis may be restarting. Try again shortly.
    if (std::chrono::steady_clock::now() >= give_up) return broken;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace loom::server
