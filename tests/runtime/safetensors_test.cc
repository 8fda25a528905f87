// Tests of runtime/safetensors.h and runtime/gpt2_config.h on real files in a
// temporary directory.
#include "runtime/safetensors.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>

#include "runtime/gpt2_config.h"

namespace loom::runtime {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// A fresh directory under /tmp, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/loom_safetensors_test_XXXXXX";
    const char* made = mkdtemp(tmpl);
    EXPECT_NE(made, nullptr);
    path_ = made ? made : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string le64(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return out;
}

// A file made by hand: length prefix, the header text as given, then `data`.
std::string make_file(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

std::string entry(const std::string& dtype, const std::string& shape, const std::string& offsets) {
  return "{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
}

// Expects an INVALID_ARGUMENT whose message contains every fragment.
template <typename T>
void expect_invalid(const Result<T>& r, const std::vector<std::string>& fragments) {
  ASSERT_FALSE(r.ok()) << "expected an error containing \"" << fragments.front() << "\"";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().to_string();
  for (const std::string& f : fragments) {
    EXPECT_NE(r.status().message().find(f), std::string::npos)
        << "message \"" << r.status().message() << "\" lacks \"" << f << "\"";
  }
}

void expect_invalid(const Status& s, const std::vector<std::string>& fragments) {
  expect_invalid(Result<int>(s), fragments);
}

std::vector<NamedTensor> every_dtype() {
  auto opts = [](at::ScalarType t) { return at::TensorOptions().dtype(t); };
  return {
      {"f64", at::arange(-3, 3, opts(at::kDouble)).reshape({2, 3}) * 0.25},
      {"f32", at::arange(-6, 6, opts(at::kFloat)).reshape({3, 2, 2}) / 3},
      {"f16", at::arange(-4, 4, opts(at::kFloat)).mul(0.5).to(at::kHalf)},
      {"bf16", at::arange(-4, 4, opts(at::kFloat)).mul(1.5).to(at::kBFloat16).reshape({2, 4})},
      {"i64", at::tensor(std::vector<int64_t>{std::numeric_limits<int64_t>::min(), -1, 0,
                                              std::numeric_limits<int64_t>::max()})},
      {"i32", at::tensor(std::vector<int32_t>{std::numeric_limits<int32_t>::min(), 7, 0,
                                              std::numeric_limits<int32_t>::max()})},
      {"i16", at::arange(-300, 300, 100, opts(at::kShort))},
      {"i8", at::arange(-128, 128, 51, opts(at::kChar))},
      {"u8", at::arange(0, 256, 17, opts(at::kByte))},
      {"bool", at::tensor(std::vector<int64_t>{1, 0, 0, 1, 1}).to(at::kBool)},
      {"scalar", at::scalar_tensor(2.5, opts(at::kFloat))},
      {"empty", at::empty({0, 3}, opts(at::kFloat))},
  };
}

void expect_same_tensors(const std::vector<NamedTensor>& want, const SafetensorsFile& got) {
  ASSERT_EQ(got.tensors.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE(want[i].name);
    EXPECT_EQ(got.tensors[i].name, want[i].name);
    const at::Tensor& t = got.tensors[i].tensor;
    EXPECT_EQ(t.scalar_type(), want[i].tensor.scalar_type());
    EXPECT_EQ(t.sizes(), want[i].tensor.sizes());
    EXPECT_TRUE(t.is_contiguous());
    EXPECT_TRUE(at::equal(t, want[i].tensor.contiguous()));
  }
}

// ---------------------------------------------------------------- writer/reader

TEST(Safetensors, RoundTripsEveryDtypeAndMetadataThroughAFile) {
  TempDir dir;
  auto tensors = every_dtype();
  std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "\"quoted\"\n"}};
  ASSERT_TRUE(write_safetensors_file(dir.file("all.safetensors"), tensors, metadata).ok());
  auto r = read_safetensors_file(dir.file("all.safetensors"));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  expect_same_tensors(tensors, *r);
  EXPECT_EQ(r->metadata, metadata);
  EXPECT_FALSE(fs::exists(dir.file("all.safetensors.partial." + std::to_string(getpid()))));
}

