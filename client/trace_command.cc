#include "client/trace_command.h"

#include <algorithm>
#include <iostream>

#include "client/command_inputs.h"
#include "client/spec.h"
#include "client/trace.h"
#include "runtime/model.h"
#include "runtime/safetensors.h"
#include "runtime/trace.h"

namespace loom::client {

namespace {

struct Points {
  std::vector<graph::Point> saves, grads;
};

// Adds one save per SPEC, named exactly as the SPEC was given, one
// "grad:SPEC" per --grad SPEC with the backward pass from the loss, and the
// --cache saves. `modules`: the model's module paths (for --cache all).
void add_interventions(Builder& tr, const TraceCommand& cmd, const Points& points,
                       const std::vector<std::string>& modules) {
  for (size_t i = 0; i < points.saves.size(); ++i) {
    hook_point(tr, points.saves[i]).save(save_name(cmd.saves[i], points.saves[i]));
  }
  if (!cmd.cache.empty()) {
    const bool all = std::find(cmd.cache.begin(), cmd.cache.end(), "all") != cmd.cache.end();
    tr.cache(all ? modules : cmd.cache, cmd.cache_inputs);
  }
  if (points.grads.empty()) return;
  for (size_t i = 0; i < points.grads.size(); ++i) hook_point(tr, points.grads[i]).grad().save("grad:" + cmd.grads[i]);
  tr.backward(next_token_loss(tr.output(), tr.input(0)));  // --loss lm, the one loss there is
}

int write_output(const TraceCommand& cmd, const runtime::TraceResult& result,
                 const std::map<std::string, std::string>& metadata) {
  Status written = runtime::write_safetensors_file(cmd.output, result.saved, metadata);
  if (!written.ok()) {
    std::cerr << "loom trace: " << written.message() << "\n";
    return kExitFile;
  }
  for (const auto& nt : result.saved) {
    std::cout << nt.name << " " << c10::toString(nt.tensor.scalar_type()) << " " << nt.tensor.sizes() << "\n";
  }
  return kExitOk;
}

int run_remote(const TraceCommand& cmd, const Points& points,
               const std::vector<std::vector<at::Tensor>>& invokes) {
  return run_guarded("trace", [&]() -> int {
    Client client(client_options(cmd.flags));
    RemoteModel model = client.model(cmd.model);
    Trace tr = model.trace();
    for (const auto& invoke : invokes) tr.invoke(invoke);
    add_interventions(tr, cmd, points, model.module_paths());
    RunOptions ro;
    ro.remote = true;
    ro.no_cache = cmd.no_cache;
    if (cmd.no_wait) {
      std::string id = tr.submit(ro);
      std::cerr << "loom trace: submitted; follow it with `loom wait " << id << "`, fetch it with `loom result " << id
                << " -o FILE`\n";
      std::cout << id << "\n";  // the last line: scripts take the job ID from here
      return kExitOk;
    }
    std::string job_id;
    ro.timeout = std::chrono::milliseconds(static_cast<int64_t>(cmd.timeout_s * 1000));
    ro.on_submitted = [&job_id](const std::string& id) { job_id = id; };
    runtime::TraceResult result = tr.run(ro);
    return write_output(cmd, result, {{"model", cmd.model}, {"job_id", job_id}, {"host", client.endpoint().to_string()}});
  });
}

}  // namespace

int run_trace_command(const TraceCommand& cmd) {
  Points points;
  for (const auto* specs : {&cmd.saves, &cmd.grads}) {
    for (const auto& spec : *specs) {
      auto p = parse_spec(spec);
      if (!p.ok()) {
        std::cerr << "loom trace: " << p.status().message() << "\n";
        return kExitUsage;
      }
      (specs == &cmd.saves ? points.saves : points.grads).push_back(*p);
    }
  }
  if (points.saves.empty() && points.grads.empty() && cmd.cache.empty()) {
    std::cerr << "loom trace: nothing to save: give at least one --save SPEC, --grad SPEC or --cache PATH\n";
    return kExitUsage;
  }
  if (!points.grads.empty() && cmd.loss.empty()) {
    std::cerr << "loom trace: --grad needs a loss to differentiate: add --loss lm\n";
    return kExitUsage;
  }
  if (points.grads.empty() && !cmd.loss.empty()) {
    std::cerr << "loom trace: --loss without --grad computes nothing: add --grad SPEC\n";
    return kExitUsage;
  }
  if (cmd.no_wait && !cmd.remote) {
    std::cerr << "loom trace: --no-wait needs --remote\n";
    return kExitUsage;
  }
  if (cmd.output.empty() && !cmd.no_wait) {
    std::cerr << "loom trace: give the output file with -o FILE\n";
    return kExitUsage;
  }
  CommandInputs in;
  const std::string tokenizer = !cmd.tokenizer.empty() ? cmd.tokenizer : (cmd.remote ? "" : cmd.model);
  if (int rc = load_command_inputs("trace", cmd.inputs, cmd.prompts, tokenizer, &in); rc != kExitOk) return rc;
  if (cmd.remote) return run_remote(cmd, points, in.invokes);

  runtime::ModelOptions options;
  options.device = cmd.device;
  auto model = runtime::load_model(cmd.model, options);
  if (!model.ok()) {
    std::cerr << "loom trace: " << model.status().message() << "\n";
    return kExitFile;
  }
  runtime::LocalTrace tr(**model);
  for (const auto& invoke : in.invokes) tr.invoke(invoke);
  add_interventions(tr, cmd, points, (*model)->module_paths());
  auto result = tr.run();
  if (!result.ok()) {
    std::cerr << "loom trace: " << result.status().message() << "\n";
    return kExitRunFailed;
  }
  return write_output(cmd, *result, {{"model", cmd.model}});
}

}  // namespace loom::client
