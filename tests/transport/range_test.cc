// Tests for transport/http_range.h: the Range header of blob downloads.
#include "transport/http_range.h"

#include <gtest/gtest.h>

#include <string>

namespace loom::transport {
namespace {

ByteRange parsed(const std::string& header, uint64_t size) {
  auto r = parse_range(header, size);
  EXPECT_TRUE(r.ok()) << header << ": " << r.status().to_string();
  if (!r.ok() || !r.value().has_value()) {
    ADD_FAILURE() << header << ": no range";
    return ByteRange{~uint64_t{0}, ~uint64_t{0}};
  }
  return *r.value();
}

void expect_range(const std::string& header, uint64_t size, uint64_t first, uint64_t last) {
  ByteRange r = parsed(header, size);
  EXPECT_EQ(r.first, first) << header;
  EXPECT_EQ(r.last, last) << header;
}

TEST(ParseRange, NoHeaderOrAnotherUnitMeansTheWholeBody) {
  for (const char* h : {"", "   ", "items=0-5", "none=1-2"}) {
    auto r = parse_range(h, 1000);
    ASSERT_TRUE(r.ok()) << h << ": " << r.status().to_string();
    EXPECT_FALSE(r.value().has_value()) << h;
  }
}

TEST(ParseRange, ParsesTheThreeForms) {
  expect_range("bytes=0-499", 1000, 0, 499);
  expect_range("bytes=500-999", 1000, 500, 999);
  expect_range("bytes=999-999", 1000, 999, 999);
  expect_range("bytes=500-", 1000, 500, 999);
  expect_range("bytes=0-", 1000, 0, 999);
  expect_range("bytes=-200", 1000, 800, 999);
  expect_range("bytes=-1", 1000, 999, 999);
  EXPECT_EQ(parsed("bytes=100-199", 1000).length(), 100u);
}

TEST(ParseRange, ClampsPastTheEnd) {
  expect_range("bytes=0-5000", 1000, 0, 999);
  expect_range("bytes=-2000", 1000, 0, 999);
  expect_range("bytes=10-99999999999999999999999", 1000, 10, 999);  // saturates, then clamps
  expect_range("bytes=-99999999999999999999999", 1000, 0, 999);
}

TEST(ParseRange, AcceptsUnitInAnyCaseAndOptionalWhitespace) {
  expect_range("Bytes=1-2", 10, 1, 2);
  expect_range("  bytes= 1-2 ", 10, 1, 2);
  expect_range("bytes=1-2,", 10, 1, 2);  // empty list elements are allowed (RFC 9110 list rule)
}

TEST(ParseRange, ReportsUnsatisfiableRangesDistinctly) {
  for (auto [h, size] : {std::pair<const char*, uint64_t>{"bytes=1000-", 1000}, {"bytes=1000-2000", 1000},
                         {"bytes=5000-6000", 1000}, {"bytes=-0", 1000}, {"bytes=0-", 0}, {"bytes=-5", 0},
                         {"bytes=99999999999999999999999-", 1000}}) {
    auto r = parse_range(h, size);
    ASSERT_FALSE(r.ok()) << h;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << h;
    EXPECT_TRUE(is_range_not_satisfiable(r.status())) << h << ": " << r.status().message();
    EXPECT_EQ(r.status().message().rfind("range not satisfiable", 0), 0u) << r.status().message();
  }
}

TEST(ParseRange, RejectsMultipleRanges) {
  auto r = parse_range("bytes=0-1,5-6", 1000);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("multiple ranges are not supported"), std::string::npos);
  EXPECT_FALSE(is_range_not_satisfiable(r.status()));
}

TEST(ParseRange, RejectsMalformedRanges) {
  for (const char* h : {"bytes=", "bytes=,", "bytes=abc", "bytes=5-1", "bytes=1-x", "bytes=--5", "bytes=-",
                        "bytes=5", "bytes=+1-2", "bytes=1 -2", "bytes=0x10-", "0-5"}) {
    auto r = parse_range(h, 1000);
    ASSERT_FALSE(r.ok()) << h;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << h;
    EXPECT_NE(r.status().message().find("malformed range"), std::string::npos) << r.status().message();
    EXPECT_FALSE(is_range_not_satisfiable(r.status())) << h;
  }
}

TEST(ParseRange, QuotesHostileHeadersEscapedAndShortened) {
  auto r = parse_range("bytes=\xff\x01-" + std::string(10000, '9') + "x", 1000);
  ASSERT_FALSE(r.ok());
  const std::string& m = r.status().message();
  EXPECT_NE(m.find("\\xff\\x01"), std::string::npos) << m;
  EXPECT_LT(m.size(), 400u);
  for (char c : m) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << m;
}

TEST(ParseRange, OtherCodesAreNotUnsatisfiable) {
  EXPECT_FALSE(is_range_not_satisfiable(Status()));
  EXPECT_FALSE(is_range_not_satisfiable(Status(StatusCode::kNotFound, "range not satisfiable")));
}

TEST(ContentRange, FormatsPartialAndUnsatisfiableAnswers) {
  EXPECT_EQ(content_range(ByteRange{0, 499}, 1000), "bytes 0-499/1000");
  EXPECT_EQ(content_range(ByteRange{999, 999}, 1000), "bytes 999-999/1000");
  EXPECT_EQ(content_range_unsatisfiable(1000), "bytes */1000");
}

}  // namespace
}  // namespace loom::transport
