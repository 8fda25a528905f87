// Tests for transport/base64.h against RFC 4648 section 10, round trips of
// binary data, and strict rejection of non-canonical input.
#include "transport/base64.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>

namespace loom::transport {
namespace {

const std::pair<const char*, const char*> kRfc4648Vectors[] = {
    {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},         {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
};

TEST(Base64, EncodesRfc4648Vectors) {
  for (auto [plain, encoded] : kRfc4648Vectors) EXPECT_EQ(base64_encode(plain), encoded) << plain;
}

TEST(Base64, DecodesRfc4648Vectors) {
  for (auto [plain, encoded] : kRfc4648Vectors) {
    auto r = base64_decode(encoded);
    ASSERT_TRUE(r.ok()) << encoded << ": " << r.status().to_string();
    EXPECT_EQ(r.value(), plain);
  }
}

TEST(Base64, UsesTheStandardAlphabet) {
  EXPECT_EQ(base64_encode("\xfb\xff\xbf"), "+/+/");
  EXPECT_EQ(base64_decode("+/+/").value(), "\xfb\xff\xbf");
}

TEST(Base64, RoundTripsEveryByteAtEveryLength) {
  std::string data;
  for (int i = 0; i < 300; ++i) data.push_back(static_cast<char>((i * 7 + 3) & 0xff));
  for (size_t n = 0; n <= data.size(); ++n) {
    std::string in = data.substr(0, n);
    std::string encoded = base64_encode(in);
    EXPECT_EQ(encoded.size(), (n + 2) / 3 * 4);
    auto out = base64_decode(encoded);
    ASSERT_TRUE(out.ok()) << n << ": " << out.status().to_string();
    EXPECT_EQ(out.value(), in) << n;
  }
}

TEST(Base64, RejectsMalformedInput) {
  for (const char* bad : {"Zm9", "Zm9vY", "Zm9v\n", "Zm9v YmFy", "Zm=v", "Z===", "====", "=Zm9", "Zm9v!A==",
                          "Zm9vYmFy====", "Zm9-", "Zm9_"}) {
    auto r = base64_decode(bad);
    EXPECT_FALSE(r.ok()) << "'" << bad << "' decoded to '" << (r.ok() ? r.value() : "") << "'";
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
      EXPECT_EQ(r.status().message().rfind("bad base64: ", 0), 0u) << r.status().message();
    }
  }
  auto nul = base64_decode(std::string("Zg=\0", 4));
  EXPECT_FALSE(nul.ok());
}

TEST(Base64, RejectsNonzeroBitsBeforePadding) {
  // "Zh==" and "Zm9=" carry bits the encoder always leaves zero.
  for (const char* bad : {"Zh==", "Zm9="}) {
    auto r = base64_decode(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("nonzero bits"), std::string::npos) << r.status().message();
  }
}

}  // namespace
}  // namespace loom::transport