TEST(Safetensors, EncodeProducesTheBytesTheFileWriterWrites) {
  TempDir dir;
  auto tensors = every_dtype();
  ASSERT_TRUE(write_safetensors_file(dir.file("a.safetensors"), tensors, {{"k", "v"}}).ok());
  auto encoded = encode_safetensors(tensors, {{"k", "v"}});
  ASSERT_TRUE(encoded.ok()) << encoded.status().to_string();
  EXPECT_EQ(*encoded, read_bytes(dir.file("a.safetensors")));
  auto r = read_safetensors_buffer(*encoded);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  expect_same_tensors(tensors, *r);
}

TEST(Safetensors, WriterPadsHeaderWithSpacesToEightByteAlignmentAndKeepsOrder) {
  std::vector<NamedTensor> tensors = {{"zeta", at::ones({3}, at::kFloat)}, {"alpha", at::zeros({1}, at::kByte)}};
  auto bytes = encode_safetensors(tensors);
  ASSERT_TRUE(bytes.ok());
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>((*bytes)[i]);
  EXPECT_EQ(n % 8, 0u);
  ASSERT_EQ(bytes->size(), 8 + n + 12 + 1);
  std::string header = bytes->substr(8, n);
  EXPECT_EQ(header.find_first_not_of(' ', header.rfind('}') + 1), std::string::npos);
  auto json = Json::parse(header);
  EXPECT_EQ(json["zeta"]["data_offsets"], Json({0, 12}));
  EXPECT_EQ(json["alpha"]["data_offsets"], Json({12, 13}));
  EXPECT_EQ(json["zeta"]["dtype"], "F32");
  EXPECT_FALSE(json.contains("__metadata__"));  // nothing to say, so not written
  EXPECT_LT(header.find("zeta"), header.find("alpha"));
}

TEST(Safetensors, WriterCopiesNonContiguousTensorsAndReaderOwnsMemory) {
  at::Tensor base = at::arange(12, at::kFloat).reshape({3, 4});
  at::Tensor transposed = base.t();
  auto bytes = encode_safetensors({{"t", transposed}});
  ASSERT_TRUE(bytes.ok());
  auto r = read_safetensors_buffer(*bytes);
  ASSERT_TRUE(r.ok());
  at::Tensor t = r->find("t");
  ASSERT_TRUE(t.defined());
  EXPECT_EQ(t.sizes(), at::IntArrayRef({4, 3}));
  EXPECT_TRUE(at::equal(t, transposed));
  bytes->assign(bytes->size(), '\0');  // the tensor must not alias the buffer
  EXPECT_EQ(t[1][2].item<float>(), 9.0f);
  EXPECT_FALSE(r->find("missing").defined());
}

TEST(Safetensors, ReaderReturnsTensorsInDataOffsetOrder) {
  std::string header = "{\"b\":" + entry("U8", "[2]", "[2,4]") + ",\"a\":" + entry("U8", "[2]", "[0,2]") + "}";
  auto r = read_safetensors_buffer(make_file(header, "\x01\x02\x03\x04"));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ(r->tensors.size(), 2u);
  EXPECT_EQ(r->tensors[0].name, "a");
  EXPECT_EQ(r->tensors[1].name, "b");
  EXPECT_EQ(r->tensors[1].tensor[1].item<uint8_t>(), 4);
}

TEST(Safetensors, WriterRejectsDuplicateEmptyReservedAndUndefinedNames) {
  at::Tensor t = at::ones({2});
  expect_invalid(encode_safetensors({{"w", t}, {"v", t}, {"w", t}}), {"tensor \"w\"", "twice"});
  expect_invalid(encode_safetensors({{"", t}}), {"name is empty"});
  expect_invalid(encode_safetensors({{"__metadata__", t}}), {"reserved"});
  expect_invalid(encode_safetensors({{"u", at::Tensor()}}), {"tensor \"u\"", "undefined"});
  expect_invalid(encode_safetensors({{"bad\xff", t}}), {"cannot encode safetensors header", "UTF-8"});
  TempDir dir;
  expect_invalid(write_safetensors_file(dir.file("dup.safetensors"), {{"w", t}, {"w", t}}), {"twice"});
  EXPECT_FALSE(fs::exists(dir.file("dup.safetensors")));
}

TEST(Safetensors, WriterRejectsDtypesSafetensorsCannotName) {
  at::Tensor c = at::ones({2}, at::kComplexFloat);
  expect_invalid(encode_safetensors({{"c", c}}), {"tensor \"c\"", "ComplexFloat", "supported: F64"});
}

