#include "server/http_router.h"

#include <algorithm>

namespace loom::server {

const std::vector<RouteSpec>& route_specs() {
  using V = boost::beast::http::verb;
  static const std::vector<RouteSpec> kRoutes = {
      {V::get, "/healthz", false, false, RouteId::kHealthz},
      {V::get, "/metrics", false, false, RouteId::kMetrics},
      {V::get, "/v1/openapi.json", false, false, RouteId::kOpenApi},
      // The key check may read the store: every keyed route is blocking.
      {V::get, "/v1/env", true, true, RouteId::kEnv},
      // The signature is the credential of a blob URL: no key.
      {V::get, "/v1/blobs/results/{id}", false, true, RouteId::kBlob},
      {V::head, "/v1/blobs/results/{id}", false, true, RouteId::kBlob},
      {V::post, "/v1/jobs", true, true, RouteId::kSubmit},
      {V::get, "/v1/jobs", true, true, RouteId::kListJobs},
      {V::get, "/v1/jobs/{id}", true, true, RouteId::kGetJob},
      {V::delete_, "/v1/jobs/{id}", true, true, RouteId::kCancelJob},
      {V::get, "/v1/models", true, true, RouteId::kListModels},
      {V::get, "/v1/models/{key}", true, true, RouteId::kGetModel},
      {V::post, "/v1/models/{key}/variants", true, true, RouteId::kCreateVariant},
  };
  return kRoutes;
}

namespace {

// "/v1/jobs/{id}" against "/v1/jobs/ab12": true, params {"id": "ab12"}.
bool match_path(std::string_view pattern, std::string_view path, std::map<std::string, std::string>& params) {
  params.clear();
  while (!pattern.empty() && !path.empty()) {
    if (pattern.front() != '/' || path.front() != '/') return false;
    pattern.remove_prefix(1);
    path.remove_prefix(1);
    size_t p = pattern.find('/'), q = path.find('/');
    std::string_view seg_p = pattern.substr(0, p), seg = path.substr(0, q);
    if (seg_p.size() > 2 && seg_p.front() == '{' && seg_p.back() == '}') {
      if (seg.empty()) return false;
      params[std::string(seg_p.substr(1, seg_p.size() - 2))] = std::string(seg);
    } else if (seg_p != seg) {
      return false;
    }
    pattern.remove_prefix(seg_p.size());
    path.remove_prefix(seg.size());
  }
  return pattern.empty() && path.empty();
}

// Calls `f(item)` for each '&'-separated item of the query; stops when it returns true.
template <class F>
bool any_item(std::string_view query, F f) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    if (f(query.substr(0, amp))) return true;
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return false;
}

}  // namespace

RouteMatch match_route(boost::beast::http::verb method, std::string_view target) {
  RouteMatch m;
  const size_t qm = target.find('?');
  m.path = std::string(target.substr(0, qm));
  if (qm != std::string_view::npos) m.query = std::string(target.substr(qm + 1));
  std::map<std::string, std::string> params;
  for (const RouteSpec& r : route_specs()) {
    if (!match_path(r.path, m.path, params)) continue;
    m.path_known = true;
    if (r.method == method) {
      m.route = &r;
      m.params = std::move(params);
      break;
    }
  }
  return m;
}

std::optional<std::string> query_text(std::string_view query, std::string_view name, size_t max_len) {
  std::optional<std::string> out;
  any_item(query, [&](std::string_view item) {
    if (item.size() <= name.size() || item.substr(0, name.size()) != name || item[name.size()] != '=') return false;
    std::string_view value = item.substr(name.size() + 1);
    if (value.size() > max_len) return false;
    out = std::string(value);
    return true;
  });
  return out;
}

std::optional<int64_t> query_number(std::string_view query, std::string_view name, size_t max_digits) {
  std::optional<int64_t> out;
  any_item(query, [&](std::string_view item) {
    if (item.size() <= name.size() || item.substr(0, name.size()) != name || item[name.size()] != '=') return false;
    std::string_view digits = item.substr(name.size() + 1);
    if (digits.empty() || digits.size() > std::min<size_t>(max_digits, 18) ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return false;
    }
    int64_t v = 0;
    for (char c : digits) v = v * 10 + (c - '0');
    out = v;
    return true;
  });
  return out;
}

bool query_flag(std::string_view query, std::string_view item) {
  return any_item(query, [&](std::string_view i) { return i == item; });
}

bool is_job_id(std::string_view s) {
  return !s.empty() && s.size() <= 64 &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool is_model_key(std::string_view s) {
  return !s.empty() && s.size() <= 128 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
                  c == '_' || c == '-';
         });
}

std::string bearer_key(std::string_view authorization) {
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.substr(0, kBearer.size()) != kBearer) return "";
  return std::string(authorization.substr(kBearer.size()));
}

}  // namespace loom::server
