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
  return 0;
}