TEST(Safetensors, MissingFileOrDirectoryIsNotFound) {
  TempDir dir;
  Status s = write_safetensors_file(dir.file("no/such/dir.safetensors"), {{"w", at::ones({1})}});
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.to_string();
  auto r = read_safetensors_file(dir.file("nope.safetensors"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("nope.safetensors"), std::string::npos);
}

// --------------------------------------------------------------- hostile input

TEST(Safetensors, RejectsEveryTruncatedPrefixOfABuffer) {
  auto bytes = encode_safetensors(every_dtype(), {{"format", "pt"}});
  ASSERT_TRUE(bytes.ok());
  for (size_t cut = 0; cut < bytes->size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    auto r = read_safetensors_buffer(bytes->substr(0, cut));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message().rfind("<buffer>: ", 0), 0u) << r.status().message();
  }
}

TEST(Safetensors, RejectsEveryTruncatedPrefixOfAFileNamingTheFile) {
  TempDir dir;
  std::vector<NamedTensor> tensors = {{"w", at::ones({2, 3})}, {"flag", at::ones({4}, at::kBool)}};
  auto bytes = encode_safetensors(tensors, {{"k", "v"}});
  ASSERT_TRUE(bytes.ok());
  const std::string path = dir.file("cut.safetensors");
  for (size_t cut = 0; cut < bytes->size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    write_bytes(path, bytes->substr(0, cut));
    auto r = read_safetensors_file(path);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message().rfind(path + ": ", 0), 0u) << r.status().message();
  }
  write_bytes(path, *bytes);
  EXPECT_TRUE(read_safetensors_file(path).ok());
}

TEST(Safetensors, RejectsFileShorterThanTheLengthPrefix) {
  expect_invalid(read_safetensors_buffer("abc"), {"<buffer>: 3 bytes is too short for the 8-byte header length"});
}

TEST(Safetensors, RejectsHeaderLongerThanFile) {
  std::string header = "{}";
  std::string bytes = le64(3) + header;
  expect_invalid(read_safetensors_buffer(bytes), {"header length 3 is longer than the 2 bytes that follow it"});
}

TEST(Safetensors, RejectsHugeHeaderLengthsWithoutAllocating) {
  for (uint64_t n : {uint64_t{1} << 63, std::numeric_limits<uint64_t>::max(), uint64_t{1} << 40}) {
    SCOPED_TRACE(n);
    expect_invalid(read_safetensors_buffer(le64(n) + "{}"), {"header length " + std::to_string(n)});
  }
  TempDir dir;
  write_bytes(dir.file("huge.safetensors"), le64(std::numeric_limits<uint64_t>::max()) + "{}");
  expect_invalid(read_safetensors_file(dir.file("huge.safetensors")), {"huge.safetensors: header length"});
}

TEST(Safetensors, RejectsHeaderOverTheConfiguredLimit) {
  auto bytes = encode_safetensors({{"w", at::ones({2})}});
  ASSERT_TRUE(bytes.ok());
  SafetensorsLimits limits;
  limits.max_header_bytes = 16;
  expect_invalid(read_safetensors_buffer(*bytes, limits), {"exceeds the limit of 16 bytes"});
}

TEST(Safetensors, RejectsInvalidJson) {
  expect_invalid(read_safetensors_buffer(make_file("{\"a\": ", "")), {"<buffer>: header is not valid JSON"});
  expect_invalid(read_safetensors_buffer(make_file("{} trailing", "")), {"not valid JSON"});
  expect_invalid(read_safetensors_buffer(make_file("", "")), {"not valid JSON"});
  expect_invalid(read_safetensors_buffer(make_file(std::string("{\"a\xff\":1}"), "")), {"not valid JSON"});
}

TEST(Safetensors, RejectsHeaderThatIsNotAnObject) {
  expect_invalid(read_safetensors_buffer(make_file("[1, 2]", "")), {"header must be a JSON object, got array"});
  expect_invalid(read_safetensors_buffer(make_file("7", "")), {"got number"});
}

TEST(Safetensors, AcceptsEmptyHeaderAndZeroSizedTensors) {
  auto r = read_safetensors_buffer(make_file("{}", ""));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_TRUE(r->tensors.empty());
  r = read_safetensors_buffer(make_file("{\"e\":" + entry("F32", "[0,5]", "[0,0]") + "}", ""));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->find("e").sizes(), at::IntArrayRef({0, 5}));
}

