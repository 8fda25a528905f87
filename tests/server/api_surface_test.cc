// loom-server's API surface as a plain HTTP user meets it: the protocol
// header is optional (curl with only the key works), a wrong one is refused
// naming both versions, GET /v1/openapi.json describes exactly the routes
// the server answers, and `loom-server keys` manages keys on a running server.
#include <algorithm>
#include <cstdio>
#include <set>

#include "server/http_api.h"
#include "tests/server/server_fixture.h"

namespace loom::testing {
namespace {

Headers key_only(const std::string& key) { return {{"Authorization", "Bearer " + key}}; }

// `loom-server keys ARGS`; exit code and stdout+stderr.
std::pair<int, std::string> keys_command(const std::string& args) { return run_loom_server("keys " + args); }

TEST_F(ServerTest, EveryRouteAnswersWithoutTheProtocolHeader) {
  start();
  std::string id = submit_ok(tiny_job(31), key_a_);
  ASSERT_FALSE(id.empty());
  json done = wait_terminal(id, key_a_);
  ASSERT_EQ(done.value("state", ""), "COMPLETED");
  // What `curl -H "Authorization: Bearer $KEY" $HOST/v1/jobs/$ID | jq .state` does.
  HttpResponse job = http_request(port_, "GET", "/v1/jobs/" + id, key_only(key_a_));
  ASSERT_EQ(job.status, 200) << job.describe();
  EXPECT_EQ(job.json().value("state", ""), "COMPLETED");
  for (const std::string& target : {std::string("/v1/env"), std::string("/v1/jobs"), std::string("/v1/models"),
                                    std::string("/v1/models/tiny"), std::string("/v1/openapi.json"),
                                    std::string("/healthz"), std::string("/metrics")}) {
    HttpResponse r = http_request(port_, "GET", target, key_only(key_a_));
    EXPECT_EQ(r.status, 200) << target << ": " << r.describe();
    if (target.rfind("/v1/", 0) == 0) {
      EXPECT_TRUE(r.json().is_object()) << target << ": " << r.describe();
    }
  }
  HttpResponse blob = http_request(port_, "GET", done.value("result_url", ""));
  EXPECT_EQ(blob.status, 200) << blob.describe();
  EXPECT_EQ(blob.body.size(), done.value("result_size", uint64_t{0}));
  // A job submitted without the header runs like any other.
  HttpResponse plain = http_request(port_, "POST", "/v1/jobs?wait_ms=5000", key_only(key_a_), tiny_job(32));
  ASSERT_EQ(plain.status, 200) << plain.describe();
  EXPECT_EQ(plain.json().value("state", ""), "COMPLETED");
  HttpResponse cancelled = http_request(port_, "DELETE", "/v1/jobs/" + id, key_only(key_a_));
  EXPECT_EQ(cancelled.status, 200) << cancelled.describe();
  EXPECT_EQ(cancelled.json().value("state", ""), "COMPLETED");  // it had ended already
  // The WebSocket handshake does not need it either.
  EventStreamOutcome ws = follow_job_events(websocket_port(), key_a_, id, 0, 10s);
  EXPECT_EQ(ws.handshake_status, 101) << ws.error;
}

TEST_F(ServerTest, AWrongProtocolVersionIsRefusedNamingBothVersions) {
  start();
  const Headers wrong = {{"Authorization", "Bearer " + key_a_}, {"X-Loom-Protocol", "2"}};
  for (const std::string& target : {std::string("/v1/env"), std::string("/v1/jobs"), std::string("/v1/models")}) {
    expect_error(http_request(port_, "GET", target, wrong), 400, "FAILED_PRECONDITION",
                 {"protocol version 2", "speaks version 1"});
  }
  expect_error(http_request(port_, "POST", "/v1/jobs", wrong, tiny_job(33)), 400, "FAILED_PRECONDITION",
               {"protocol version 2", "speaks version 1"});
  // Hostile bytes in the header are quoted escaped, and the server keeps serving.
  expect_error(http_request(port_, "GET", "/v1/env", {{"Authorization", "Bearer " + key_a_}, {"X-Loom-Protocol", "\xff"}}),
               400, "FAILED_PRECONDITION", {"\\xff"});
  EXPECT_EQ(http_request(port_, "GET", "/healthz").status, 200);
  EXPECT_EQ(api("GET", "/v1/jobs", key_a_).json()["jobs"].size(), 0u) << "a refused POST created a job";
}

TEST_F(ServerTest, OpenApiDescribesEveryAnsweredRouteAndEveryDescribedRouteIsAnswered) {
  start();
  HttpResponse r = http_request(port_, "GET", "/v1/openapi.json");
  ASSERT_EQ(r.status, 200) << r.describe();
  json doc = r.json();
  ASSERT_TRUE(doc.is_object());
  EXPECT_EQ(doc.value("openapi", ""), "3.1.0");
  ASSERT_TRUE(doc.contains("paths") && doc["paths"].is_object());
  ASSERT_TRUE(doc["components"]["schemas"].contains("Error"));

  // Every route of the server's table is described, with its method.
  std::set<std::pair<std::string, std::string>> described;
  for (const auto& [path, ops] : doc["paths"].items()) {
    for (const auto& [method, op] : ops.items()) {
      std::string m = method;
      std::transform(m.begin(), m.end(), m.begin(), ::toupper);
      described.insert({m, path});
      EXPECT_TRUE(op.contains("responses")) << m << " " << path;
    }
  }
  std::set<std::pair<std::string, std::string>> answered;
  for (const auto& route : server::HttpApi::route_list()) answered.insert(route);
  for (const auto& route : answered) EXPECT_EQ(described.count(route), 1u) << route.first << " " << route.second << " is not described";
  for (const auto& route : described) EXPECT_EQ(answered.count(route), 1u) << route.first << " " << route.second << " is not in the route table";

  // Every described route is answered by the running server: not "no route".
  std::string id = submit_ok(tiny_job(34), key_a_);
  ASSERT_FALSE(id.empty());
  json done = wait_terminal(id, key_a_);
  std::string blob_query = done.value("result_url", "");
  blob_query = blob_query.substr(blob_query.find('?'));
  for (const auto& [method, path] : described) {
    std::string target = std::regex_replace(path, std::regex("\\{id\\}"), id);
    target = std::regex_replace(target, std::regex("\\{key\\}"), "tiny");
    if (path.rfind("/v1/blobs/", 0) == 0) target += blob_query;
    std::string body = method == "POST" ? tiny_job(35) : "";
    if (path == "/v1/models/{key}/variants") {  // an edit, named
      target += "?name=surface";
      Builder edit;
      HookPoint h = edit.module("transformer.h.0").output(0);
      h.set(h * 2.0);
      body = job_body("tiny", edit.graph(), token_ids(1, 2, 0));
    }
    HttpResponse answer = http_request(port_, method, target, key_only(key_a_), body);
    EXPECT_GE(answer.status, 200) << method << " " << target << ": " << answer.describe();
    EXPECT_LT(answer.status, 300) << method << " " << target << ": " << answer.describe();
  }
  // The check can fail: a path the server does not have is answered "no route".
  HttpResponse none = http_request(port_, "GET", "/v1/nothing-here", key_only(key_a_));
  expect_error(none, 404, "NOT_FOUND", {"no route"});
  HttpResponse wrong_method = http_request(port_, "PUT", "/v1/models", key_only(key_a_));
  expect_error(wrong_method, 405, "NOT_FOUND", {"no route PUT /v1/models"});
}

TEST_F(ServerTest, KeysAreListedAndARevokedKeyIsRefusedWithinASecond) {
  start();
  auto [code, listed] = keys_command("list --data-dir " + data_dir_);
  ASSERT_EQ(code, 0) << listed;
  EXPECT_NE(listed.find("alice"), std::string::npos) << listed;
  EXPECT_NE(listed.find("bob"), std::string::npos) << listed;
  EXPECT_EQ(listed.find(key_a_), std::string::npos) << "list printed a key itself";
  // The id of alice's key: the first column of its line.
  std::string line = listed.substr(0, listed.find('\n'));
  if (line.find("alice") == std::string::npos) line = listed.substr(listed.find('\n') + 1);
  const std::string alice_id = line.substr(0, line.find(' '));
  ASSERT_EQ(alice_id.size(), 12u) << listed;

  ASSERT_EQ(api("GET", "/v1/jobs", key_a_).status, 200);  // cached as good now
  auto [revoked, out] = keys_command("revoke " + alice_id + " --data-dir " + data_dir_);
  ASSERT_EQ(revoked, 0) << out;
  const auto revoked_at = std::chrono::steady_clock::now();
  std::this_thread::sleep_until(revoked_at + 1s);
  expect_error(api("GET", "/v1/jobs", key_a_), 401, "UNAUTHENTICATED", {"unknown API key"});
  EXPECT_EQ(api("GET", "/v1/jobs", key_b_).status, 200) << "bob's key went with alice's";

  auto [again, again_out] = keys_command("revoke " + alice_id + " --data-dir " + data_dir_);
  EXPECT_EQ(again, 7) << again_out;
  EXPECT_NE(again_out.find("no API key with id"), std::string::npos) << again_out;
  auto [relist_code, relisted] = keys_command("list --data-dir " + data_dir_);
  EXPECT_EQ(relisted.find("alice"), std::string::npos) << relisted;
  auto [missing, missing_out] = keys_command("list --data-dir " + dir_.file("nowhere"));
  EXPECT_EQ(missing, 7) << missing_out;
  EXPECT_NE(missing_out.find("no loom.db"), std::string::npos) << missing_out;
}

}  // namespace
}  // namespace loom::testing
