// Tests for transport/request.h: the job request's wire round trip, its
// identity, and decoding of hostile bodies.
#include "transport/request.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "graph/codec.h"
#include "transport/protocol.capnp.h"
#include "transport/zstd_codec.h"

namespace loom::transport {
namespace {

::testing::AssertionResult contains(const std::string& haystack, const std::string& needle) {
  if (haystack.find(needle) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << haystack << "\" does not contain \"" << needle << "\"";
}

graph::TensorData tensor(graph::DType dtype, std::vector<int64_t> shape, std::string bytes) {
  graph::TensorData t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.bytes = std::move(bytes);
  return t;
}

std::string f32_bytes(std::vector<float> v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

// Two invokes, several node kinds, and every option away from its default,
// so that a field the codec drops shows.
JobRequest full_request() {
  JobRequest r;
  r.model_key = "gpt2-small";
  r.graph.invokes = 2;
  graph::Node read;
  read.kind = graph::NodeKind::kRead;
  read.point = graph::Point{"transformer.h.3", graph::Io::kOutput, 0, 1, 1};
  r.graph.nodes.push_back(read);
  graph::Node constant;
  constant.kind = graph::NodeKind::kConstant;
  constant.tensor = tensor(graph::DType::kFloat32, {2}, f32_bytes({1.5f, -2.f}));
  r.graph.nodes.push_back(constant);
  graph::Node op;
  op.kind = graph::NodeKind::kOp;
  op.op = "aten::mul.Tensor";
  op.args = {graph::Arg::of_node(0), graph::Arg::of_node(1)};
  r.graph.nodes.push_back(op);
  graph::Node save;
  save.kind = graph::NodeKind::kSave;
  save.input = 2;
  save.name = "scaled";
  r.graph.nodes.push_back(save);

  std::string ids0(4 * 8, '\0'), ids1(4 * 8, '\0');
  for (int i = 0; i < 4; ++i) {
    int64_t a = 100 + i, b = 200 + i;
    std::memcpy(&ids0[i * 8], &a, 8);
    std::memcpy(&ids1[i * 8], &b, 8);
  }
  r.invokes = {
      {tensor(graph::DType::kInt64, {1, 4}, ids0), tensor(graph::DType::kUInt8, {1, 4}, std::string("\x01\x01\x01\x00", 4))},
      {tensor(graph::DType::kInt64, {1, 4}, ids1), tensor(graph::DType::kUInt8, {1, 4}, std::string(4, '\x01'))},
  };
  r.callback_url = "https://example.com/hook";
  r.request_id = "req-42";
  r.no_cache = true;
  r.stream_timeout_ms = 1234;
  r.wall_time_ms = 98765;
  return r;
}

void expect_same_tensor(const graph::TensorData& a, const graph::TensorData& b) {
  EXPECT_EQ(a.dtype, b.dtype);
  EXPECT_EQ(a.shape, b.shape);
  EXPECT_EQ(a.bytes, b.bytes);
}

std::string flat_bytes(capnp::MessageBuilder& message) {
  auto words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

// The uncompressed Cap'n Proto bytes of a request.
std::string flat_request(const JobRequest& r) {
  auto flat = zstd_decompress(encode_request(r), 1ull << 30);
  EXPECT_TRUE(flat.ok()) << flat.status().to_string();
  return flat.value();
}

TEST(JobRequest, RoundTripsEveryField) {
  JobRequest in = full_request();
  auto out = decode_request(encode_request(in));
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(out->protocol_version, kProtocolVersion);
  EXPECT_EQ(out->model_key, "gpt2-small");
  EXPECT_EQ(graph::graph_checksum(out->graph), graph::graph_checksum(in.graph));
  ASSERT_EQ(out->graph.nodes.size(), 4u);
  EXPECT_EQ(out->graph.invokes, 2u);
  EXPECT_EQ(out->graph.nodes[0].point.module, "transformer.h.3");
  EXPECT_EQ(out->graph.nodes[0].point.invoke, 1);
  EXPECT_EQ(out->graph.nodes[2].op, "aten::mul.Tensor");
  EXPECT_EQ(out->graph.nodes[3].name, "scaled");
  ASSERT_EQ(out->invokes.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    ASSERT_EQ(out->invokes[i].size(), 2u);
    for (size_t j = 0; j < 2; ++j) expect_same_tensor(out->invokes[i][j], in.invokes[i][j]);
  }
  EXPECT_EQ(out->callback_url, "https://example.com/hook");
  EXPECT_EQ(out->request_id, "req-42");
  EXPECT_TRUE(out->no_cache);
  EXPECT_EQ(out->stream_timeout_ms, 1234u);
  EXPECT_EQ(out->wall_time_ms, 98765u);
}

TEST(JobRequest, DefaultOptionsRoundTrip) {
  JobRequest in = full_request();
  in.callback_url.clear();
  in.request_id.clear();
  in.no_cache = false;
  in.stream_timeout_ms = JobRequest{}.stream_timeout_ms;
  in.wall_time_ms = 0;
  auto out = decode_request(encode_request(in));
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(out->callback_url, "");
  EXPECT_EQ(out->request_id, "");
  EXPECT_FALSE(out->no_cache);
  EXPECT_EQ(out->stream_timeout_ms, 60000u);
  EXPECT_EQ(out->wall_time_ms, 0u);
}

TEST(JobRequest, MissingOptionsReadAsSchemaDefaults) {
  // A sender that never sets options (an older client) gets the defaults.
  capnp::MallocMessageBuilder message;
  auto r = message.initRoot<wire::JobRequest>();
  r.setProtocolVersion(kProtocolVersion);
  r.setModelKey("m");
  graph::to_capnp(graph::Graph{}, r.initGraph());
  r.initInvokes(1);
  auto out = decode_request(zstd_compress(flat_bytes(message)));
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(out->stream_timeout_ms, 60000u);
  EXPECT_EQ(out->wall_time_ms, 0u);
  EXPECT_FALSE(out->no_cache);
  ASSERT_EQ(out->invokes.size(), 1u);
  EXPECT_TRUE(out->invokes[0].empty());
}

TEST(RequestIdentity, IsStableAcrossEncodingAndIgnoresOptions) {
  JobRequest a = full_request();
  std::string id = request_identity(a);
  EXPECT_EQ(id.size(), 64u);
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(request_identity(full_request()), id);
  auto decoded = decode_request(encode_request(a));
  ASSERT_TRUE(decoded.ok()) << decoded.status().to_string();
  EXPECT_EQ(request_identity(decoded.value()), id);

  JobRequest b = a;
  b.callback_url = "https://elsewhere.example/";
  b.request_id = "another";
  b.no_cache = false;
  b.stream_timeout_ms = 5;
  b.wall_time_ms = 7;
  EXPECT_EQ(request_identity(b), id);
}

TEST(RequestIdentity, ChangesWithEveryComputedField) {
  const JobRequest base = full_request();
  const std::string id = request_identity(base);
  std::vector<std::pair<std::string, JobRequest>> variants;
  auto variant = [&](const std::string& what) -> JobRequest& {
    variants.emplace_back(what, base);
    return variants.back().second;
  };
  variant("model key").model_key = "gpt2-medium";
  variant("save name").graph.nodes[3].name = "scaled2";
  variant("read point call").graph.nodes[0].point.call = 2;
  variant("constant bytes").graph.nodes[1].tensor.bytes = f32_bytes({1.5f, -3.f});
  variant("input byte").invokes[1][0].bytes[0] ^= 1;
  variant("input dtype").invokes[0][1].dtype = graph::DType::kInt8;
  variant("input shape, same bytes").invokes[0][0].shape = {4, 1};
  variant("input shape rank").invokes[0][0].shape = {1, 1, 4};
  {
    JobRequest& r = variant("input moved between invokes");
    r.invokes[1].insert(r.invokes[1].begin(), r.invokes[0].back());
    r.invokes[0].pop_back();
  }
  {
    JobRequest& r = variant("bytes moved between tensors");
    r.invokes[0][1].bytes += r.invokes[1][1].bytes.substr(0, 1);
    r.invokes[1][1].bytes.erase(0, 1);
  }
  variant("invokes swapped").invokes = {base.invokes[1], base.invokes[0]};
  variant("extra invoke").invokes.push_back(base.invokes[0]);

  for (size_t i = 0; i < variants.size(); ++i) {
    std::string vid = request_identity(variants[i].second);
    EXPECT_NE(vid, id) << variants[i].first;
    for (size_t j = 0; j < i; ++j) {
      EXPECT_NE(vid, request_identity(variants[j].second)) << variants[i].first << " vs " << variants[j].first;
    }
  }
}

TEST(RequestIdentity, FramesModelKeyAndInputsUnambiguously) {
  // Concatenations that agree byte for byte must still differ.
  JobRequest a = full_request(), b = full_request();
  a.model_key = "ab";
  a.invokes[0][1].bytes = "cd";
  a.invokes[0][1].shape = {2};
  b.model_key = "abc";
  b.invokes[0][1].bytes = "d";
  b.invokes[0][1].shape = {1};
  EXPECT_NE(request_identity(a), request_identity(b));
}

TEST(DecodeRequest, RejectsOversizedBodyNamingTheLimit) {
  std::string body = encode_request(full_request());
  RequestLimits limits;
  limits.max_body_bytes = body.size();
  EXPECT_TRUE(decode_request(body, limits).ok());
  limits.max_body_bytes = body.size() - 1;
  auto r = decode_request(body, limits);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(contains(r.status().message(), "max_body_bytes"));
  EXPECT_TRUE(contains(r.status().message(), std::to_string(body.size()) + " bytes"));
}

TEST(DecodeRequest, StopsDecompressionAtTheLimit) {
  std::string bomb = zstd_compress(std::string(4 << 20, '\0'));
  ASSERT_LT(bomb.size(), 4096u);
  RequestLimits limits;
  limits.max_decompressed_bytes = 1 << 20;
  auto r = decode_request(bomb, limits);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(contains(r.status().message(), "max_decompressed_bytes"));
}

TEST(DecodeRequest, RejectsGarbageAsBadZstd) {
  for (std::string body : {std::string("definitely not zstd"), std::string(64, '\xff'), std::string()}) {
    auto r = decode_request(body);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(contains(r.status().message(), "bad zstd"));
  }
}

TEST(DecodeRequest, RejectsEveryTruncatedPrefixOfAValidBody) {
  std::string body = encode_request(full_request());
  ASSERT_TRUE(decode_request(body).ok());
  for (size_t n = 0; n < body.size(); ++n) {
    auto r = decode_request(std::string_view(body).substr(0, n));
    ASSERT_FALSE(r.ok()) << "prefix of " << n << " bytes";
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << n;
    EXPECT_TRUE(contains(r.status().message(), "bad zstd")) << n;
  }
}

TEST(DecodeRequest, RejectsEveryTruncatedPrefixOfTheMessage) {
  std::string flat = flat_request(full_request());
  for (size_t n = 0; n < flat.size(); ++n) {
    auto r = decode_request(zstd_compress(std::string_view(flat).substr(0, n)));
    ASSERT_FALSE(r.ok()) << "prefix of " << n << " bytes";
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << n;
    EXPECT_EQ(r.status().message().rfind("malformed request: ", 0), 0u) << r.status().message();
  }
}

TEST(DecodeRequest, RejectsCapnpGarbageAndTrailingBytes) {
  auto garbage = decode_request(zstd_compress(std::string(64, '\xff')));
  ASSERT_FALSE(garbage.ok());
  EXPECT_EQ(garbage.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(garbage.status().message(), "malformed request: "));

  auto trailing = decode_request(zstd_compress(flat_request(full_request()) + std::string(16, '\0')));
  ASSERT_FALSE(trailing.ok());
  EXPECT_EQ(trailing.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(trailing.status().message(), "16 trailing bytes"));
}

TEST(DecodeRequest, SurvivesEveryCorruptedByte) {
  // Whatever one flipped byte does, the answer is a value or a client error.
  std::string flat = flat_request(full_request());
  for (size_t i = 0; i < flat.size(); ++i) {
    std::string bad = flat;
    bad[i] = static_cast<char>(bad[i] ^ 0xa5);
    auto r = decode_request(zstd_compress(bad));
    if (r.ok()) continue;
    StatusCode c = r.status().code();
    EXPECT_TRUE(c == StatusCode::kInvalidArgument || c == StatusCode::kFailedPrecondition ||
                c == StatusCode::kResourceExhausted)
        << "byte " << i << ": " << r.status().to_string();
    // Messages go into JSON bodies: kj's quotes of message bytes are escaped.
    for (char ch : r.status().message()) {
      ASSERT_TRUE(ch >= 0x20 && ch < 0x7f) << "byte " << i << ": " << r.status().message();
    }
  }
}

TEST(DecodeRequest, EnforcesTraversalAndNestingLimits) {
  std::string body = encode_request(full_request());
  RequestLimits tiny;
  tiny.traversal_limit_words = 4;
  auto r = decode_request(body, tiny);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message().rfind("malformed request: ", 0), 0u) << r.status().message();
  EXPECT_TRUE(contains(r.status().message(), "traversal limit"));

  RequestLimits shallow;
  shallow.nesting_limit = 2;
  auto s = decode_request(body, shallow);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(s.status().message(), "malformed request: "));

  // The default traversal limit (the decompressed size in words) is enough
  // for an honest request that fills the decompressed limit.
  JobRequest big = full_request();
  big.invokes[0][1] = tensor(graph::DType::kUInt8, {1 << 20}, std::string(1 << 20, '\x07'));
  RequestLimits exact;
  exact.max_decompressed_bytes = flat_request(big).size();
  exact.traversal_limit_words = exact.max_decompressed_bytes / 8;
  auto ok = decode_request(encode_request(big), exact);
  EXPECT_TRUE(ok.ok()) << ok.status().to_string();
}

TEST(DecodeRequest, RejectsOtherProtocolVersionNamingBoth) {
  JobRequest r = full_request();
  r.protocol_version = 2;
  auto out = decode_request(encode_request(r));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(contains(out.status().message(), "version 2"));
  EXPECT_TRUE(contains(out.status().message(), "version 1"));
}

TEST(DecodeRequest, RejectsEmptyModelKey) {
  JobRequest r = full_request();
  r.model_key.clear();
  auto out = decode_request(encode_request(r));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(out.status().message(), "empty model key"));
}

TEST(DecodeRequest, RejectsNoInvokesTooManyAndAMismatchWithTheGraph) {
  JobRequest none = full_request();
  none.invokes.clear();
  auto a = decode_request(encode_request(none));
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(a.status().message(), "no invokes"));