TEST(Safetensors, RejectsMalformedEntriesNamingTensorAndField) {
  struct Case {
    std::string value;  // the JSON value of tensor "t"
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"[1]", "tensor \"t\": entry must be an object, got array"},
      {"{\"shape\":[1],\"data_offsets\":[0,4]}", "tensor \"t\": missing \"dtype\""},
      {"{\"dtype\":\"F32\",\"data_offsets\":[0,4]}", "tensor \"t\": missing \"shape\""},
      {"{\"dtype\":\"F32\",\"shape\":[1]}", "tensor \"t\": missing \"data_offsets\""},
      {entry("F32", "[1]", "[0,4]").replace(9, 5, "32"), "\"dtype\" must be a string, got number"},
      {entry("F32", "\"1\"", "[0,4]"), "\"shape\" must be an array, got string"},
      {entry("F32", "[-1]", "[0,4]"), "shape[0] must be a non-negative integer, got -1"},
      {entry("F32", "[1, 1.5]", "[0,4]"), "shape[1] must be a non-negative integer, got 1.5"},
      {entry("F32", "[true]", "[0,4]"), "shape[0] must be a non-negative integer, got true"},
      {entry("F32", Json(std::vector<int>(65, 1)).dump(), "[0,4]"), "\"shape\" has 65 dims, more than 64"},
      {entry("F32", "[1]", "[0]"), "\"data_offsets\" must be an array [begin, end], got [0]"},
      {entry("F32", "[1]", "[0,4,8]"), "must be an array [begin, end]"},
      {entry("F32", "[1]", "{\"a\":1}"), "must be an array [begin, end]"},
      {entry("F32", "[1]", "[-4,0]"), "\"data_offsets\" must hold non-negative integers, got [-4,0]"},
      {entry("F32", "[1]", "[0,\"4\"]"), "must hold non-negative integers"},
      {entry("F32", "[1]", "[4,0]"), "data_offsets [4, 0] end before begin"},
      {entry("F32", "[1]", "[4,8]"), "data_offsets [4, 8] run past the data section of 4 bytes"},
      {entry("F32", "[1]", "[0,18446744073709551615]"), "must hold non-negative integers"},
      {entry("F32", "[9223372036854775807, 4]", "[0,4]"), "F32 [9223372036854775807, 4] needs more than 2^63 bytes"},
      {entry("I64", "[4294967296, 4294967296]", "[0,4]"), "needs more than 2^63 bytes"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.value);
    expect_invalid(read_safetensors_buffer(make_file("{\"t\":" + c.value + "}", "abcd")), {"<buffer>: ", c.expected});
  }
}

TEST(Safetensors, RejectsUnknownDtype) {
  std::string header = "{\"w\":" + entry("F8_E4M3", "[4]", "[0,4]") + "}";
  expect_invalid(read_safetensors_buffer(make_file(header, "abcd")),
                 {"tensor \"w\": unknown dtype \"F8_E4M3\" "
                  "(supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)"});
}

TEST(Safetensors, RejectsSizeMismatchWithAMessageNamingFileTensorAndSizes) {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  std::string header = "{\"h.0.attn.c_attn.weight\":" + entry("F32", "[3,10]", "[0,100]") + "}";
  write_bytes(path, make_file(header, std::string(100, '\0')));
  auto r = read_safetensors_file(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), path +
                                      ": tensor \"h.0.attn.c_attn.weight\": data_offsets [0, 100] hold 100 bytes "
                                      "but F32 [3, 10] needs 120");
}

TEST(Safetensors, RejectsOverlappingTensors) {
  std::string header = "{\"a\":" + entry("U8", "[4]", "[0,4]") + ",\"b\":" + entry("U8", "[2]", "[2,4]") + "}";
  expect_invalid(read_safetensors_buffer(make_file(header, "abcd")),
                 {"tensor \"b\": data_offsets [2, 4] overlap tensor \"a\" at [0, 4]"});
  header = "{\"a\":" + entry("U8", "[4]", "[0,4]") + ",\"b\":" + entry("U8", "[4]", "[0,4]") + "}";
  expect_invalid(read_safetensors_buffer(make_file(header, "abcd")), {"overlap tensor \"a\""});
}

TEST(Safetensors, RejectsGapsAndTrailingBytesInTheDataSection) {
  std::string header = "{\"a\":" + entry("U8", "[1]", "[0,1]") + ",\"b\":" + entry("U8", "[1]", "[3,4]") + "}";
  expect_invalid(read_safetensors_buffer(make_file(header, "abcd")),
                 {"tensor \"b\": data_offsets [3, 4] leave bytes [1, 3] of the data section unused"});
  header = "{\"a\":" + entry("U8", "[2]", "[0,2]") + "}";
  expect_invalid(read_safetensors_buffer(make_file(header, "abcd")),
                 {"tensors cover 2 bytes but the data section has 4"});
}

