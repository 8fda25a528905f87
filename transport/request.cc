#include "transport/request.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include <cstdint>
#include <cstring>

#include "graph/codec.h"
#include "graph/sha256.h"
#include "transport/internal/printable.h"
#include "transport/protocol.capnp.h"
#include "transport/zstd_codec.h"

namespace loom::transport {
namespace {

schema::DType dtype_to_wire(graph::DType d) {
  return static_cast<schema::DType>(static_cast<uint16_t>(d));
}

Result<graph::DType> dtype_from_wire(schema::DType d) {
  auto v = static_cast<uint16_t>(d);
  if (v > static_cast<uint16_t>(graph::DType::kBool)) {
    return invalid_argument("unknown dtype enumerant " + std::to_string(v) + " (sent by a newer client?)");
  }
  return static_cast<graph::DType>(v);
}

void tensor_to_wire(const graph::TensorData& t, schema::TensorData::Builder b) {
  b.setDtype(dtype_to_wire(t.dtype));
  auto shape = b.initShape(t.shape.size());
  for (size_t i = 0; i < t.shape.size(); ++i) shape.set(i, t.shape[i]);
  b.setBytes(kj::arrayPtr(reinterpret_cast<const kj::byte*>(t.bytes.data()), t.bytes.size()));
}

std::string shape_string(const std::vector<int64_t>& shape) {
  constexpr size_t kShown = 8;  // a hostile shape may have millions of dims
  std::string s = "[";
  for (size_t i = 0; i < shape.size() && i < kShown; ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() > kShown) s += ", ... (" + std::to_string(shape.size()) + " dims)";
  return s + "]";
}

// The byte size dtype and shape imply; overflow and negative dims are errors.
Result<uint64_t> expected_bytes(const graph::TensorData& t) {
  uint64_t n = graph::dtype_size(t.dtype);
  for (int64_t d : t.shape) {
    if (d < 0) return invalid_argument("shape " + shape_string(t.shape) + " has a negative dimension");
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) {
      return invalid_argument("shape " + shape_string(t.shape) + " of " + graph::dtype_name(t.dtype) +
                              " overflows 64-bit byte size");
    }
  }
  return n;
}

Result<graph::TensorData> tensor_from_wire(schema::TensorData::Reader r) {
  graph::TensorData t;
  LOOM_ASSIGN_OR_RETURN(t.dtype, dtype_from_wire(r.getDtype()));
  auto shape = r.getShape();
  t.shape.reserve(shape.size());
  for (int64_t d : shape) t.shape.push_back(d);
  LOOM_ASSIGN_OR_RETURN(uint64_t expected, expected_bytes(t));
  auto bytes = r.getBytes();
  if (bytes.size() != expected) {
    return invalid_argument(std::string(graph::dtype_name(t.dtype)) + " tensor of shape " + shape_string(t.shape) +
                            " needs " + std::to_string(expected) + " bytes but has " + std::to_string(bytes.size()));
  }
  t.bytes.assign(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
  return t;
}

Status malformed(std::string detail) { return invalid_argument("malformed request: " + std::move(detail)); }

std::string text(capnp::Text::Reader t) { return std::string(t.begin(), t.size()); }

// Reads the root; any kj exception (bad pointers, traversal limit, text not
// NUL-terminated) is caught by the caller. Reads each pointer once, so that an
// honest message stays within a traversal limit equal to its size.
Result<JobRequest> request_from_wire(wire::JobRequest::Reader r, const RequestLimits& limits) {
  JobRequest req;
  req.protocol_version = r.getProtocolVersion();
  if (req.protocol_version != kProtocolVersion) {
    return failed_precondition("request protocol version " + std::to_string(req.protocol_version) +
                               " is not supported: this server speaks version " +
                               std::to_string(kProtocolVersion) + " (upgrade the older side)");
  }
  auto too_long = [](const char* what, size_t n, uint32_t limit) {
    return resource_exhausted(std::string(what) + " is " + std::to_string(n) + " bytes, over the limit of " +
                              std::to_string(limit));
  };
  // Each pointer is read once: reads count against the traversal limit.
  const auto model_key = r.getModelKey();
  if (model_key.size() > limits.max_key_bytes) return too_long("the model key", model_key.size(), limits.max_key_bytes);
  req.model_key = text(model_key);
  if (req.model_key.empty()) return invalid_argument("request has an empty model key");

  auto invokes = r.getInvokes();
  if (invokes.size() == 0) return invalid_argument("request has no invokes; it needs at least 1");
  if (invokes.size() > limits.max_invokes) {
    return resource_exhausted("request has " + std::to_string(invokes.size()) +
                              " invokes, over the limit of " + std::to_string(limits.max_invokes) +
                              " (max_invokes)");
  }

  auto graph = graph::from_capnp(r.getGraph(), limits.graph);
  if (!graph.ok()) {
    // kj's reasons (bad pointers, limits) read as a malformed request; the
    // rest (an unsupported graph version, an unknown node kind) keep theirs.
    constexpr std::string_view kMalformed = "malformed graph: ";
    const std::string& m = graph.status().message();
    if (m.compare(0, kMalformed.size(), kMalformed) == 0) {
      return malformed("graph: " + internal::printable(m.substr(kMalformed.size()), 500));
    }
    return graph.status().with_context("request graph");
  }
  req.graph = std::move(graph).value();
  if (req.graph.invokes != invokes.size()) {
    return invalid_argument("the graph has " + std::to_string(req.graph.invokes) + " invoke(s) but the request carries " +
                            std::to_string(invokes.size()));
  }

  uint64_t input_bytes = 0;
  req.invokes.reserve(invokes.size());
  for (uint32_t i = 0; i < invokes.size(); ++i) {
    auto inputs = invokes[i].getInputs();
    std::vector<graph::TensorData> tensors;
    tensors.reserve(inputs.size());
    for (uint32_t j = 0; j < inputs.size(); ++j) {
      auto t = tensor_from_wire(inputs[j]);
      if (!t.ok()) {
        return t.status().with_context("invoke " + std::to_string(i) + " input " + std::to_string(j));
      }
      input_bytes += t->bytes.size();
      if (input_bytes > limits.max_input_bytes) {
        return resource_exhausted("input tensors exceed the limit of " + std::to_string(limits.max_input_bytes) +
                                  " bytes (max_input_bytes) at invoke " + std::to_string(i) + " input " +
                                  std::to_string(j));
      }
      tensors.push_back(std::move(t).value());
    }
    req.invokes.push_back(std::move(tensors));
  }

  auto options = r.getOptions();
  const auto callback_url = options.getCallbackUrl();
  if (callback_url.size() > limits.max_callback_url_bytes) {
    return too_long("the callback URL", callback_url.size(), limits.max_callback_url_bytes);
  }
  const auto request_id = options.getRequestId();
  if (request_id.size() > limits.max_key_bytes) return too_long("the request id", request_id.size(), limits.max_key_bytes);
  req.callback_url = text(callback_url);
  req.request_id = text(request_id);
  req.no_cache = options.getNoCache();
  req.stream_timeout_ms = options.getStreamTimeoutMs();
  req.wall_time_ms = options.getWallTimeMs();
  if (r.hasGeneration()) {
    auto g = r.getGeneration();
    graph::GenerateOptions gen;
    gen.max_new_tokens = g.getMaxNewTokens();
    gen.temperature = g.getTemperature();
    gen.top_k = g.getTopK();
    gen.top_p = g.getTopP();
    gen.seed = g.getSeed();
    gen.pad_token_id = g.getPadTokenId();
    if (g.getHasStopTokens()) {
      auto ids = g.getStopTokenIds();
      if (ids.size() > graph::GenerateOptions::kMaxStopTokens) {
        return resource_exhausted("generation has " + std::to_string(ids.size()) + " stop token ids, over the limit of " +
                                  std::to_string(graph::GenerateOptions::kMaxStopTokens));
      }
      std::vector<int64_t> stops;
      stops.reserve(ids.size());
      for (int64_t id : ids) stops.push_back(id);
      gen.stop_token_ids = std::move(stops);
    }
    LOOM_RETURN_IF_ERROR(gen.check().with_context("generation"));
    req.generation = std::move(gen);
  }
  return req;
}

// Length-prefixed framing for request_identity().
void frame_u64(Sha256& h, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  h.update(std::string_view(b, 8));
}

void frame_bytes(Sha256& h, std::string_view s) {
  frame_u64(h, s.size());
  h.update(s);
}

}  // namespace

std::string encode_request(const JobRequest& request) {
  capnp::MallocMessageBuilder message;
  auto r = message.initRoot<wire::JobRequest>();
  r.setProtocolVersion(request.protocol_version);
  r.setModelKey(request.model_key);
  graph::to_capnp(request.graph, r.initGraph());
  auto invokes = r.initInvokes(request.invokes.size());
  for (size_t i = 0; i < request.invokes.size(); ++i) {
    const auto& in = request.invokes[i];
    auto inputs = invokes[i].initInputs(in.size());
    for (size_t j = 0; j < in.size(); ++j) tensor_to_wire(in[j], inputs[j]);
  }
  auto options = r.initOptions();
  options.setCallbackUrl(request.callback_url);
  options.setRequestId(request.request_id);
  options.setNoCache(request.no_cache);
  options.setStreamTimeoutMs(request.stream_timeout_ms);
  options.setWallTimeMs(request.wall_time_ms);
  if (request.generation) {
    const graph::GenerateOptions& gen = *request.generation;
    auto g = r.initGeneration();
    g.setMaxNewTokens(static_cast<uint32_t>(gen.max_new_tokens));
    g.setTemperature(gen.temperature);
    g.setTopK(static_cast<uint32_t>(gen.top_k));
    g.setTopP(gen.top_p);
    g.setSeed(gen.seed);
    g.setPadTokenId(gen.pad_token_id);
    g.setHasStopTokens(gen.stop_token_ids.has_value());
    if (gen.stop_token_ids) {
      auto ids = g.initStopTokenIds(gen.stop_token_ids->size());
      for (size_t i = 0; i < gen.stop_token_ids->size(); ++i) ids.set(i, (*gen.stop_token_ids)[i]);
    }
  }
  auto words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  return zstd_compress(std::string_view(reinterpret_cast<const char*>(bytes.begin()), bytes.size()));
}

Result<JobRequest> decode_request(std::string_view body, const RequestLimits& limits) {
  if (body.size() > limits.max_body_bytes) {
    return resource_exhausted("request body of " + std::to_string(body.size()) + " bytes exceeds the limit of " +
                              std::to_string(limits.max_body_bytes) + " bytes (max_body_bytes)");
  }
  auto decompressed = zstd_decompress(body, limits.max_decompressed_bytes);
  if (!decompressed.ok()) {
    const Status& s = decompressed.status();
    if (s.code() == StatusCode::kResourceExhausted) {
      return resource_exhausted("request body decompresses past the limit of " +
                                std::to_string(limits.max_decompressed_bytes) + " bytes (max_decompressed_bytes)");
    }
    return invalid_argument("bad zstd request body: " + s.message());
  }
  const std::string& flat = decompressed.value();
  if (flat.empty()) return malformed("empty message");
  if (flat.size() % sizeof(capnp::word) != 0) {
    return malformed(std::to_string(flat.size()) + " bytes is not a whole number of 8-byte words (truncated?)");
  }

  // The reader needs word alignment; heap strings have it, copy otherwise.
  kj::Array<capnp::word> copy;
  kj::ArrayPtr<const capnp::word> words;
  if (reinterpret_cast<uintptr_t>(flat.data()) % alignof(capnp::word) == 0) {
    words = kj::arrayPtr(reinterpret_cast<const capnp::word*>(flat.data()), flat.size() / sizeof(capnp::word));
  } else {
    copy = kj::heapArray<capnp::word>(flat.size() / sizeof(capnp::word));
    std::memcpy(copy.begin(), flat.data(), flat.size());
    words = copy.asPtr();
  }

  Result<JobRequest> result = malformed("no root");
  kj::Maybe<kj::Exception> err = kj::runCatchingExceptions([&]() {
    capnp::ReaderOptions options;
    options.traversalLimitInWords = limits.traversal_limit_words;
    options.nestingLimit = limits.nesting_limit;
    capnp::FlatArrayMessageReader reader(words, options);
    if (reader.getEnd() != words.end()) {
      result = malformed(std::to_string((words.end() - reader.getEnd()) * sizeof(capnp::word)) +
                         " trailing bytes after the message");
      return;
    }
    result = request_from_wire(reader.getRoot<wire::JobRequest>(), limits);
  });
  // kj quotes message bytes (e.g. a text missing its NUL) in its description.
  KJ_IF_MAYBE(e, err) { return malformed(internal::printable(e->getDescription().cStr(), 500)); }
  return result;
}

std::string request_identity(const JobRequest& request) {
  Sha256 h;
  frame_bytes(h, "loom.request_identity.v1");
  frame_bytes(h, graph::graph_checksum(request.graph));
  frame_bytes(h, request.model_key);
  frame_u64(h, request.invokes.size());
  for (const auto& inputs : request.invokes) {
    frame_u64(h, inputs.size());
    for (const auto& t : inputs) {
      frame_bytes(h, graph::dtype_name(t.dtype));
      frame_u64(h, t.shape.size());
      for (int64_t d : t.shape) frame_u64(h, static_cast<uint64_t>(d));
      frame_bytes(h, t.bytes);
    }
  }
  if (request.generation) {  // absent adds nothing: forward-pass identities are unchanged
    const graph::GenerateOptions& g = *request.generation;
    frame_bytes(h, "generation");
    frame_u64(h, static_cast<uint64_t>(g.max_new_tokens));
    uint64_t bits = 0;
    std::memcpy(&bits, &g.temperature, sizeof bits);
    frame_u64(h, bits);
    std::memcpy(&bits, &g.top_p, sizeof bits);
    frame_u64(h, bits);
    frame_u64(h, static_cast<uint64_t>(g.top_k));
    frame_u64(h, g.seed);
    frame_u64(h, static_cast<uint64_t>(g.pad_token_id));
    frame_u64(h, g.stop_token_ids ? g.stop_token_ids->size() + 1 : 0);
    if (g.stop_token_ids) {
      for (int64_t id : *g.stop_token_ids) frame_u64(h, static_cast<uint64_t>(id));
    }
  }
  return h.hex_digest();
}

}  // namespace loom::transport