  RequestLimits limits;
  limits.max_invokes = 1;
  auto b = decode_request(encode_request(full_request()), limits);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(contains(b.status().message(), "2 invokes, over the limit of 1 (max_invokes)"));

  JobRequest mismatch = full_request();
  mismatch.invokes.pop_back();
  auto c = decode_request(encode_request(mismatch));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(c.status().message(), "the graph has 2 invoke(s) but the request carries 1"));
}

TEST(DecodeRequest, RejectsInputWhoseBytesDoNotMatchDtypeAndShape) {
  JobRequest r = full_request();
  r.invokes[1][0] = tensor(graph::DType::kFloat32, {2, 3}, std::string(20, '\0'));
  auto out = decode_request(encode_request(r));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(out.status().message(), "invoke 1 input 0"));
  EXPECT_TRUE(contains(out.status().message(), "F32 tensor of shape [2, 3] needs 24 bytes but has 20"));
}

TEST(DecodeRequest, RejectsNegativeAndOverflowingShapes) {
  JobRequest neg = full_request();
  neg.invokes[0][0] = tensor(graph::DType::kInt64, {-1, 4}, "");
  auto a = decode_request(encode_request(neg));
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(a.status().message(), "negative dimension"));

  JobRequest big = full_request();
  big.invokes[0][0] = tensor(graph::DType::kInt64, {int64_t{1} << 31, int64_t{1} << 31, 4}, "");
  auto b = decode_request(encode_request(big));
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(b.status().message(), "overflows"));

  // A product that wraps to exactly the byte count (2^62 * 4 * 8 = 2^67 = 0
  // mod 2^64) must not pass.
  JobRequest wrap = full_request();
  wrap.invokes[0][0] = tensor(graph::DType::kInt64, {int64_t{1} << 62, 4}, "");
  auto c = decode_request(encode_request(wrap));
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(contains(c.status().message(), "overflows"));
}