TEST(Safetensors, RejectsDuplicateNamesInHeader) {
  std::string header = "{\"a\":" + entry("U8", "[2]", "[0,2]") + ",\"a\":" + entry("U8", "[2]", "[2,4]") + "}";
  expect_invalid(read_safetensors_buffer(make_file(header, "abcd")), {"header names \"a\" twice"});
}

TEST(Safetensors, RejectsEmptyTensorName) {
  std::string header = "{\"\":" + entry("U8", "[4]", "[0,4]") + "}";
  expect_invalid(read_safetensors_buffer(make_file(header, "abcd")), {"tensor name is empty"});
}

TEST(Safetensors, RejectsMetadataThatIsNotAStringMap) {
  std::string w = ",\"w\":" + entry("U8", "[4]", "[0,4]") + "}";
  expect_invalid(read_safetensors_buffer(make_file("{\"__metadata__\":{\"k\":1}" + w, "abcd")),
                 {"\"__metadata__\" value \"k\" must be a string, got number"});
  expect_invalid(read_safetensors_buffer(make_file("{\"__metadata__\":[]" + w, "abcd")),
                 {"\"__metadata__\" must be an object, got array"});
  auto r = read_safetensors_buffer(make_file("{\"__metadata__\":null" + w, "abcd"));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_TRUE(r->metadata.empty());
}

TEST(Safetensors, RejectsMoreTensorsThanTheLimit) {
  auto bytes = encode_safetensors({{"a", at::ones({1})}, {"b", at::ones({1})}, {"c", at::ones({1})}}, {{"k", "v"}});
  ASSERT_TRUE(bytes.ok());
  SafetensorsLimits limits;
  limits.max_tensors = 3;
  EXPECT_TRUE(read_safetensors_buffer(*bytes, limits).ok());  // metadata is not a tensor
  limits.max_tensors = 2;
  expect_invalid(read_safetensors_buffer(*bytes, limits), {"header lists 3 tensors, more than the limit of 2"});
}

TEST(Safetensors, RejectsDataOverTheTotalBytesLimit) {
  auto bytes = encode_safetensors({{"a", at::ones({16})}});
  ASSERT_TRUE(bytes.ok());
  SafetensorsLimits limits;
  limits.max_total_bytes = 63;
  expect_invalid(read_safetensors_buffer(*bytes, limits), {"data section of 64 bytes exceeds the limit of 63 bytes"});
  limits.max_total_bytes = 64;
  EXPECT_TRUE(read_safetensors_buffer(*bytes, limits).ok());
}

TEST(Safetensors, RejectsBoolBytesOtherThanZeroOrOne) {
  std::string header = "{\"m\":" + entry("BOOL", "[4]", "[0,4]") + "}";
  expect_invalid(read_safetensors_buffer(make_file(header, std::string("\x01\x00\x02\x01", 4))),
                 {"tensor \"m\": BOOL byte 2 is 2, not 0 or 1"});
}

TEST(Safetensors, SurvivesRandomCorruptionOfTheHeader) {
  auto bytes = encode_safetensors(every_dtype(), {{"format", "pt"}});
  ASSERT_TRUE(bytes.ok());
  std::mt19937 rng(1234);
  int accepted = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string mutated = *bytes;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      size_t pos = rng() % std::min<size_t>(mutated.size(), 400);  // mostly prefix and header
      mutated[pos] = static_cast<char>(rng() & 0xff);
    }
    auto r = read_safetensors_buffer(mutated);
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().to_string();
      continue;
    }
    ++accepted;
    size_t total = 0;
    for (const auto& nt : r->tensors) total += nt.tensor.numel() * nt.tensor.element_size();
    EXPECT_LE(total, mutated.size());
  }
  EXPECT_LT(accepted, 3000);
}

// ------------------------------------------------------------------ GPT-2 config

const char kHfGpt2Config[] = R"({
  "activation_function": "gelu_new",
  "architectures": ["GPT2LMHeadModel"],
  "attn_pdrop": 0.1, "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256,
  "initializer_range": 0.02, "layer_norm_epsilon": 1e-05, "model_type": "gpt2",
  "n_ctx": 1024, "n_embd": 768, "n_head": 12, "n_inner": null, "n_layer": 12, "n_positions": 1024,
  "resid_pdrop": 0.1, "task_specific_params": {"text-generation": {"do_sample": true, "max_length": 50}},
  "vocab_size": 50257
})";

