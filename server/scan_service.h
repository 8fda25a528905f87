// Scans (`POST /v1/jobs?scan=1`): a request's graph run on shapes only, at
// once and without queueing, against a copy of its model loaded on the meta
// device (runtime::scan_report): checkpoint headers only, no weight read or
// held, so a stateless scale-out server scans as well as the embedded one
// (workers register where their checkpoints are; the filesystem is shared).
// The answer: every node's shape and dtype, the saves, and estimates of the
// job's peak memory and device time (runtime/scan_report.h).
//
// Forward traces only: a generation's later steps depend on its tokens,
// which a scan has no values for (FAILED_PRECONDITION says so).
// Thread safety: scan() may be called from any thread except an I/O one
// (it runs the model's code); scans of one model take turns.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "server/job_runner.h"
#include "server/server_options.h"
#include "server/variants.h"

namespace loom::runtime {
class Model;
}

namespace loom::server {

class ScanService {
 public:
  ScanService(const ServerOptions& options, const JobRunner& runner, const Variants& variants)
      : options_(options), runner_(runner), variants_(variants) {}
  ~ScanService();

  // The request body is a job submission's, by `owner` (whose variants it
  // may name); INVALID_ARGUMENT etc. as submit's.
  Result<nlohmann::json> scan(const std::string& owner, std::string_view body);

 private:
  struct MetaModel {
    std::mutex mu;  // one scan at a time: forward_meta swaps its tensors
    std::unique_ptr<runtime::Model> model;
  };
  Result<std::shared_ptr<MetaModel>> meta_model(const std::string& key, const JobRunner::ModelView& view);

  const ServerOptions& options_;
  const JobRunner& runner_;
  const Variants& variants_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<MetaModel>> models_;  // by path and revision
};

}  // namespace loom::server
