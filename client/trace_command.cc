#include "client/trace_command.h"

#include <iostream>

#include "client/spec.h"
#include "runtime/model.h"
#include "runtime/safetensors.h"
#include "runtime/trace.h"

namespace loom::client {

int run_trace_command(const TraceCommand& cmd) {
  std::vector<graph::Point> points;
  for (const auto& spec : cmd.saves) {
    auto p = parse_spec(spec);
    if (!p.ok()) {
      std::cerr << "loom trace: " << p.status().message() << "\n";
      return 2;
    }
    points.push_back(*p);
  }
  if (points.empty()) {
    std::cerr << "loom trace: nothing to save: give at least one --save SPEC\n";
    return 2;
  }
  auto in = runtime::read_safetensors_file(cmd.inputs);
  if (!in.ok()) {
    std::cerr << "loom trace: " << in.status().message() << "\n";
    return 3;
  }
  std::vector<at::Tensor> inputs;
  for (size_t i = 0; i < in->tensors.size(); ++i) {
    at::Tensor t = in->find(std::to_string(i));
    if (!t.defined()) {
      std::cerr << "loom trace: " << cmd.inputs << ": inputs must be named \"0\", \"1\", ... by position; \""
                << i << "\" is missing\n";
      return 3;
    }
    inputs.push_back(t);
  }
  if (inputs.empty()) {
    std::cerr << "loom trace: " << cmd.inputs << " holds no tensors\n";
    return 3;
  }
  runtime::ModelOptions options;
  options.device = cmd.device;
  auto model = runtime::load_model(cmd.model, options);
  if (!model.ok()) {
    std::cerr << "loom trace: " << model.status().message() << "\n";
    return 3;
  }
  runtime::LocalTrace tr(**model, inputs);
  for (size_t i = 0; i < points.size(); ++i) {
    const graph::Point& p = points[i];
    ModuleRef m = tr.module(p.module).call(p.call);
    HookPoint hp = p.io == graph::Io::kOutput ? m.output(p.index) : m.input(p.index);
    hp.save(cmd.saves[i]);
  }
  auto result = tr.run();
  if (!result.ok()) {
    std::cerr << "loom trace: " << result.status().message() << "\n";
    return 4;
  }
  Status written = runtime::write_safetensors_file(cmd.output, result->saved, {{"model", cmd.model}});
  if (!written.ok()) {
    std::cerr << "loom trace: " << written.message() << "\n";
    return 3;
  }
  for (const auto& nt : result->saved) {
    std::cout << nt.name << " " << c10::toString(nt.tensor.scalar_type()) << " " << nt.tensor.sizes() << "\n";
  }
  return 0;
}

}  // namespace loom::client