TEST(Gpt2Config, ParsesTheHuggingFaceGpt2ConfigIgnoringUnknownKeys) {
  auto c = parse_gpt2_config(kHfGpt2Config);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->vocab_size, 50257);
  EXPECT_EQ(c->n_positions, 1024);
  EXPECT_EQ(c->n_embd, 768);
  EXPECT_EQ(c->n_layer, 12);
  EXPECT_EQ(c->n_head, 12);
  EXPECT_EQ(c->n_inner, 0);
  EXPECT_EQ(c->inner_dim(), 3072);
  EXPECT_DOUBLE_EQ(c->layer_norm_epsilon, 1e-5);
  EXPECT_EQ(c->activation_function, "gelu_new");
}

TEST(Gpt2Config, PresetsHaveTheDocumentedSizes) {
  Gpt2Config t = Gpt2Config::tiny();
  EXPECT_EQ(std::vector<int64_t>({t.vocab_size, t.n_positions, t.n_embd, t.n_layer, t.n_head, t.inner_dim()}),
            std::vector<int64_t>({1000, 128, 64, 2, 4, 256}));
  Gpt2Config s = Gpt2Config::small();
  EXPECT_EQ(std::vector<int64_t>({s.vocab_size, s.n_positions, s.n_embd, s.n_layer, s.n_head, s.inner_dim()}),
            std::vector<int64_t>({50257, 1024, 768, 12, 12, 3072}));
}

TEST(Gpt2Config, MissingKeysKeepDefaultsAndExplicitInnerIsKept) {
  auto c = parse_gpt2_config(R"({"n_embd": 32, "n_head": 2, "n_inner": 40, "layer_norm_epsilon": 1})");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->n_embd, 32);
  EXPECT_EQ(c->inner_dim(), 40);
  EXPECT_EQ(c->vocab_size, 50257);
  EXPECT_DOUBLE_EQ(c->layer_norm_epsilon, 1.0);
}

TEST(Gpt2Config, RejectsWrongTypesAndNonPositiveValuesNamingTheKey) {
  for (const char* key : {"vocab_size", "n_positions", "n_embd", "n_layer", "n_head", "n_inner"}) {
    SCOPED_TRACE(key);
    auto with = [&](const std::string& v) { return parse_gpt2_config("{\"" + std::string(key) + "\": " + v + "}"); };
    expect_invalid(with("\"12\""), {"\"" + std::string(key) + "\" must be an integer, got string"});
    expect_invalid(with("12.5"), {"\"" + std::string(key) + "\" must be an integer"});
    expect_invalid(with("true"), {"\"" + std::string(key) + "\" must be an integer, got boolean"});
    expect_invalid(with("0"), {"\"" + std::string(key) + "\" must be in [1, 2^31), got 0"});
    expect_invalid(with("-4"), {"\"" + std::string(key) + "\" must be in [1, 2^31), got -4"});
    expect_invalid(with("18446744073709551615"), {"\"" + std::string(key) + "\" must be in [1, 2^31)"});
  }
  expect_invalid(parse_gpt2_config(R"({"layer_norm_epsilon": "1e-5"})"),
                 {"\"layer_norm_epsilon\" must be a number, got string"});
  expect_invalid(parse_gpt2_config(R"({"layer_norm_epsilon": 0})"), {"\"layer_norm_epsilon\" must be positive"});
  expect_invalid(parse_gpt2_config(R"({"layer_norm_epsilon": -1e-5})"), {"\"layer_norm_epsilon\" must be positive"});
  expect_invalid(parse_gpt2_config(R"({"activation_function": 3})"),
                 {"\"activation_function\" must be a string, got number"});
}

TEST(Gpt2Config, RejectsEmbeddingWidthNotDivisibleByHeads) {
  expect_invalid(parse_gpt2_config(R"({"n_embd": 100, "n_head": 12})"),
                 {"\"n_embd\" 100 is not divisible by \"n_head\" 12"});
}

TEST(Gpt2Config, RejectsActivationsOtherThanGeluNew) {
  expect_invalid(parse_gpt2_config(R"({"activation_function": "relu"})"),
                 {"\"activation_function\" is \"relu\"; only \"gelu_new\""});
}

