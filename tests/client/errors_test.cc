// HTTP error answers (status + JSON body per transport/PROTOCOL.md) become
// the typed exception that says what the caller should do, keeping the
// server's message; and the CLI maps each to its documented exit code.
#include <gtest/gtest.h>

#include <string>

#include "client/cli_common.h"
#include "client/errors.h"

namespace loom::client {
namespace {

std::string error_body(const std::string& code, const std::string& message) {
  return "{\"error\": {\"code\": \"" + code + "\", \"message\": \"" + message + "\"}}";
}

// Throws for the answer and returns the caught exception's type name and message.
template <typename E>
E caught(const HttpErrorAnswer& answer) {
  try {
    throw_http_error(answer);
  } catch (const E& e) {
    return e;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type for HTTP " << answer.http_status << ": " << e.what();
  }
  return E("none");
}

TEST(HttpErrorMapping, InvalidArgumentIsValidationErrorWithServerMessage) {
  auto e = caught<ValidationError>(
      {400, error_body("INVALID_ARGUMENT", "node 3 (op aten::add.Tensor): argument 1 must be Tensor"), "", "POST /v1/jobs"});
  EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
  EXPECT_STREQ(e.what(), "POST /v1/jobs: node 3 (op aten::add.Tensor): argument 1 must be Tensor");
}

TEST(HttpErrorMapping, UnauthenticatedIsAuthError) {
  auto e = caught<AuthError>({401, error_body("UNAUTHENTICATED", "unknown API key"), "", "GET /v1/jobs"});
  EXPECT_EQ(e.code(), StatusCode::kUnauthenticated);
  EXPECT_NE(std::string(e.what()).find("unknown API key"), std::string::npos);
}

TEST(HttpErrorMapping, PermissionDeniedIsAuthErrorWithItsCode) {
  auto e = caught<AuthError>({403, error_body("PERMISSION_DENIED", "bad signature"), "", ""});
  EXPECT_EQ(e.code(), StatusCode::kPermissionDenied);
  EXPECT_STREQ(e.what(), "bad signature");
}

TEST(HttpErrorMapping, NotFoundIsNotFoundError) {
  auto e = caught<NotFoundError>({404, error_body("NOT_FOUND", "no job ab for this API key"), "", "GET /v1/jobs/ab"});
  EXPECT_STREQ(e.what(), "GET /v1/jobs/ab: no job ab for this API key");
}

TEST(HttpErrorMapping, FullQueueIsQuotaErrorWithRetryAfter) {
  auto e = caught<QuotaError>({429, error_body("RESOURCE_EXHAUSTED", "the queue for cpu is full"), "7", "POST /v1/jobs"});
  EXPECT_EQ(e.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(e.retry_after(), 7);
  EXPECT_STREQ(e.what(), "POST /v1/jobs: the queue for cpu is full (retry after 7 s)");
}

TEST(HttpErrorMapping, TooLargeBodyIsQuotaErrorWithoutRetryAfter) {
  auto e = caught<QuotaError>({413, error_body("RESOURCE_EXHAUSTED", "body of 70000000 bytes is over 67108864"), "", ""});
  EXPECT_EQ(e.retry_after(), -1);
}

TEST(HttpErrorMapping, ProtocolVersionMismatchIsVersionError) {
  auto e = caught<VersionError>(
      {400,
       error_body("FAILED_PRECONDITION",
                  "protocol version 2 requested, this server speaks protocol version 1; use a client and server of "
                  "the same protocol version"),
       "", "GET /v1/env"});
  EXPECT_EQ(e.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(e.what()).find("speaks protocol version 1"), std::string::npos);
  caught<VersionError>({400, error_body("FAILED_PRECONDITION", "missing X-Loom-Protocol header"), "", ""});
}

TEST(HttpErrorMapping, OtherFailedPreconditionIsPlainLoomError) {
  try {
    throw_http_error({400, error_body("FAILED_PRECONDITION", "the job has not finished"), "", ""});
    FAIL() << "no exception";
  } catch (const ValidationError&) {
    FAIL() << "FAILED_PRECONDITION is not a validation error";
  } catch (const LoomError& e) {
    EXPECT_EQ(e.code(), StatusCode::kFailedPrecondition);
    EXPECT_STREQ(e.what(), "the job has not finished");
  }
}

TEST(HttpErrorMapping, UnavailableIsConnectionError) {
  auto e = caught<ConnectionError>({503, error_body("UNAVAILABLE", "draining"), "", ""});
  EXPECT_EQ(e.code(), StatusCode::kUnavailable);
}

TEST(HttpErrorMapping, NonJsonBodyFallsBackOnHttpStatus) {
  auto e = caught<NotFoundError>({404, "<html>Not Found</html>", "", "GET /v1/models/x"});
  EXPECT_STREQ(e.what(), "GET /v1/models/x: HTTP 404: <html>Not Found</html>");
  auto bad_gateway = caught<ConnectionError>({502, "", "", "GET /v1/env"});
  EXPECT_STREQ(bad_gateway.what(), "GET /v1/env: HTTP 502");
  try {
    throw_http_error({500, "oops\n", "", ""});
    FAIL() << "no exception";
  } catch (const LoomError& e) {
    EXPECT_EQ(e.code(), StatusCode::kInternal);
    EXPECT_NE(std::string(e.what()).find("HTTP 500: oops"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("retry later"), std::string::npos);
  }
}

TEST(HttpErrorMapping, JsonCodeWinsOverHttpStatus) {
  // A proxy may rewrite statuses; loom's own code says what happened.
  caught<NotFoundError>({400, error_body("NOT_FOUND", "no such model"), "", ""});
}

TEST(StatusToException, EachCodeGetsItsType) {
  EXPECT_THROW(throw_status(invalid_argument("x")), ValidationError);
  EXPECT_THROW(throw_status(not_found("x")), NotFoundError);
  EXPECT_THROW(throw_status(resource_exhausted("x")), QuotaError);
  EXPECT_THROW(throw_status(deadline_exceeded("x")), TimeoutError);
  EXPECT_THROW(throw_status(cancelled("x")), CancelledError);
  EXPECT_THROW(throw_status(Status(StatusCode::kUnavailable, "x")), ConnectionError);
  EXPECT_THROW(throw_status(Status(StatusCode::kUnauthenticated, "x")), AuthError);
  EXPECT_THROW(throw_status(internal_error("x")), LoomError);
}

TEST(RemoteErrorType, CarriesRemoteCodeAndMessage) {
  RemoteError e(StatusCode::kInvalidArgument, "ab12", "node 4 (op aten::matmul): shapes [2, 3] and [4, 5]");
  EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(e.job_id(), "ab12");
  EXPECT_EQ(e.remote_message(), "node 4 (op aten::matmul): shapes [2, 3] and [4, 5]");
  EXPECT_STREQ(e.what(),
               "job ab12 failed on the server: INVALID_ARGUMENT: node 4 (op aten::matmul): shapes [2, 3] and [4, 5]");
  const ExecutionError& as_execution = e;  // callers may catch local and remote run failures alike
  EXPECT_EQ(as_execution.code(), StatusCode::kInvalidArgument);
}

TEST(CliExitCodes, FollowTheDocumentedTable) {
  EXPECT_EQ(exit_code_for(ConnectionError("x")), 5);
  EXPECT_EQ(exit_code_for(AuthError("x")), 6);
  EXPECT_EQ(exit_code_for(NotFoundError("x")), 7);
  EXPECT_EQ(exit_code_for(TimeoutError("x")), 8);
  EXPECT_EQ(exit_code_for(CancelledError("x")), 9);
  EXPECT_EQ(exit_code_for(VersionError("x")), 10);
  EXPECT_EQ(exit_code_for(QuotaError("x")), 11);
  EXPECT_EQ(exit_code_for(ValidationError("x")), 4);
  EXPECT_EQ(exit_code_for(RemoteError(StatusCode::kInternal, "id", "x")), 4);
  EXPECT_EQ(exit_code_for(ExecutionError(StatusCode::kInvalidArgument, "x")), 4);
  EXPECT_EQ(exit_code_for(LoomError(StatusCode::kInternal, "x")), 1);
}

}  // namespace
}  // namespace loom::client
