#include "client/generate_command.h"

#include <ATen/ATen.h>

#include <cmath>
#include <iostream>

#include "client/command_inputs.h"
#include "client/spec.h"
#include "client/trace.h"
#include "runtime/model.h"
#include "runtime/safetensors.h"
#include "runtime/tensor_data.h"

namespace loom::client {
namespace {

struct Steer {
  graph::Point point;
  at::Tensor vector;  // already scaled
};

// SPEC=FILE[:SCALE]; a SPEC without '@' steers every step.
Result<Steer> parse_steer(const std::string& arg) {
  const size_t eq = arg.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == arg.size()) {
    return invalid_argument("bad --steer \"" + arg + "\": expected SPEC=FILE[:SCALE]");
  }
  std::string spec = arg.substr(0, eq), file = arg.substr(eq + 1);
  double scale = 1.0;
  const size_t colon = file.rfind(':');
  if (colon != std::string::npos) {
    try {
      size_t used = 0;
      scale = std::stod(file.substr(colon + 1), &used);
      if (used != file.size() - colon - 1 || !std::isfinite(scale)) throw std::invalid_argument("x");
    } catch (const std::exception&) {
      return invalid_argument("bad --steer \"" + arg + "\": the scale after ':' must be a number");
    }
    file = file.substr(0, colon);
  }
  LOOM_ASSIGN_OR_RETURN(graph::Point p, parse_spec(spec));
  if (spec.find('@') == std::string::npos) p.call_end = graph::kEveryCall;
  LOOM_ASSIGN_OR_RETURN(runtime::SafetensorsFile f, runtime::read_safetensors_file(file));
  if (f.tensors.size() != 1) {
    return invalid_argument(file + ": a steering vector file holds one tensor, this one has " +
                            std::to_string(f.tensors.size()));
  }
  at::Tensor v = f.tensors[0].tensor;
  if (!at::isFloatingType(v.scalar_type())) return invalid_argument(file + ": the steering vector must be floating point");
  return Steer{p, v.to(at::kFloat) * scale};
}

int write_result(const GenerateCommand& cmd, const runtime::TraceResult& result, const CommandInputs& in,
                 const std::map<std::string, std::string>& metadata) {
  Status written = runtime::write_safetensors_file(cmd.output, result.saved, metadata);
  if (!written.ok()) {
    std::cerr << "loom generate: " << written.message() << "\n";
    return kExitFile;
  }
  for (const auto& nt : result.saved) {
    std::cout << nt.name << " " << c10::toString(nt.tensor.scalar_type()) << " " << nt.tensor.sizes() << "\n";
  }
  if (in.tokenizer) {
    const at::Tensor tokens = result.at("tokens");
    int64_t longest = 0;  // prompts are left-padded to the longest
    for (const auto& inv : in.invokes) longest = std::max(longest, inv[0].size(1));
    for (int64_t row = 0; row < tokens.size(0); ++row) {
      at::Tensor gen = tokens[row].slice(0, longest).contiguous();
      std::vector<int64_t> ids(gen.data_ptr<int64_t>(), gen.data_ptr<int64_t>() + gen.numel());
      auto text = in.tokenizer->decode(ids);
      std::cout << "[" << row << "] " << (text.ok() ? *text : "(cannot decode: " + text.status().message() + ")")
                << "\n";
    }
  }
  return kExitOk;
}

}  // namespace

int run_generate_command(const GenerateCommand& cmd) {
  auto usage = [](const std::string& why) {
    std::cerr << "loom generate: " << why << "\n";
    return kExitUsage;
  };
  std::vector<graph::Point> points;
  for (const auto& spec : cmd.saves) {
    auto p = parse_spec(spec);
    if (!p.ok()) return usage(p.status().message());
    points.push_back(*p);
  }
  std::vector<Steer> steers;
  for (const auto& s : cmd.steers) {
    auto st = parse_steer(s);
    if (!st.ok()) {
      std::cerr << "loom generate: " << st.status().message() << "\n";
      return st.status().code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFile;
    }
    steers.push_back(std::move(st).value());
  }
  if (cmd.no_wait && !cmd.remote) return usage("--no-wait needs --remote");
  if (cmd.output.empty() && !cmd.no_wait) return usage("give the output file with -o FILE");
  graph::GenerateOptions gen;
  gen.max_new_tokens = cmd.max_new_tokens;
  gen.temperature = cmd.temperature;
  gen.top_k = cmd.top_k;
  gen.top_p = cmd.top_p;
  gen.seed = cmd.seed;
  if (!cmd.stop_ids.empty()) gen.stop_token_ids = cmd.stop_ids;
  if (Status s = gen.check(); !s.ok()) return usage(s.message());

  CommandInputs in;
  const std::string tokenizer = !cmd.tokenizer.empty() ? cmd.tokenizer : (cmd.remote ? "" : cmd.model);
  if (int rc = load_command_inputs("generate", cmd.inputs, cmd.prompts, tokenizer, &in); rc != kExitOk) return rc;

  std::unique_ptr<runtime::Model> local;
  std::optional<Client> client;
  std::optional<Trace> trace;
  return run_guarded("generate", [&]() -> int {
    if (cmd.remote) {
      client.emplace(client_options(cmd.flags));
      trace.emplace(client->model(cmd.model));
    } else {
      runtime::ModelOptions options;
      options.device = cmd.device;
      options.compute_dtype = cmd.dtype;
      auto m = runtime::load_model(cmd.model, options);
      if (!m.ok()) {
        std::cerr << "loom generate: " << m.status().message() << "\n";
        return kExitFile;
      }
      local = std::move(m).value();
      trace.emplace(*local);
    }
    Trace& tr = *trace;
    for (const auto& invoke : in.invokes) tr.invoke(invoke);
    for (const Steer& s : steers) {
      HookPoint hp = hook_point(tr, s.point);
      auto td = runtime::to_tensor_data(s.vector);
      if (!td.ok()) throw ValidationError(td.status().message());
      hp.set(hp + tr.constant(std::move(td).value()));
    }
    for (size_t i = 0; i < points.size(); ++i) hook_point(tr, points[i]).save(save_name(cmd.saves[i], points[i]));
    RunOptions ro;
    ro.remote = cmd.remote;
    ro.generation = gen;
    ro.verbose = cmd.flags.verbose;
    ro.quiet = cmd.flags.quiet;
    if (cmd.no_wait) {
      std::string id = tr.submit(ro);
      std::cerr << "loom generate: submitted; follow it with `loom wait " << id << "`, fetch it with `loom result "
                << id << " -o FILE`\n";
      std::cout << id << "\n";
      return kExitOk;
    }
    std::string job_id;
    ro.on_submitted = [&job_id](const std::string& id) { job_id = id; };
    runtime::TraceResult result = tr.run(ro);
    std::map<std::string, std::string> meta = {{"model", cmd.model}};
    if (!job_id.empty()) meta["job_id"] = job_id;
    return write_result(cmd, result, in, meta);
  });
}

}  // namespace loom::client
