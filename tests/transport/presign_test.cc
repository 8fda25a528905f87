// Tests for transport/presign.h: HMAC-SHA256, presigned result URLs and
// webhook signatures. Fixed vectors come from RFC 4231 and from
// `openssl dgst -sha256 -hmac`.
#include "transport/presign.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>

namespace loom::transport {
namespace {

constexpr char kSecret[] = "presign-secret";
constexpr char kPath[] = "/v1/blobs/results/abc";
constexpr int64_t kExpires = 1700000000;

::testing::AssertionResult contains(const std::string& haystack, const std::string& needle) {
  if (haystack.find(needle) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << haystack << "\" does not contain \"" << needle << "\"";
}

// presign()'s answer split into path and query.
std::pair<std::string, std::string> split_url(const std::string& url) {
  size_t q = url.find('?');
  return {url.substr(0, q), url.substr(q + 1)};
}

std::string valid_sig() { return hmac_sha256_hex(kSecret, std::string("GET\n") + kPath + "\n" + "1700000000"); }

TEST(Hmac, MatchesRfc4231TestCases) {
  // Test case 2: a key shorter than the block.
  EXPECT_EQ(hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // Test case 1: 20 bytes of 0x0b.
  EXPECT_EQ(hmac_sha256_hex(std::string(20, '\x0b'), "Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  // Test case 6: a key longer than the block (131 bytes of 0xaa), hashed first.
  EXPECT_EQ(hmac_sha256_hex(std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First"),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(ConstantTimeEqual, ComparesContentAndLength) {
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
  EXPECT_FALSE(constant_time_equal("", "a"));
  EXPECT_TRUE(constant_time_equal(std::string("a\0b", 3), std::string("a\0b", 3)));
  EXPECT_FALSE(constant_time_equal(std::string("a\0b", 3), std::string("a\0c", 3)));
}

TEST(PresignedUrl, SignsMethodPathAndExpiresAsTheProtocolSays) {
  std::string url = presign(kSecret, "GET", kPath, kExpires);
  // openssl dgst -sha256 -hmac presign-secret over "GET\n/v1/blobs/results/abc\n1700000000".
  EXPECT_EQ(url, std::string(kPath) +
                     "?expires=1700000000&sig=e3bd691735ad9c653cf227c699f36109db64f48f12cd51c2e78dea6a37c2c7a6");
  EXPECT_EQ(valid_sig(), "e3bd691735ad9c653cf227c699f36109db64f48f12cd51c2e78dea6a37c2c7a6");
}

TEST(PresignedUrl, AcceptsAFreshSignatureUntilItsExpirySecond) {
  auto [path, query] = split_url(presign(kSecret, "GET", kPath, kExpires));
  EXPECT_TRUE(verify_presigned(kSecret, "GET", path, query, kExpires - 3600).ok());
  EXPECT_TRUE(verify_presigned(kSecret, "GET", path, query, kExpires).ok());
  EXPECT_TRUE(verify_presigned(kSecret, "GET", path, "?" + query, kExpires).ok());
}

TEST(PresignedUrl, AcceptsParametersInAnyOrderAndHexInEitherCase) {
  std::string upper = valid_sig();
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_TRUE(verify_presigned(kSecret, "GET", kPath, "sig=" + valid_sig() + "&expires=1700000000", 0).ok());
  EXPECT_TRUE(verify_presigned(kSecret, "GET", kPath, "expires=1700000000&sig=" + upper, 0).ok());
}

TEST(PresignedUrl, RejectsExpiredSignature) {
  auto [path, query] = split_url(presign(kSecret, "GET", kPath, kExpires));
  Status s = verify_presigned(kSecret, "GET", path, query, kExpires + 1);
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied);
  EXPECT_TRUE(contains(s.message(), "expired"));
  EXPECT_TRUE(contains(s.message(), "1700000000"));
}

TEST(PresignedUrl, RejectsTamperedSignaturePathExpiresMethodOrSecret) {
  auto [path, query] = split_url(presign(kSecret, "GET", kPath, kExpires));
  const int64_t now = kExpires - 10;
  auto expect_bad = [&](const Status& s, const char* what) {
    EXPECT_EQ(s.code(), StatusCode::kPermissionDenied) << what << ": " << s.to_string();
    EXPECT_TRUE(contains(s.message(), "bad signature")) << what;
  };
  std::string flipped = query;
  flipped.back() = flipped.back() == '0' ? '1' : '0';
  expect_bad(verify_presigned(kSecret, "GET", path, flipped, now), "flipped sig digit");
  expect_bad(verify_presigned(kSecret, "GET", path, query.substr(0, query.size() - 1), now), "short sig");
  expect_bad(verify_presigned(kSecret, "GET", path, "expires=1700000000&sig=", now), "empty sig");
  expect_bad(verify_presigned(kSecret, "GET", "/v1/blobs/results/abd", query, now), "other path");
  expect_bad(verify_presigned(kSecret, "GET", path + "/", query, now), "path with a slash added");
  expect_bad(verify_presigned(kSecret, "PUT", path, query, now), "other method");
  expect_bad(verify_presigned("other-secret", "GET", path, query, now), "other secret");
  // Extending the lifetime without re-signing: checked before expiry, so an
  // expired URL with a pushed-out expires reads as tampered, not valid.
  expect_bad(verify_presigned(kSecret, "GET", path, "expires=1700003600&sig=" + valid_sig(), kExpires + 1),
             "extended expires");
}

TEST(PresignedUrl, RejectsMalformedQuery) {
  const std::string sig = valid_sig();
  for (const std::string& q : {std::string(""), std::string("?"), std::string("expires=1700000000"),
                               "sig=" + sig, "expires=abc&sig=" + sig, "expires=-5&sig=" + sig,
                               "expires=+5&sig=" + sig, "expires=&sig=" + sig,
                               "expires=99999999999999999999&sig=" + sig,
                               "expires=1700000000&expires=1700000000&sig=" + sig,
                               "expires=1700000000&sig=" + sig + "&sig=" + sig,
                               "expires=1700000000&sig=" + sig + "&x-extra=1", "expires&sig=" + sig,
                               "expires=1700000000&&sig=" + sig}) {
    Status s = verify_presigned(kSecret, "GET", kPath, q, 0);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << "query '" << q << "': " << s.to_string();
    EXPECT_TRUE(contains(s.message(), "malformed presigned query")) << q;
  }
}

TEST(PresignedUrl, QuotesHostileQueryTextEscaped) {
  Status s = verify_presigned(kSecret, "GET", kPath, "expires=1&sig=ab&\xc3\x28=1", 0);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(s.message(), "unexpected parameter '\\xc3('")) << s.message();
  Status t = verify_presigned(kSecret, "GET", "/v1/blobs/\xff", "expires=1&sig=ab", 0);
  EXPECT_EQ(t.code(), StatusCode::kPermissionDenied);
  EXPECT_TRUE(contains(t.message(), "/v1/blobs/\\xff")) << t.message();
}

TEST(WebhookSignature, IsHmacOfTimestampDotBody) {
  const std::string body = R"({"job_id":"j1","state":"COMPLETED"})";
  // openssl dgst -sha256 -hmac whsec-test over "1700000000." + body.
  EXPECT_EQ(webhook_signature("whsec-test", "1700000000", body),
            "sha256=f4e70be5591a496b334f1d489759fcdb1d408e74b3dd7f830da7fa0d5a210add");
  EXPECT_EQ(webhook_signature("whsec-test", "1700000000", body),
            "sha256=" + hmac_sha256_hex("whsec-test", "1700000000." + body));
  EXPECT_NE(webhook_signature("whsec-test", "1700000001", body), webhook_signature("whsec-test", "1700000000", body));
  EXPECT_NE(webhook_signature("whsec-other", "1700000000", body), webhook_signature("whsec-test", "1700000000", body));
}

}  // namespace
}  // namespace loom::transport
