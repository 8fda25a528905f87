#include "server/scan_service.h"

#include "runtime/execute.h"
#include "runtime/model.h"
#include "runtime/tensor_data.h"
#include "transport/request.h"

namespace loom::server {

ScanService::~ScanService() = default;

Result<std::shared_ptr<ScanService::MetaModel>> ScanService::meta_model(const std::string& key,
                                                                        const JobRunner::ModelView& view) {
  if (view.path.empty()) {
    return failed_precondition("model \"" + key + "\": this server does not know where its checkpoint is, so it "
                               "cannot scan for it (its workers predate scans; restart them)");
  }
  if (view.kind == "torchscript") {
    return failed_precondition("model \"" + key + "\" is a TorchScript archive, which cannot run on shapes only; "
                               "native checkpoints (gpt2, llama) can");
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = models_[view.path + "\n" + view.revision];
  if (!slot) {
    runtime::ModelOptions o;
    o.device = "meta";
    auto m = runtime::load_model(view.path, o);
    if (!m.ok()) {
      models_.erase(view.path + "\n" + view.revision);
      return m.status().with_context("model \"" + key + "\"");
    }
    slot = std::make_shared<MetaModel>();
    slot->model = std::move(m).value();
  }
  return slot;
}

Result<nlohmann::json> ScanService::scan(const std::string& owner, std::string_view body) {
  LOOM_ASSIGN_OR_RETURN(transport::JobRequest req, transport::decode_request(body, options_.decode_limits()));
  const std::string asked = req.model_key;
  LOOM_RETURN_IF_ERROR(variants_.resolve(owner, req));
  auto view = runner_.find(req.model_key);
  if (!view) return not_found("unknown model \"" + req.model_key + "\" (this server has: " + runner_.model_keys() + ")");
  LOOM_RETURN_IF_ERROR(runtime::validate_for_modules(req.graph, *view->module_paths, options_.run_limits.graph));
  if (req.generation) {
    return failed_precondition("a scan runs forward traces; a generation's later steps depend on tokens a scan has "
                               "no values for (scan the same trace without the generation)");
  }
  if (req.invokes.size() != req.graph.invokes) {
    return invalid_argument("the graph has " + std::to_string(req.graph.invokes) + " invoke(s) but the request carries " +
                            std::to_string(req.invokes.size()) + " input set(s)");
  }
  std::vector<std::vector<c10::IValue>> inputs;
  for (const auto& invoke : req.invokes) {
    std::vector<c10::IValue> in;
    for (const auto& td : invoke) {
      LOOM_ASSIGN_OR_RETURN(at::Tensor t, runtime::to_tensor(td));
      in.emplace_back(std::move(t));
    }
    inputs.push_back(std::move(in));
  }
  LOOM_ASSIGN_OR_RETURN(std::shared_ptr<MetaModel> meta, meta_model(req.model_key, *view));
  runtime::ExecOptions eo;
  eo.limits = options_.run_limits;
  std::lock_guard<std::mutex> lock(meta->mu);
  LOOM_ASSIGN_OR_RETURN(graph::ScanReport report, runtime::scan_report(*meta->model, req.graph, inputs, eo));
  nlohmann::json answer = graph::to_json(report);
  answer["model"] = asked;
  return answer;
}

}  // namespace loom::server
