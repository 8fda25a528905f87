// Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/TARGET/):
// valid inputs of each kind, so the fuzzers start from deep paths. Run by
// `scripts/fuzz --seeds`; the outputs are committed.
#include <filesystem>
#include <fstream>
#include <iostream>

#include "graph/builder.h"
#include "graph/codec.h"
#include "transport/request.h"
#include "transport/stream_frames.h"

namespace {

void write(const std::filesystem::path& dir, const std::string& name, const std::string& bytes) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_seeds CORPUS_DIR\n";
    return 2;
  }
  const std::filesystem::path root = argv[1];
  loom::Builder b;
  loom::HookPoint h = b.module("transformer.h.0").output(0);
  h.set(h * 2.0);
  b.log("mean", h.mean({-1}));
  loom::Value s = b.stream("edit", b.module("transformer.h.1").output(0));
  s.save("edited");
  b.output().index({loom::Slice{}, -1}).softmax(-1).save("probs");
  loom::graph::TensorData ids{loom::graph::DType::kInt64, {1, 4}, std::string(32, '\0')};
  b.constant(ids).save("c");

  loom::transport::JobRequest req;
  req.model_key = "gpt2-tiny";
  req.graph = b.graph();
  req.invokes = {{ids}};
  req.callback_url = "http://example.com/hook";
  req.request_id = "seed-1";
  write(root / "request_fuzz", "full", loom::transport::encode_request(req));
  req.callback_url.clear();
  req.request_id.clear();
  write(root / "request_fuzz", "plain", loom::transport::encode_request(req));
  write(root / "graph_fuzz", "full", loom::graph::encode_graph(b.graph()));

  loom::transport::StreamReply reply;
  reply.stream_id = 1;
  reply.tensors = std::string("\x08\0\0\0\0\0\0\0{}      ", 16);
  write(root / "stream_frame_fuzz", "binary_reply", "\x01" + loom::transport::encode_stream_reply(reply));
  write(root / "stream_frame_fuzz", "text_reply", std::string(1, '\0') + R"({"type":"STREAM_REPLY","stream_id":1,"tensors":"CAAAAAAAAAB7fSAgICAgIA=="})");
  write(root / "stream_frame_fuzz", "error_body", std::string(1, '\0') + R"({"error":{"code":"NOT_FOUND","message":"x"}})");
  loom::transport::StreamRequest request;
  request.job_id = "ab12";
  request.stream_id = 2;
  request.callback = "edit";
  request.tensors = reply.tensors;
  write(root / "stream_frame_fuzz", "binary_request", "\x01" + loom::transport::encode_stream_request(request));

  write(root / "url_fuzz", "presigned", "/v1/blobs/results/ab12\nexpires=1700000600&sig=00ff\nbytes=0-99");
  write(root / "url_fuzz", "open_range", "http://127.0.0.1:8080\nexpires=1\nbytes=100-");
  write(root / "url_fuzz", "ipv6", "[::1]:9\n\n1");

  // safetensors: two tensors tiling 24 data bytes, with metadata.
  auto safetensors = [](const std::string& header, size_t data_bytes) {
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
    return out + header + std::string(data_bytes, '\x01');
  };
  write(root / "safetensors_fuzz", "two_tensors",
        safetensors(R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
                    R"("b":{"dtype":"BOOL","shape":[8],"data_offsets":[16,24]},"__metadata__":{"k":"v"}})",
                    24));
  write(root / "safetensors_fuzz", "empty", safetensors("{}", 0));

  write(root / "http_router_fuzz", "submit",
        "POST /v1/jobs?wait_ms=250&inline=raw HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
        "X-Loom-Protocol: 1\r\nContent-Length: 4\r\n\r\nabcd");
  write(root / "http_router_fuzz", "get_job", "GET /v1/jobs/0123abcd HTTP/1.1\r\nHost: x\r\n\r\n");
  write(root / "http_router_fuzz", "blob",
        "HEAD /v1/blobs/results/ab12?expires=1&sig=00 HTTP/1.1\r\nRange: bytes=0-9\r\n\r\n");
  write(root / "http_router_fuzz", "model", "DELETE /v1/models/gpt2-tiny HTTP/1.0\r\n\r\n");
  return 0;
}
