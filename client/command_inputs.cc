#include "client/command_inputs.h"

#include <ATen/ATen.h>

#include <iostream>

#include "client/cli_common.h"
#include "runtime/safetensors.h"

namespace loom::client {

int load_command_inputs(const std::string& command, const std::string& inputs_file,
                        const std::vector<std::string>& prompts, const std::string& tokenizer_dir,
                        CommandInputs* out) {
  auto fail = [&](int code, const std::string& why) {
    std::cerr << "loom " << command << ": " << why << "\n";
    return code;
  };
  if (inputs_file.empty() == prompts.empty()) {
    return fail(kExitUsage, "give the inputs with either --inputs FILE or --prompt TEXT (repeatable), not both");
  }
  if (!prompts.empty()) {
    if (tokenizer_dir.empty()) return fail(kExitUsage, "--prompt needs a tokenizer: give --tokenizer DIR");
    auto tok = text::Tokenizer::load_dir(tokenizer_dir);
    if (!tok.ok()) return fail(kExitFile, tok.status().message());
    for (const std::string& p : prompts) {
      auto ids = tok->encode(p);
      if (!ids.ok()) return fail(kExitUsage, "--prompt: " + ids.status().message());
      if (ids->empty()) return fail(kExitUsage, "--prompt \"" + p + "\" encodes to no tokens");
      if (auto bos = tok->bos_id()) ids->insert(ids->begin(), *bos);  // as the tokenizer's template adds it
      out->invokes.push_back({at::tensor(*ids, at::kLong).unsqueeze(0)});
    }
    out->tokenizer = std::move(tok).value();
    return kExitOk;
  }
  auto in = runtime::read_safetensors_file(inputs_file);
  if (!in.ok()) return fail(kExitFile, in.status().message());
  std::vector<at::Tensor> inputs;
  for (size_t i = 0; i < in->tensors.size(); ++i) {
    at::Tensor t = in->find(std::to_string(i));
    if (!t.defined()) {
      return fail(kExitFile, inputs_file + ": inputs must be named \"0\", \"1\", ... by position; \"" +
                                 std::to_string(i) + "\" is missing");
    }
    inputs.push_back(t);
  }
  if (inputs.empty()) return fail(kExitFile, inputs_file + " holds no tensors");
  out->invokes.push_back(std::move(inputs));
  return kExitOk;
}

}  // namespace loom::client
