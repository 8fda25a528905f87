// Where webhooks may go: the defence against server-side request forgery.
// A callback URL must be http:// or https:// to a host whose every address is public:
// not loopback, link-local, private, unique-local, multicast or
// unspecified, unless an operator's --webhook-allow CIDR covers it. The rule
// is checked at submit (INVALID_ARGUMENT naming it) and again at each
// delivery against the address then resolved, which the delivery connects
// to, so a name that re-resolves to 127.0.0.1 later is still refused.
// Thread safety: immutable after construction. check() resolves host
// names (getaddrinfo): IP literals cost nothing, names a DNS lookup.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "graph/status.h"

namespace loom::server {

struct Cidr {
  std::array<uint8_t, 16> bytes{};  // IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d)
  int prefix = 0;                   // of 128
};
// "10.0.0.0/8", "127.0.0.1" (a /32), "fd00::/8"; INVALID_ARGUMENT otherwise.
Result<Cidr> parse_cidr(std::string_view text);

struct CallbackTarget {
  std::string host;     // as written in the URL (the Host header)
  uint16_t port = 80;   // 443 for https:// without one
  bool tls = false;     // https://: the receiver's certificate must name `host`
  std::string target;   // path and query
  std::string address;  // the resolved, allowed address to connect to
};

class CallbackPolicy {
 public:
  explicit CallbackPolicy(std::vector<Cidr> allowed = {}) : allowed_(std::move(allowed)) {}
  Result<CallbackTarget> check(const std::string& url) const;

 private:
  bool allowed(const std::array<uint8_t, 16>& address) const;
  std::vector<Cidr> allowed_;
};

}  // namespace loom::server
