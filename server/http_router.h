// The route table of loom-server's HTTP API and the matching of a request
// line against it, with the query and path helpers the handlers use. No
// socket, no service, no torch: the HTTP router fuzz target drives it with
// parsed Beast requests, and Session (internal/http_session.h) maps each
// RouteId to its handler.
// Thread safety: pure functions over a constant table.
#pragma once

#include <ostream>  // before verb.hpp, which needs it and does not include it

#include <boost/beast/http/verb.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace loom::server {

enum class RouteId { kHealthz, kMetrics, kOpenApi, kEnv, kBlob, kSubmit, kListJobs, kGetJob, kCancelJob, kListModels, kGetModel, kCreateVariant };

// One route: method, path template as OpenAPI writes it, whether it needs a
// key, and whether its handler blocks (store, blobs, decoding: it runs on
// the work pool, key check included).
struct RouteSpec {
  boost::beast::http::verb method;
  const char* path;
  bool needs_key;
  bool blocking;
  RouteId id;
};
const std::vector<RouteSpec>& route_specs();

struct RouteMatch {
  const RouteSpec* route = nullptr;  // nullptr: no route for this method and path
  bool path_known = false;           // some route has this path (405 rather than 404)
  std::string path;                  // the target before '?'
  std::string query;                 // after '?', "" when none
  std::map<std::string, std::string> params;  // {id} -> "ab12"
};
RouteMatch match_route(boost::beast::http::verb method, std::string_view target);

// The value of `name` in a query string ("a=1&wait_ms=250") when it is all
// digits, at most `max_digits` of them; nullopt otherwise.
std::optional<int64_t> query_number(std::string_view query, std::string_view name, size_t max_digits);
// The raw value of `name` ("name=steer" -> "steer"), at most `max_len`
// bytes; nullopt when absent or longer.
std::optional<std::string> query_text(std::string_view query, std::string_view name, size_t max_len);
// Whether the query has the item `item` ("inline=raw") exactly.
bool query_flag(std::string_view query, std::string_view item);
// 1..64 lowercase hex digits.
bool is_job_id(std::string_view s);
// 1..128 of [A-Za-z0-9._-].
bool is_model_key(std::string_view s);
// The key of an "Authorization: Bearer KEY" value; "" for anything else.
std::string bearer_key(std::string_view authorization);

}  // namespace loom::server