TEST(DecodeRequest, RejectsInputsOverTheByteLimit) {
  RequestLimits limits;
  limits.max_input_bytes = 40;  // invoke 0 (32 + 4 bytes) fits, invoke 1's first input does not
  auto out = decode_request(encode_request(full_request()), limits);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(contains(out.status().message(), "max_input_bytes"));
  EXPECT_TRUE(contains(out.status().message(), "invoke 1 input 0"));
}

TEST(DecodeRequest, RejectsUnknownDtypeAndUnsupportedGraphVersion) {
  {
    capnp::MallocMessageBuilder message;
    auto r = message.initRoot<wire::JobRequest>();
    r.setProtocolVersion(kProtocolVersion);
    r.setModelKey("m");
    graph::to_capnp(graph::Graph{}, r.initGraph());
    auto t = r.initInvokes(1)[0].initInputs(1)[0];
    t.setDtype(static_cast<schema::DType>(77));
    auto out = decode_request(zstd_compress(flat_bytes(message)));
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(contains(out.status().message(), "invoke 0 input 0: unknown dtype enumerant 77"));
  }
  {
    capnp::MallocMessageBuilder message;
    auto r = message.initRoot<wire::JobRequest>();
    r.setProtocolVersion(kProtocolVersion);
    r.setModelKey("m");
    auto g = r.initGraph();
    graph::to_capnp(graph::Graph{}, g);
    g.setVersion(9);
    r.initInvokes(1);
    auto out = decode_request(zstd_compress(flat_bytes(message)));
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(contains(out.status().message(), "request graph: graph version 9"));
  }
}

