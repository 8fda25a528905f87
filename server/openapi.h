// The OpenAPI 3.1 description of loom-server's HTTP API, served at
// GET /v1/openapi.json: every route with its parameters, JSON bodies and the
// error shape. Written apart from the route table on purpose; a test holds
// the two against each other (every answered route described, every
// described route answered).
// Thread safety: pure function.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace loom::server {

nlohmann::json openapi_document(const std::string& server_version);

}  // namespace loom::server
