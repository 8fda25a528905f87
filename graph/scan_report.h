// What a scan answers (runtime::scan, `POST /v1/jobs?scan=1`, Trace::scan):
// every node's shape and dtype, the saves a run would return, and an
// estimate of the job's memory and device time. Torch-free, so the server's
// HTTP code and the client's parsing need no ATen; the JSON is the wire form.
//
// The estimates: peak_bytes is what the job holds beyond the weights (saved
// values, op results, and the module outputs a backward pass keeps alive);
// flops counts 2 x parameters x tokens per forward (x3 with a backward pass);
// device_ms divides that by the CPU matmul rate this process measured once,
// so it is an estimate for a CPU device (a GPU is faster).
// Thread safety: plain values and pure functions.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "graph/ir.h"
#include "graph/status.h"

namespace loom::graph {

struct ScanValue {
  uint32_t node = 0;
  std::string kind;  // "read", "op", "grad", ... (graph::node_kind_name)
  std::vector<int64_t> shape;
  std::string dtype;  // safetensors names: "F32", "I64", ...
};

struct ScanSave {
  std::string name;
  std::vector<int64_t> shape;
  std::string dtype;
};

struct ScanReport {
  std::vector<ScanValue> values;  // nodes whose value is a tensor, in node order
  std::vector<ScanSave> saves;    // in save order, named as a run names them
  uint64_t saved_bytes = 0;
  uint64_t intermediate_bytes = 0;
  uint64_t autograd_bytes = 0;
  uint64_t peak_bytes = 0;
  int64_t tokens = 0;
  double flops = 0;
  double device_ms = 0;

  // The value of node `node`, or nullptr.
  const ScanValue* value(uint32_t node) const;
  const ScanSave* save(const std::string& name) const;
};

nlohmann::json to_json(const ScanReport& report);
// Checks every field's type and bounds: an answer from the network.
Result<ScanReport> scan_report_from_json(const nlohmann::json& j);

}  // namespace loom::graph
