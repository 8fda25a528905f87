#include "server/callback_policy.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <cstring>
#include <memory>

#include "transport/http_client.h"
#include "transport/internal/printable.h"

namespace loom::server {
namespace {

using Address = std::array<uint8_t, 16>;

bool in(const Address& a, const Cidr& c) {
  for (int bit = 0; bit < c.prefix; ++bit) {
    const int byte = bit / 8, mask = 0x80 >> (bit % 8);
    if ((a[byte] & mask) != (c.bytes[byte] & mask)) return false;
  }
  return true;
}

// The ranges a callback may not reach by default, each with its name.
struct Range {
  const char* cidr;
  const char* what;
};
constexpr Range kForbidden[] = {
    {"0.0.0.0/8", "unspecified"},     {"127.0.0.0/8", "loopback"},      {"10.0.0.0/8", "private"},
    {"172.16.0.0/12", "private"},     {"192.168.0.0/16", "private"},    {"100.64.0.0/10", "shared (CGNAT)"},
    {"169.254.0.0/16", "link-local"}, {"224.0.0.0/4", "multicast"},     {"240.0.0.0/4", "reserved"},
    {"::/128", "unspecified"},        {"::1/128", "loopback"},          {"fe80::/10", "link-local"},
    {"fc00::/7", "unique-local"},     {"ff00::/8", "multicast"},
};

std::string format(const Address& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(a.data(), kMapped, 12) == 0) {
    ::inet_ntop(AF_INET, a.data() + 12, buf, sizeof buf);
  } else {
    ::inet_ntop(AF_INET6, a.data(), buf, sizeof buf);
  }
  return buf;
}

}  // namespace

Result<Cidr> parse_cidr(std::string_view text) {
  const std::string s(text);
  const size_t slash = s.find('/');
  const std::string host = s.substr(0, slash);
  Cidr c;
  in_addr v4{};
  in6_addr v6{};
  int max_prefix = 128, offset = 0;
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    c.bytes[10] = c.bytes[11] = 0xff;
    std::memcpy(c.bytes.data() + 12, &v4, 4);
    max_prefix = 32;
    offset = 96;
  } else if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    std::memcpy(c.bytes.data(), &v6, 16);
  } else {
    return invalid_argument("\"" + transport::internal::printable(s, 80) + "\" is not an address or CIDR range");
  }
  int prefix = max_prefix;
  if (slash != std::string::npos) {
    const std::string p = s.substr(slash + 1);
    if (p.empty() || p.size() > 3 || p.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(p) > max_prefix) {
      return invalid_argument("\"" + transport::internal::printable(s, 80) + "\": the prefix length must be 0-" +
                              std::to_string(max_prefix));
    }
    prefix = std::stoi(p);
  }
  c.prefix = prefix + offset;
  return c;
}

bool CallbackPolicy::allowed(const Address& a) const {
  for (const Cidr& c : allowed_) {
    if (in(a, c)) return true;
  }
  return false;
}

Result<CallbackTarget> CallbackPolicy::check(const std::string& url) const {
  const std::string shown = transport::internal::printable(url, 200);
  const bool tls = url.rfind("https://", 0) == 0;
  if (!tls && url.rfind("http://", 0) != 0) {
    return invalid_argument("callback URL \"" + shown + "\" must be http://HOST[:PORT]/PATH or https://...");
  }
  const size_t slash = url.find('/', tls ? 8 : 7);
  auto endpoint = transport::parse_base_url(url.substr(0, slash));
  if (!endpoint.ok()) return invalid_argument("callback URL \"" + shown + "\": " + endpoint.status().message());
  CallbackTarget t;
  t.host = endpoint->host;
  t.port = endpoint->port;
  t.tls = tls;
  t.target = slash == std::string::npos ? "/" : url.substr(slash);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(t.host.c_str(), nullptr, &hints, &found); rc != 0) {
    return invalid_argument("callback URL \"" + shown + "\": host \"" + transport::internal::printable(t.host, 80) +
                            "\" does not resolve: " + ::gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owner(found, &::freeaddrinfo);
  // Every address the name has must pass: a client could otherwise pick a
  // name with one public and one internal address.
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    Address a{};
    if (ai->ai_family == AF_INET) {
      a[10] = a[11] = 0xff;
      std::memcpy(a.data() + 12, &reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_addr, 4);
    } else if (ai->ai_family == AF_INET6) {
      std::memcpy(a.data(), &reinterpret_cast<sockaddr_in6*>(ai->ai_addr)->sin6_addr, 16);
    } else {
      continue;
    }
    if (!allowed(a)) {
      for (const Range& r : kForbidden) {
        if (in(a, *parse_cidr(r.cidr))) {
          return invalid_argument("callback URL \"" + shown + "\" reaches " + format(a) + ", a " + r.what +
                                  " address: webhooks may only go to public addresses unless the operator "
                                  "allows the range with --webhook-allow CIDR");
        }
      }
    }
    if (t.address.empty()) t.address = format(a);
  }
  if (t.address.empty()) return invalid_argument("callback URL \"" + shown + "\": its host has no IP address");
  return t;
}

}  // namespace loom::server
