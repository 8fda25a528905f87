#include "transport/wire.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace loom::transport {
namespace {

TEST(Wire, JobStateNamesRoundTripAndTerminalOnesAreTheThree) {
  const std::vector<std::pair<JobState, std::string>> all = {
      {JobState::kReceived, "RECEIVED"}, {JobState::kQueued, "QUEUED"},       {JobState::kDispatched, "DISPATCHED"},
      {JobState::kLoading, "LOADING"},   {JobState::kRunning, "RUNNING"},   {JobState::kCompleted, "COMPLETED"}, {JobState::kError, "ERROR"},
      {JobState::kCancelled, "CANCELLED"}};
  for (const auto& [state, name] : all) {
    EXPECT_EQ(job_state_name(state), name);
    EXPECT_EQ(parse_job_state(name), state);
    const bool terminal = name == "COMPLETED" || name == "ERROR" || name == "CANCELLED";
    EXPECT_EQ(is_terminal(state), terminal) << name;
    EXPECT_EQ(terminal_event_type(state) != EventType::kUnknown, terminal) << name;
  }
  EXPECT_EQ(parse_job_state("queued"), JobState::kUnknown);
  EXPECT_EQ(parse_job_state("PAUSED"), JobState::kUnknown);
  EXPECT_FALSE(is_terminal(JobState::kUnknown));
}

TEST(Wire, TerminalEventsAreDecidedByTheTypeFieldOnly) {
  EXPECT_TRUE(is_terminal(event_type_of_text(R"({"seq":4,"type":"COMPLETED","result_size":3})")));
  EXPECT_TRUE(is_terminal(event_type_of_text(R"({"type":"CANCELLED"})")));
  EXPECT_TRUE(is_terminal(event_type_of_text(R"({"type" : "ERROR"})")));  // spacing does not matter
  // A LOG whose text mentions COMPLETED is not the end of the job.
  EXPECT_FALSE(is_terminal(event_type_of_text(R"({"type":"LOG","text":"\"type\":\"COMPLETED\""})")));
  EXPECT_EQ(event_type_of_text(R"({"type":"STATUS","state":"COMPLETED"})"), EventType::kStatus);
  // Hostile shapes: never throw, always kUnknown.
  for (const char* bad : {R"({"type":1})", R"({"type":null})", R"({"type":[1]})", "[]", "7", "", "{", "\xff"}) {
    EXPECT_EQ(event_type_of_text(bad), EventType::kUnknown) << bad;
  }
  EXPECT_EQ(parse_event_type("STREAM_REPLY"), EventType::kStreamReply);
  EXPECT_EQ(event_type_name(EventType::kRejected), std::string("REJECTED"));
}

TEST(Wire, StatusCodesMapToHttpAndBackTheSameWayOnBothSides) {
  EXPECT_EQ(http_status_for(StatusCode::kCancelled), 409);
  EXPECT_EQ(status_code_for_http(409), StatusCode::kCancelled);  // the client once read 409 as FAILED_PRECONDITION
  EXPECT_EQ(http_status_for(StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(status_code_for_http(400), StatusCode::kInvalidArgument);
  EXPECT_EQ(http_status_for(StatusCode::kNotFound), 404);
  EXPECT_EQ(http_status_for(StatusCode::kUnauthenticated), 401);
  EXPECT_EQ(http_status_for(StatusCode::kPermissionDenied), 403);
  EXPECT_EQ(http_status_for(StatusCode::kResourceExhausted), 413);
  EXPECT_EQ(status_code_for_http(429), StatusCode::kResourceExhausted);
  EXPECT_EQ(http_status_for(StatusCode::kUnavailable), 503);
  EXPECT_EQ(status_code_for_http(502), StatusCode::kUnavailable);
  EXPECT_EQ(http_status_for(StatusCode::kDeadlineExceeded), 504);
  EXPECT_EQ(http_status_for(StatusCode::kInternal), 500);
  EXPECT_EQ(status_code_for_http(418), StatusCode::kInternal);
  // Every code other than OK and FAILED_PRECONDITION (which shares 400) comes back as itself.
  for (StatusCode c : {StatusCode::kInvalidArgument, StatusCode::kNotFound, StatusCode::kResourceExhausted,
                       StatusCode::kUnavailable, StatusCode::kDeadlineExceeded, StatusCode::kCancelled,
                       StatusCode::kUnauthenticated, StatusCode::kPermissionDenied, StatusCode::kInternal}) {
    EXPECT_EQ(status_code_for_http(http_status_for(c)), c) << status_code_name(c);
  }
}

TEST(Wire, ErrorBodyRoundTripsAndSurvivesInvalidUtf8) {
  Status s = not_found("no job \"\xff\xfe\" for this API key");
  std::string text = error_body_text(s);  // would throw type_error.316 with a plain dump
  auto back = parse_error_body(text);
  ASSERT_TRUE(back.has_value()) << text;
  EXPECT_EQ(back->code(), StatusCode::kNotFound);
  EXPECT_EQ(back->message(), "no job \"\xef\xbf\xbd\xef\xbf\xbd\" for this API key");
  EXPECT_FALSE(parse_error_body("<html>bad gateway</html>").has_value());
  EXPECT_FALSE(parse_error_body(R"({"error":{"code":"NOPE","message":"x"}})").has_value());
  EXPECT_FALSE(parse_error_body(R"({"error":{"code":7}})").has_value());
  EXPECT_FALSE(parse_error_body(R"({"error":"text"})").has_value());
}

TEST(Wire, ValidUtf8KeepsGoodTextAndReplacesEachBadSequence) {
  EXPECT_EQ(valid_utf8("plain ascii"), "plain ascii");
  EXPECT_EQ(valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(valid_utf8("a\xff" "b"), "a\xef\xbf\xbd" "b");
  EXPECT_EQ(valid_utf8("\xc0\xaf"), "\xef\xbf\xbd\xef\xbf\xbd");                          // overlong '/'
  EXPECT_EQ(valid_utf8("\xed\xa0\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");           // a surrogate
  EXPECT_EQ(valid_utf8("\xe2\x82"), "\xef\xbf\xbd\xef\xbf\xbd");                           // truncated
  nlohmann::json j = valid_utf8(std::string("\x80\x81\xf5\xff", 4));
  EXPECT_NO_THROW((void)j.dump());
}

TEST(Wire, ProtocolHeaderIsOptionalAndAWrongOneNamesBothVersions) {
  EXPECT_TRUE(check_protocol_header(std::nullopt).ok());
  EXPECT_TRUE(check_protocol_header("1").ok());
  Status wrong = check_protocol_header("7");
  EXPECT_EQ(wrong.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(wrong.message().find("protocol version 7"), std::string::npos) << wrong.message();
  EXPECT_NE(wrong.message().find("speaks version 1"), std::string::npos) << wrong.message();
  Status hostile = check_protocol_header("\xff\xfe");
  EXPECT_FALSE(hostile.ok());
  EXPECT_NE(hostile.message().find("\\xff\\xfe"), std::string::npos) << hostile.message();
  EXPECT_NO_THROW((void)error_body_text(hostile));
}

}  // namespace
}  // namespace loom::transport
