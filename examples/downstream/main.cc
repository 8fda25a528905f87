// A user's program against the installed loom: generates a tiny GPT-2
// checkpoint, traces it with loom::client::Trace (the same API that runs on
// a server), and checks the traced logits equal a plain forward pass. It
// also builds the remote request the trace would send, through client_core.
#include <ATen/ATen.h>

#include <filesystem>
#include <iostream>

#include "client/trace.h"
#include "runtime/gpt2_config.h"
#include "runtime/model.h"
#include "transport/request.h"

int main() {
  const std::string dir = (std::filesystem::temp_directory_path() / "loom-downstream-gpt2").string();
  loom::Status written = loom::runtime::write_random_gpt2_checkpoint(dir, loom::runtime::Gpt2Config::tiny(), 5);
  if (!written.ok()) {
    std::cerr << "downstream: " << written.message() << "\n";
    return 1;
  }
  auto model = loom::runtime::load_model(dir);
  if (!model.ok()) {
    std::cerr << "downstream: " << model.status().message() << "\n";
    return 1;
  }
  at::Tensor ids = at::arange(8, at::kLong).view({1, 8});
  loom::client::Trace plain(**model, {ids});
  plain.output().save("logits");
  loom::client::Trace tr(**model, {ids});
  tr.module("transformer.h.0").output(0).save("h0");
  tr.output().save("logits");
  try {
    auto base = plain.run();
    auto traced = tr.run();
    const bool same = at::equal(base.at("logits"), traced.at("logits"));
    std::cout << "downstream: h0 " << traced.at("h0").sizes() << ", logits equal to the plain run: "
              << (same ? "yes" : "no") << "\n";
    // What a remote run would send, encoded by loom::transport.
    loom::transport::JobRequest request;
    request.model_key = "gpt2-tiny";
    request.graph = tr.graph();
    std::cout << "downstream: request of " << loom::transport::encode_request(request).size() << " bytes\n";
    return same ? 0 : 1;
  } catch (const loom::client::LoomError& e) {
    std::cerr << "downstream: " << e.what() << "\n";
    return 1;
  }
}