TEST(Gpt2Config, RejectsOtherModelTypesInvalidJsonAndNonObjects) {
  expect_invalid(parse_gpt2_config(R"({"model_type": "llama"})"), {"\"model_type\" is \"llama\", not \"gpt2\""});
  expect_invalid(parse_gpt2_config("{\"n_embd\": "), {"gpt2 config: not valid JSON"});
  expect_invalid(parse_gpt2_config("[]"), {"gpt2 config: must be a JSON object, got array"});
}

TEST(Gpt2Config, ToJsonWritesHuggingFaceKeysAndParsesBack) {
  Gpt2Config c = Gpt2Config::tiny();
  c.n_inner = 96;
  c.layer_norm_epsilon = 1e-6;
  Json j = Json::parse(gpt2_config_to_json(c));
  EXPECT_EQ(j["model_type"], "gpt2");
  EXPECT_EQ(j["architectures"], Json::array({"GPT2LMHeadModel"}));
  EXPECT_EQ(j["n_inner"], 96);
  EXPECT_EQ(j["activation_function"], "gelu_new");
  auto back = parse_gpt2_config(j.dump());
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->vocab_size, 1000);
  EXPECT_EQ(back->n_positions, 128);
  EXPECT_EQ(back->n_embd, 64);
  EXPECT_EQ(back->n_layer, 2);
  EXPECT_EQ(back->n_head, 4);
  EXPECT_EQ(back->n_inner, 96);
  EXPECT_DOUBLE_EQ(back->layer_norm_epsilon, 1e-6);
  EXPECT_TRUE(Json::parse(gpt2_config_to_json(Gpt2Config::tiny()))["n_inner"].is_null());
}

// ------------------------------------------------------------- random checkpoint

// The official checkpoint's parameters, in order, written out independently of
// the implementation.
std::vector<std::pair<std::string, std::vector<int64_t>>> expected_params(const Gpt2Config& c,
                                                                         const std::string& p) {
  const int64_t d = c.n_embd, inner = c.inner_dim();
  std::vector<std::pair<std::string, std::vector<int64_t>>> out = {{p + "wte.weight", {c.vocab_size, d}},
                                                                   {p + "wpe.weight", {c.n_positions, d}}};
  for (int64_t i = 0; i < c.n_layer; ++i) {
    std::string h = p + "h." + std::to_string(i) + ".";
    out.insert(out.end(), {{h + "ln_1.weight", {d}},
                           {h + "ln_1.bias", {d}},
                           {h + "attn.c_attn.weight", {d, 3 * d}},
                           {h + "attn.c_attn.bias", {3 * d}},
                           {h + "attn.c_proj.weight", {d, d}},
                           {h + "attn.c_proj.bias", {d}},
                           {h + "ln_2.weight", {d}},
                           {h + "ln_2.bias", {d}},
                           {h + "mlp.c_fc.weight", {d, inner}},
                           {h + "mlp.c_fc.bias", {inner}},
                           {h + "mlp.c_proj.weight", {inner, d}},
                           {h + "mlp.c_proj.bias", {d}}});
  }
  out.push_back({p + "ln_f.weight", {d}});
  out.push_back({p + "ln_f.bias", {d}});
  return out;
}

