#include "server/job_service.h"

namespace loom::server {

using json = nlohmann::json;

JobService::JobService(ServerOptions options, JobStore& store, BlobStore& blobs, Metrics& metrics,
                       const RunnerFactory& runner)
    : options_(std::move(options)),
      store_(store),
      job_blobs_(options_, store, blobs),
      delivery_(options_, store, job_blobs_, metrics),
      runner_(runner ? runner(options_, store, job_blobs_, delivery_)
                     : std::make_unique<Execution>(options_, store, job_blobs_, delivery_)),
      variants_(options_, blobs, *runner_),
      admission_(options_, store, job_blobs_, delivery_, *runner_, metrics, variants_),
      scans_(options_, *runner_, variants_) {}

JobService::~JobService() { drain(); }

Status JobService::start(const std::vector<ModelSpec>& models) {
  LOOM_RETURN_IF_ERROR(runner_->start(models));
  return runner_->resumes_webhooks_from_store() ? delivery_.resume_webhooks() : Status();
}

void JobService::drain() {
  if (draining_.exchange(true)) return;
  runner_->stop(options_.drain_timeout);
  delivery_.stop();
}

Result<SubmitAnswer> JobService::submit(const std::string& owner, std::string_view body, Listener listener,
                                        SubmitRefusal* refusal) {
  if (draining_) return Status(StatusCode::kUnavailable, "the server is shutting down; retry on another server or later");
  return admission_.submit(owner, body, std::move(listener), refusal);
}

Result<JobRecord> JobService::owned_job(const std::string& owner, const std::string& id) {
  auto job = store_.get(id);
  if (!job.ok() || job->owner != owner) return not_found("no job \"" + id + "\" for this API key");
  return job;
}

Result<JobState> JobService::job_state(const std::string& id) {
  LOOM_ASSIGN_OR_RETURN(JobRecord job, store_.get(id));
  return job.state;
}

json JobService::to_json(const JobRecord& job) {
  json j = {{"id", job.id}, {"state", job_state_name(job.state)}, {"model", job.model},
            {"created_at", rfc3339(job.created_ms)}, {"updated_at", rfc3339(job.updated_ms)}};
  if (job.state == JobState::kQueued) {
    int64_t position = runner_->queue_position(job.model, job.id);
    if (position >= 0) j["queue_position"] = position;
  }
  if (!job.error_code.empty()) j["error"] = {{"code", job.error_code}, {"message", job.error_message}};
  if (job.state == JobState::kCompleted) {
    j["result_url"] = job_blobs_.result_url(job.id);
    j["result_size"] = job.result_size;
    j["result_sha256"] = job.result_sha256;
  }
  return j;
}

Result<json> JobService::snapshot(const std::string& owner, const std::string& id) {
  LOOM_ASSIGN_OR_RETURN(JobRecord job, owned_job(owner, id));
  return to_json(job);
}

Result<json> JobService::list(const std::string& owner) {
  LOOM_ASSIGN_OR_RETURN(std::vector<JobRecord> jobs, store_.list_by_owner(owner, 100));
  json arr = json::array();
  for (const auto& j : jobs) arr.push_back(to_json(j));
  return json{{"jobs", arr}};
}

Result<json> JobService::cancel(const std::string& owner, const std::string& id) {
  LOOM_ASSIGN_OR_RETURN(JobRecord job, owned_job(owner, id));
  if (is_terminal(job.state)) return to_json(job);
  (void)runner_->cancel(job);
  return to_json(job);
}

}  // namespace loom::server
