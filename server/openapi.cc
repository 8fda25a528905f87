#include "server/openapi.h"

#include "transport/wire.h"

namespace loom::server {

using json = nlohmann::json;

namespace {

json ref(const std::string& schema) { return {{"$ref", "#/components/schemas/" + schema}}; }

json json_content(const json& schema) { return {{"application/json", {{"schema", schema}}}}; }

json error_response(const std::string& description) {
  return {{"description", description}, {"content", json_content(ref("Error"))}};
}

json path_param(const std::string& name, const std::string& description, const std::string& pattern) {
  return {{"name", name}, {"in", "path"}, {"required", true}, {"description", description},
          {"schema", {{"type", "string"}, {"pattern", pattern}}}};
}

json job_id_param() { return path_param("id", "the job ID (32 lowercase hex characters)", "^[0-9a-f]{1,64}$"); }

// The responses every keyed /v1 route may give besides its own.
json with_common_errors(json responses) {
  responses["400"] = error_response("INVALID_ARGUMENT, or FAILED_PRECONDITION for a different X-Loom-Protocol");
  responses["401"] = error_response("UNAUTHENTICATED: no or unknown API key");
  responses["500"] = error_response("INTERNAL");
  return responses;
}

json schemas() {
  json states = json::array();
  for (auto s : {transport::JobState::kReceived, transport::JobState::kQueued, transport::JobState::kDispatched,
                 transport::JobState::kLoading, transport::JobState::kRunning, transport::JobState::kCompleted,
                 transport::JobState::kError, transport::JobState::kCancelled}) {
    states.push_back(transport::job_state_name(s));
  }
  json codes = json::array();
  for (auto c : {StatusCode::kInvalidArgument, StatusCode::kNotFound, StatusCode::kFailedPrecondition,
                 StatusCode::kResourceExhausted, StatusCode::kUnavailable, StatusCode::kDeadlineExceeded,
                 StatusCode::kCancelled, StatusCode::kUnauthenticated, StatusCode::kPermissionDenied,
                 StatusCode::kInternal}) {
    codes.push_back(status_code_name(c));
  }
  json s;
  s["Error"] = {{"type", "object"},
                {"required", {"error"}},
                {"properties",
                 {{"error",
                   {{"type", "object"},
                    {"required", {"code", "message"}},
                    {"properties",
                     {{"code", {{"type", "string"}, {"enum", codes}}},
                      {"message", {{"type", "string"}, {"description", "what is wrong, with the values involved"}}}}}}}}}};
  s["JobState"] = {{"type", "string"}, {"enum", states}};
  s["Snapshot"] = {
      {"type", "object"},
      {"required", {"id", "state", "model", "created_at", "updated_at"}},
      {"properties",
       {{"id", {{"type", "string"}}},
        {"state", ref("JobState")},
        {"model", {{"type", "string"}}},
        {"created_at", {{"type", "string"}, {"format", "date-time"}}},
        {"updated_at", {{"type", "string"}, {"format", "date-time"}}},
        {"queue_position", {{"type", "integer"}, {"description", "while QUEUED: jobs ahead (0: next)"}}},
        {"error", {{"type", "object"}, {"properties", {{"code", {{"type", "string"}}}, {"message", {{"type", "string"}}}}}}},
        {"result_url", {{"type", "string"}, {"description", "COMPLETED: a fresh presigned path+query"}}},
        {"result_size", {{"type", "integer"}, {"description", "compressed bytes"}}},
        {"result_sha256", {{"type", "string"}, {"description", "hex SHA-256 of the compressed bytes"}}}}}};
  s["SubmitAnswer"] = {{"type", "object"},
                       {"required", {"job_id", "state", "deduplicated"}},
                       {"properties",
                        {{"job_id", {{"type", "string"}}},
                         {"state", ref("JobState")},
                         {"deduplicated", {{"type", "boolean"}}},
                         {"event", {{"type", "object"}, {"description", "with wait_ms: the terminal event"}}}}}};
  const json shaped = {{"type", "object"},
                       {"properties",
                        {{"shape", {{"type", "array"}, {"items", {{"type", "integer"}}}}},
                         {"dtype", {{"type", "string"}, {"description", "safetensors name: F32, I64, ..."}}}}}};
  json value = shaped, save = shaped;
  value["properties"]["node"] = {{"type", "integer"}};
  value["properties"]["kind"] = {{"type", "string"}, {"description", "read, op, grad, ..."}};
  save["properties"]["name"] = {{"type", "string"}};
  s["ScanReport"] = {
      {"type", "object"},
      {"description", "POST /v1/jobs?scan=1: the request run on shapes only (graph/scan_report.h)"},
      {"required", {"values", "saves", "estimate"}},
      {"properties",
       {{"model", {{"type", "string"}}},
        {"values", {{"type", "array"}, {"items", value}, {"description", "every node with a tensor value"}}},
        {"saves", {{"type", "array"}, {"items", save}}},
        {"estimate",
         {{"type", "object"},
          {"properties",
           {{"saved_bytes", {{"type", "integer"}}},
            {"intermediate_bytes", {{"type", "integer"}}},
            {"autograd_bytes", {{"type", "integer"}}},
            {"peak_bytes", {{"type", "integer"}, {"description", "beyond the weights"}}},
            {"tokens", {{"type", "integer"}}},
            {"flops", {{"type", "number"}}},
            {"device_ms", {{"type", "number"}, {"description", "flops over the server's CPU matmul rate"}}}}}}}}}};
  s["ModelSummary"] = {{"type", "object"},
                       {"required", {"key", "kind", "device"}},
                       {"properties",
                        {{"key", {{"type", "string"}}},
                         {"kind", {{"type", "string"}}},
                         {"device", {{"type", "string"}}},
                         {"revision", {{"type", "string"}, {"description", "SHA-256 of the model's files"}}},
                         {"tier",
                          {{"type", "string"},
                           {"enum", {"HOT", "WARM", "COLD", "LOADING", ""}},
                           {"description", "where the model is (scale-out: its best tier on a live worker)"}}},
                         {"bytes", {{"type", "integer"}, {"description", "its parameters' and buffers' bytes"}}},
                         {"workers",
                          {{"type", "array"},
                           {"description", "scale-out: the live workers serving it, with its tier on each"},
                           {"items", {{"type", "object"}}}}}}}};
  s["Model"] = {{"allOf", {ref("ModelSummary"),
                           {{"type", "object"},
                            {"required", {"modules"}},
                            {"properties", {{"modules", {{"type", "array"}, {"items", {{"type", "string"}}}}}}}}}}};
  s["Env"] = {{"type", "object"},
              {"required", {"server_version", "protocol_version", "websocket_port"}},
              {"properties",
               {{"server_version", {{"type", "string"}}},
                {"protocol_version", {{"type", "integer"}}},
                {"websocket_port", {{"type", "integer"}}},
                {"max_frame_bytes", {{"type", "integer"}, {"description", "the largest WebSocket frame the server sends"}}}}}};
  return s;
}

}  // namespace

json openapi_document(const std::string& server_version) {
  json paths;
  const json keyed = json::array({{{"bearer", json::array()}}});
  const json open = json::array();
  paths["/healthz"]["get"] = {
      {"summary", "liveness: \"ok\", or \"draining\" while shutting down"},
      {"security", open},
      {"responses", {{"200", {{"description", "ok", }, {"content", {{"text/plain", {{"schema", {{"type", "string"}}}}}}}}}}}};
  paths["/metrics"]["get"] = {
      {"summary", "Prometheus text: jobs by state, queue depth, latency histogram"},
      {"security", open},
      {"responses", {{"200", {{"description", "metrics"}, {"content", {{"text/plain", {{"schema", {{"type", "string"}}}}}}}}}}}};
  paths["/v1/openapi.json"]["get"] = {{"summary", "this document"},
                                      {"security", open},
                                      {"responses", {{"200", {{"description", "OpenAPI 3.1"}}}}}};
  paths["/v1/env"]["get"] = {
      {"summary", "server and protocol versions, and the WebSocket port for job events"},
      {"security", keyed},
      {"responses", with_common_errors({{"200", {{"description", "versions"}, {"content", json_content(ref("Env"))}}}})}};
  json blob_params = json::array(
      {path_param("id", "the job ID", "^[0-9a-f]{1,64}$"),
       {{"name", "expires"}, {"in", "query"}, {"required", true}, {"schema", {{"type", "integer"}}},
        {"description", "Unix seconds the URL is valid until"}},
       {{"name", "sig"}, {"in", "query"}, {"required", true}, {"schema", {{"type", "string"}}},
        {"description", "hex HMAC-SHA256 of METHOD, path and expires"}},
       {{"name", "Range"}, {"in", "header"}, {"required", false}, {"schema", {{"type", "string"}}},
        {"description", "bytes=A-B or bytes=A- to resume"}}});
  json blob_responses = {
      {"200", {{"description", "the zstd-compressed safetensors result"},
               {"content", {{"application/zstd", {{"schema", {{"type", "string"}, {"format", "binary"}}}}}}}}},
      {"206", {{"description", "the requested byte range (Content-Range)"}}},
      {"403", error_response("bad or expired signature")},
      {"404", error_response("the result is no longer kept")},
      {"416", error_response("range not satisfiable")}};
  paths["/v1/blobs/results/{id}"]["get"] = {{"summary", "download a result through its presigned URL"},
                                            {"security", open},
                                            {"parameters", blob_params},
                                            {"responses", blob_responses}};
  paths["/v1/blobs/results/{id}"]["head"] = {{"summary", "size of a result (Content-Length)"},
                                             {"security", open},
                                             {"parameters", blob_params},
                                             {"responses", blob_responses}};
  paths["/v1/jobs"]["post"] = {
      {"summary", "submit a job"},
      {"security", keyed},
      {"parameters",
       json::array({{{"name", "wait_ms"}, {"in", "query"}, {"required", false},
                     {"schema", {{"type", "integer"}, {"minimum", 0}, {"maximum", 10000}}},
                     {"description", "wait this long for the job's end before answering"}},
                    {{"name", "inline"}, {"in", "query"}, {"required", false},
                     {"schema", {{"type", "string"}, {"enum", {"raw"}}}},
                     {"description", "with wait_ms: a COMPLETED job is answered with its compressed result"}},
                    {{"name", "scan"}, {"in", "query"}, {"required", false},
                     {"schema", {{"type", "integer"}, {"enum", {1}}}},
                     {"description", "a dry run on shapes only, answered at once with a ScanReport; nothing is queued"}}})},
      {"requestBody",
       {{"required", true},
        {"description", "zstd-compressed Cap'n Proto JobRequest (transport/protocol.capnp)"},
        {"content", {{"application/x-loom-request", {{"schema", {{"type", "string"}, {"format", "binary"}}}}}}}}},
      {"responses",
       with_common_errors({{"200", {{"description", "ended within wait_ms (SubmitAnswer), or with scan=1 the ScanReport"},
                                    {"content", json_content({{"oneOf", json::array({ref("SubmitAnswer"), ref("ScanReport")})}})}}},
                           {"202", {{"description", "accepted"}, {"content", json_content(ref("SubmitAnswer"))}}},
                           {"404", error_response("unknown model")},
                           {"409", error_response("the request id was used for a different request")},
                           {"413", error_response("body, graph or text over a limit")},
                           {"429", error_response("queue full: retry after Retry-After seconds")},
                           {"503", error_response("the server is draining")}})}};
  paths["/v1/jobs"]["get"] = {
      {"summary", "this key's jobs, newest first (at most 100)"},
      {"security", keyed},
      {"responses",
       with_common_errors({{"200", {{"description", "jobs"},
                                    {"content", json_content({{"type", "object"},
                                                              {"properties", {{"jobs", {{"type", "array"}, {"items", ref("Snapshot")}}}}}})}}}})}};
  paths["/v1/jobs/{id}"]["get"] = {
      {"summary", "a job's status snapshot"},
      {"security", keyed},
      {"parameters", json::array({job_id_param()})},
      {"responses", with_common_errors({{"200", {{"description", "snapshot"}, {"content", json_content(ref("Snapshot"))}}},
                                        {"404", error_response("no such job for this key")}})}};
  paths["/v1/jobs/{id}"]["delete"] = {
      {"summary", "cancel a job; a running job stops at its next hook point (the answer waits up to 5 s)"},
      {"security", keyed},
      {"parameters", json::array({job_id_param()})},
      {"responses", with_common_errors({{"200", {{"description", "snapshot after"}, {"content", json_content(ref("Snapshot"))}}},
                                        {"404", error_response("no such job for this key")}})}};
  paths["/v1/models"]["get"] = {
      {"summary", "the models this server runs"},
      {"security", keyed},
      {"responses",
       with_common_errors({{"200", {{"description", "models"},
                                    {"content", json_content({{"type", "object"},
                                                              {"properties", {{"models", {{"type", "array"}, {"items", ref("ModelSummary")}}}}}})}}}})}};
  paths["/v1/models/{key}"]["get"] = {
      {"summary", "a model and its module paths"},
      {"security", keyed},
      {"parameters", json::array({path_param("key", "the model key", "^[A-Za-z0-9._-]{1,128}$")})},
      {"responses", with_common_errors({{"200", {{"description", "model"}, {"content", json_content(ref("Model"))}}},
                                        {"404", error_response("unknown model")}})}};

  paths["/v1/models/{key}/variants"]["post"] = {
      {"summary", "store a persistent edit as the variant key@NAME (server/variants.h)"},
      {"security", keyed},
      {"parameters",
       json::array({path_param("key", "the model key", "^[A-Za-z0-9._-]{1,128}$"),
                    {{"name", "name"}, {"in", "query"}, {"required", true},
                     {"schema", {{"type", "string"}, {"pattern", "^[A-Za-z0-9._-]{1,64}$"}}}},
                    {{"name", "shared"}, {"in", "query"}, {"required", false},
                     {"schema", {{"type", "integer"}, {"enum", {1}}}},
                     {"description", "visible to every API key (default: only this one)"}}})},
      {"requestBody",
       {{"required", true},
        {"description", "a JobRequest whose graph is the edit: reads, ops, constants, sets and skips on the whole batch"},
        {"content", {{"application/x-loom-request", {{"schema", {{"type", "string"}, {"format", "binary"}}}}}}}}},
      {"responses",
       with_common_errors({{"201", {{"description", "stored"},
                                    {"content", json_content({{"type", "object"},
                                                              {"properties",
                                                               {{"model", {{"type", "string"}}},
                                                                {"shared", {{"type", "boolean"}}},
                                                                {"nodes", {{"type", "integer"}}}}}})}}},
                           {"403", error_response("the name belongs to another API key")},
                           {"404", error_response("unknown model")}})}};

  json doc;
  doc["openapi"] = "3.1.0";
  doc["info"] = {{"title", "loom-server"},
                 {"version", server_version},
                 {"description", std::string("loom remote protocol version ") + std::to_string(transport::kProtocolVersion) +
                                     " (transport/PROTOCOL.md). The " + transport::kProtocolHeader +
                                     " header is optional; when present it must be " +
                                     std::to_string(transport::kProtocolVersion) + ". Every non-2xx answer has the Error body."}};
  doc["paths"] = paths;
  doc["components"]["schemas"] = schemas();
  doc["components"]["securitySchemes"]["bearer"] = {{"type", "http"}, {"scheme", "bearer"}};
  doc["security"] = keyed;
  // Not HTTP: job events on the WebSocket port that /v1/env announces.
  doc["x-websocket"] = {{"path", "/v1/jobs/{id}/events"},
                        {"port", "GET /v1/env websocket_port"},
                        {"query", {{"after", "replay events with seq greater than this"}}},
                        {"description", "JSON events with seq; binary STREAM frames; the client answers STREAM_REPLY"}};
  return doc;
}

}  // namespace loom::server