void expect_checkpoint_layout(const std::string& dir, const Gpt2Config& c, const std::string& prefix) {
  auto config = parse_gpt2_config(read_bytes(dir + "/config.json"));
  ASSERT_TRUE(config.ok()) << config.status().to_string();
  EXPECT_EQ(config->n_embd, c.n_embd);
  EXPECT_EQ(config->n_layer, c.n_layer);
  auto file = read_safetensors_file(dir + "/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  auto want = expected_params(c, prefix);
  ASSERT_EQ(file->tensors.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE(want[i].first);
    EXPECT_EQ(file->tensors[i].name, want[i].first);
    EXPECT_EQ(file->tensors[i].tensor.sizes().vec(), want[i].second);
    EXPECT_EQ(file->tensors[i].tensor.scalar_type(), at::kFloat);
  }
  EXPECT_FALSE(file->find(prefix + "lm_head.weight").defined());
  EXPECT_EQ(file->metadata.at("format"), "pt");
}

TEST(Gpt2Checkpoint, WritesOfficialNamesAndShapesWithoutPrefix) {
  TempDir dir;
  Gpt2Config c = Gpt2Config::tiny();
  c.n_inner = 80;  // distinct from 4 * n_embd so the shapes show which is used
  ASSERT_TRUE(write_random_gpt2_checkpoint(dir.file("ckpt"), c, 1).ok());
  expect_checkpoint_layout(dir.file("ckpt"), c, "");
}

TEST(Gpt2Checkpoint, WritesTransformerPrefixIntoNestedNewDirectories) {
  TempDir dir;
  const std::string out = dir.file("a/b/c");
  ASSERT_TRUE(write_random_gpt2_checkpoint(out, Gpt2Config::tiny(), 1, /*with_prefix=*/true).ok());
  expect_checkpoint_layout(out, Gpt2Config::tiny(), "transformer.");
}

TEST(Gpt2Checkpoint, SameSeedGivesSameBytesAndDifferentSeedDifferentWeights) {
  TempDir dir;
  const Gpt2Config c = Gpt2Config::tiny();
  ASSERT_TRUE(write_random_gpt2_checkpoint(dir.file("a"), c, 42).ok());
  ASSERT_TRUE(write_random_gpt2_checkpoint(dir.file("b"), c, 42).ok());
  ASSERT_TRUE(write_random_gpt2_checkpoint(dir.file("c"), c, 43).ok());
  ASSERT_TRUE(write_random_gpt2_checkpoint(dir.file("p"), c, 42, /*with_prefix=*/true).ok());
  const std::string a = read_bytes(dir.file("a/model.safetensors"));
  EXPECT_GT(a.size(), 4u * 100000);
  EXPECT_EQ(a, read_bytes(dir.file("b/model.safetensors")));
  EXPECT_EQ(read_bytes(dir.file("a/config.json")), read_bytes(dir.file("b/config.json")));
  const std::string other = read_bytes(dir.file("c/model.safetensors"));
  ASSERT_EQ(other.size(), a.size());  // same header, different data
  EXPECT_NE(other, a);

  auto fa = read_safetensors_file(dir.file("a/model.safetensors"));
  auto fc = read_safetensors_file(dir.file("c/model.safetensors"));
  auto fp = read_safetensors_file(dir.file("p/model.safetensors"));
  ASSERT_TRUE(fa.ok() && fc.ok() && fp.ok());
  for (size_t i = 0; i < fa->tensors.size(); ++i) {
    SCOPED_TRACE(fa->tensors[i].name);
    EXPECT_FALSE(at::equal(fa->tensors[i].tensor, fc->tensors[i].tensor));
    EXPECT_TRUE(at::equal(fa->tensors[i].tensor, fp->find("transformer." + fa->tensors[i].name)));
  }
}

TEST(Gpt2Checkpoint, InitializesEveryParameterWithHuggingFaceScales) {
  TempDir dir;
  const Gpt2Config c = Gpt2Config::tiny();
  ASSERT_TRUE(write_random_gpt2_checkpoint(dir.file("ckpt"), c, 5).ok());
  auto f = read_safetensors_file(dir.file("ckpt/model.safetensors"));
  ASSERT_TRUE(f.ok());
  auto stats = [&](const std::string& name) {
    at::Tensor t = f->find(name).to(at::kDouble);
    return std::make_pair(t.mean().item<double>(), t.std().item<double>());
  };
  auto [wte_mean, wte_std] = stats("wte.weight");
  EXPECT_NEAR(wte_mean, 0.0, 0.001);
  EXPECT_NEAR(wte_std, 0.02, 0.001);
  auto [ln_mean, ln_std] = stats("h.1.ln_2.weight");
  EXPECT_NEAR(ln_mean, 1.0, 0.01);
  EXPECT_GT(ln_std, 0.01);  // not all ones: a missing layer-norm weight would show
  auto [proj_mean, proj_std] = stats("h.0.mlp.c_proj.weight");
  EXPECT_NEAR(proj_std, 0.02 / std::sqrt(2.0 * c.n_layer), 0.001);
  auto [bias_mean, bias_std] = stats("h.0.attn.c_attn.bias");
  EXPECT_GT(bias_std, 0.01);  // biases are random too, not zeros
}

TEST(Gpt2Checkpoint, RejectsInvalidConfigBeforeWritingAnything) {
  TempDir dir;
  Gpt2Config c = Gpt2Config::tiny();
  c.n_head = 5;
  expect_invalid(write_random_gpt2_checkpoint(dir.file("bad"), c, 1), {"not divisible by \"n_head\" 5"});
  EXPECT_FALSE(fs::exists(dir.file("bad")));
}

}  // namespace
}  // namespace loom::runtime
