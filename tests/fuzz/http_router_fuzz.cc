// Fuzz target: raw bytes as an HTTP request, parsed by Beast as the server
// parses them (same header and body limits, no socket), then routed as
// Session::dispatch does: route match, protocol header, bearer key, the
// query numbers and flags, path parameters. server/http_router.cc is
// compiled into this target directly (the fuzz build has no torch).
#include <boost/beast/core/error.hpp>
#include <boost/beast/http.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "server/http_router.h"
#include "transport/wire.h"

namespace http = boost::beast::http;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  http::request_parser<http::string_body> parser;
  parser.header_limit(16 * 1024);
  parser.body_limit(1 << 20);
  parser.eager(true);
  boost::beast::error_code ec;
  parser.put(boost::asio::buffer(data, size), ec);
  if (ec || !parser.is_header_done()) return 0;
  const auto& req = parser.get();
  auto m = loom::server::match_route(req.method(), std::string_view(req.target().data(), req.target().size()));
  if (m.route != nullptr && !m.path_known) __builtin_trap();
  auto proto = req.find(loom::transport::kProtocolHeader);
  if (proto != req.end()) {
    (void)loom::transport::check_protocol_header(std::string_view(proto->value().data(), proto->value().size()));
  }
  auto auth = req.find(http::field::authorization);
  if (auth != req.end()) (void)loom::server::bearer_key(std::string_view(auth->value().data(), auth->value().size()));
  auto wait = loom::server::query_number(m.query, "wait_ms", 6);
  if (wait && (*wait < 0 || *wait > 999999)) __builtin_trap();
  (void)loom::server::query_flag(m.query, "inline=raw");
  for (const auto& [name, value] : m.params) {
    (void)loom::server::is_job_id(value);
    (void)loom::server::is_model_key(value);
  }
  return 0;
}