TEST(JobRequest, GenerationAndStepRangesRoundTripAndJoinTheIdentity) {
  JobRequest in = full_request();
  in.graph.nodes[0].point.call = 2;
  in.graph.nodes[0].point.call_end = graph::kEveryCall;
  const std::string plain_identity = request_identity(in);
  graph::GenerateOptions g;
  g.max_new_tokens = 33;
  g.temperature = 0.7;
  g.top_k = 40;
  g.top_p = 0.9;
  g.seed = 1234567890123ull;
  g.stop_token_ids = std::vector<int64_t>{2, 50256};
  g.pad_token_id = 7;
  in.generation = g;
  auto out = decode_request(encode_request(in));
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(out->graph.nodes[0].point.call_end, graph::kEveryCall);
  EXPECT_EQ(out->graph.nodes[0].point.to_string(), "transformer.h.3.output.0@2: (invoke 1)");
  ASSERT_TRUE(out->generation.has_value());
  EXPECT_EQ(out->generation->max_new_tokens, 33);
  EXPECT_EQ(out->generation->temperature, 0.7);
  EXPECT_EQ(out->generation->top_k, 40);
  EXPECT_EQ(out->generation->top_p, 0.9);
  EXPECT_EQ(out->generation->seed, 1234567890123ull);
  EXPECT_EQ(out->generation->stop_token_ids, (std::vector<int64_t>{2, 50256}));
  EXPECT_EQ(out->generation->pad_token_id, 7);
  EXPECT_EQ(request_identity(*out), request_identity(in));
  EXPECT_NE(request_identity(in), plain_identity);
  JobRequest other = in;
  other.generation->seed += 1;
  EXPECT_NE(request_identity(other), request_identity(in));
  other = in;
  other.generation->stop_token_ids.reset();  // "the model's eos" differs from an explicit list
  EXPECT_NE(request_identity(other), request_identity(in));
  other = in;
  other.graph.nodes[0].point.call_end = 9;
  EXPECT_NE(request_identity(other), request_identity(in));

  JobRequest none = full_request();
  auto plain = decode_request(encode_request(none));
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->generation.has_value());
}

TEST(DecodeRequest, RejectsBadGenerationOptionsNamingThem) {
  auto refused = [](graph::GenerateOptions g) {
    JobRequest r = full_request();
    r.generation = g;
    auto out = decode_request(encode_request(r));
    return out.ok() ? std::string("accepted") : out.status().message();
  };
  graph::GenerateOptions g;
  g.max_new_tokens = 0;
  EXPECT_TRUE(contains(refused(g), "max_new_tokens must be in [1, 65536]"));
  g = {};
  g.temperature = -1;
  EXPECT_TRUE(contains(refused(g), "temperature"));
  g = {};
  g.top_p = 1.5;
  EXPECT_TRUE(contains(refused(g), "top_p"));
  g = {};
  g.stop_token_ids = std::vector<int64_t>(5000, 1);
  EXPECT_TRUE(contains(refused(g), "5000 stop token ids, over the limit of 1024"));
  g = {};
  g.stop_token_ids = std::vector<int64_t>{-3};
  EXPECT_TRUE(contains(refused(g), "stop token id -3"));
  g = {};
  g.top_p = std::nan("");
  EXPECT_TRUE(contains(refused(g), "top_p"));
}

}  // namespace
}  // namespace loom::transport
