// The hybrid-execution frames: round trips, and hostile frames refused with
// a message (truncated, lying header length, wrong type, oversized).
#include "transport/stream_frames.h"

#include <gtest/gtest.h>

namespace loom::transport {
namespace {

TEST(StreamFrames, RequestRoundTripsThroughABinaryFrame) {
  StreamRequest r;
  r.job_id = "abc";
  r.stream_id = 3;
  r.callback = "edit";
  r.deadline_ms = 1500;
  r.max_reply_bytes = 4096;
  r.tensors = std::string("\0\1\2 tensor bytes", 16);
  auto parts = split_binary_frame(encode_stream_request(r));
  ASSERT_TRUE(parts.ok()) << parts.status().to_string();
  nlohmann::json event = parts->first;
  event["tensors"] = nlohmann::json::binary(std::vector<uint8_t>(parts->second.begin(), parts->second.end()));
  auto back = decode_stream_request(event);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->job_id, "abc");
  EXPECT_EQ(back->stream_id, 3u);
  EXPECT_EQ(back->callback, "edit");
  EXPECT_EQ(back->deadline_ms, 1500u);
  EXPECT_EQ(back->max_reply_bytes, 4096u);
  EXPECT_EQ(back->tensors, r.tensors);
}

TEST(StreamFrames, ReplyRoundTripsBinaryAndAsBase64Text) {
  StreamReply r;
  r.stream_id = 2;
  r.tensors = "safetensors bytes";
  auto back = decode_stream_reply(encode_stream_reply(r), /*binary=*/true, 1 << 20);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->stream_id, 2u);
  EXPECT_EQ(back->tensors, r.tensors);
  auto text = decode_stream_reply(R"({"type":"STREAM_REPLY","stream_id":2,"tensors":"aGk="})", false, 1 << 20);
  ASSERT_TRUE(text.ok()) << text.status().to_string();
  EXPECT_EQ(text->tensors, "hi");
  StreamReply failed;
  failed.stream_id = 5;
  failed.error = "callback exploded";
  auto err = decode_stream_reply(encode_stream_reply(failed), true, 1 << 20);
  ASSERT_TRUE(err.ok());
  EXPECT_EQ(err->error, "callback exploded");
  EXPECT_TRUE(err->tensors.empty());
}

TEST(StreamFrames, HostileRepliesAreRefusedWithTheReason) {
  auto message = [](std::string_view frame, bool binary, uint64_t max = 1 << 20) {
    auto r = decode_stream_reply(frame, binary, max);
    EXPECT_FALSE(r.ok());
    return r.ok() ? std::string() : r.status().message();
  };
  EXPECT_NE(message("ab", true).find("shorter than its 4-byte header length"), std::string::npos);
  EXPECT_NE(message(std::string("\x40\0\0\0{}", 6), true).find("runs past"), std::string::npos);
  EXPECT_NE(message(std::string("\x02\0\0\0[]", 6), true).find("not a JSON object"), std::string::npos);
  std::string header = R"({"type":"STREAM_REPLY","stream_id":1})";
  std::string no_body = std::string(1, static_cast<char>(header.size())) + std::string("\0\0\0", 3) + header;
  EXPECT_NE(message(no_body, true).find("neither"), std::string::npos);
  EXPECT_NE(message(R"({"type":"STREAM","stream_id":1})", false).find("only send STREAM_REPLY"), std::string::npos);
  EXPECT_NE(message(R"({"type":"STREAM_REPLY","stream_id":0,"tensors":""})", false).find("stream_id"),
            std::string::npos);
  EXPECT_NE(message(R"({"type":"STREAM_REPLY","stream_id":1,"error":7})", false).find("non-empty string"),
            std::string::npos);
  auto big = decode_stream_reply(std::string(100, 'x'), false, 99);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().code(), StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace loom::transport
