#include "server/admission.h"

#include "graph/sha256.h"
#include "runtime/execute.h"
#include "transport/internal/printable.h"
#include "transport/request.h"
#include "transport/wire.h"

namespace loom::server {

namespace {

bool has_stream_nodes(const graph::Graph& g) {
  for (const auto& n : g.nodes) {
    if (n.kind == graph::NodeKind::kStream) return true;
  }
  return false;
}

}  // namespace

Result<std::string> Admission::authenticate(const std::string& api_key) {
  if (!options_.require_auth) return std::string("anonymous");
  const std::string how = " (an operator creates keys with `loom-server keys create NAME --data-dir DIR` (or --redis URL) on the "
                          "server; send it as `Authorization: Bearer KEY` or set LOOM_API_KEY)";
  if (api_key.empty()) return Status(StatusCode::kUnauthenticated, "no API key" + how);
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = key_cache_.find(api_key);
    if (it != key_cache_.end() && now - it->second.checked < kKeyCacheTtl) return it->second.key_id;
  }
  auto key = store_.find_key(api_key);
  if (!key.ok()) return key.status();
  std::lock_guard<std::mutex> lock(mu_);
  if (!key->has_value()) {
    key_cache_.erase(api_key);  // revoked
    return Status(StatusCode::kUnauthenticated, "unknown API key" + how);
  }
  // Bounded: unknown keys are never cached, and a key that is not used
  // again is dropped when the cache is swept here.
  if (key_cache_.size() >= 4096) key_cache_.clear();
  key_cache_[api_key] = CachedKey{(*key)->key_id, now};
  return (*key)->key_id;
}

bool Admission::queue_full(const std::string& model) const {
  return execution_.queued_for(model) >= options_.queue_capacity;
}

Result<std::optional<SubmitAnswer>> Admission::answer_from_cache(JobRecord& job, uint64_t subscription) {
  auto done = store_.find_completed(job.identity);
  if (!done.ok()) return done.status();
  if (!done->has_value()) return std::optional<SubmitAnswer>();
  // The new job shares the cached result's bytes (a row copied inside the
  // store, or a hard link): nothing is read here unless it rides inline.
  if (!blobs_.share(BlobKind::kResult, (*done)->id, job.id).ok()) return std::optional<SubmitAnswer>();
  job.state = JobState::kCompleted;
  job.result_size = (*done)->result_size;
  job.result_sha256 = (*done)->result_sha256;
  LOOM_RETURN_IF_ERROR(store_.create(job));
  std::shared_ptr<const std::string> inline_result;
  if (job.result_size <= options_.inline_max) {
    auto bytes = blobs_.get(BlobKind::kResult, job.id);
    if (bytes.ok()) inline_result = std::make_shared<const std::string>(std::move(*bytes));
  }
  (void)delivery_.complete(job, /*deduplicated=*/true, std::move(inline_result));
  return std::optional<SubmitAnswer>(SubmitAnswer{job.id, job.state, true, subscription});
}

Result<std::optional<SubmitAnswer>> Admission::answer_retry(const std::string& owner, const transport::JobRequest& req,
                                                            SubmitRefusal* refusal) {
  auto prior = store_.find_by_request_id(owner, req.request_id);
  if (!prior.ok()) return prior.status();
  if (!prior->has_value()) return std::optional<SubmitAnswer>();
  // An idempotent retry sends the same request; another one under the
  // same id is a client bug that must not silently get the old job.
  auto before = blobs_.get(BlobKind::kRequest, (*prior)->id);
  auto decoded = before.ok() ? transport::decode_request(*before, options_.decode_limits())
                             : Result<transport::JobRequest>(before.status());
  if (decoded.ok() && transport::request_identity(*decoded) != transport::request_identity(req)) {
    if (refusal != nullptr) refusal->conflict = true;
    return failed_precondition("request id \"" + transport::internal::printable(req.request_id, 80) +
                               "\" was used for job " + (*prior)->id +
                               " with a different request; give a new request id to each request");
  }
  return std::optional<SubmitAnswer>(SubmitAnswer{(*prior)->id, (*prior)->state, true});
}

Result<SubmitAnswer> Admission::submit(const std::string& owner, std::string_view body, Delivery::Listener listener,
                                       SubmitRefusal* refusal) {
  int64_t* retry_after_s = refusal != nullptr ? &refusal->retry_after_s : nullptr;
  LOOM_ASSIGN_OR_RETURN(transport::JobRequest req, transport::decode_request(body, options_.decode_limits()));
  // A job for "key@variant" becomes a job for "key" with the variant's edit
  // in front of its graph: what is stored and run is the resolved request.
  std::string resolved;
  if (req.model_key.find('@') != std::string::npos) {
    LOOM_RETURN_IF_ERROR(variants_.resolve(owner, req));
    resolved = transport::encode_request(req);
    body = resolved;
  }
  auto model = execution_.find(req.model_key);
  if (!model) {
    return not_found("unknown model \"" + req.model_key + "\" (this server has: " + execution_.model_keys() + ")");
  }
  LOOM_RETURN_IF_ERROR(runtime::validate_for_modules(req.graph, *model->module_paths, options_.run_limits.graph));
  if (req.generation) {
    if (!model->vocab_size) {
      return invalid_argument("model \"" + req.model_key + "\" is a " + model->kind +
                              ", which cannot generate (GPT-2 and the Llama family can)");
    }
    LOOM_RETURN_IF_ERROR(req.generation->check(*model->vocab_size).with_context("generation"));
  }
  if (req.invokes.size() != req.graph.invokes) {
    return invalid_argument("the graph has " + std::to_string(req.graph.invokes) + " invoke(s) but the request carries " +
                            std::to_string(req.invokes.size()) + " input set(s)");
  }
  if (!req.callback_url.empty()) {
    auto target = callbacks_.check(req.callback_url);
    if (!target.ok()) return target.status();
  }
  if (!req.request_id.empty()) {
    LOOM_ASSIGN_OR_RETURN(std::optional<SubmitAnswer> prior, answer_retry(owner, req, refusal));
    if (prior) return std::move(*prior);
  }
  JobRecord job;
  job.id = new_job_id();
  job.owner = owner;
  job.model = req.model_key;
  job.created_ms = job.updated_ms = now_ms();
  job.request_id = req.request_id;
  job.callback_url = req.callback_url;
  uint64_t subscription = listener ? delivery_.subscribe(job.id, std::move(listener)) : 0;
  // Failing before the job exists: the listener has nothing to hear.
  auto refuse = [&](Status s) {
    if (subscription != 0) delivery_.unsubscribe(job.id, subscription);
    return s;
  };
  // Results are cached per owner: a shared cache would tell one user what another ran.
  if (!req.no_cache && !has_stream_nodes(req.graph)) {
    // The model's revision joins the identity: a checkpoint swapped under
    // the same key must not answer with the old one's results.
    job.identity = sha256_hex(owner + "\n" + model->revision + "\n" + transport::request_identity(req));
    auto cached = answer_from_cache(job, subscription);
    if (!cached.ok()) return refuse(cached.status());
    if (cached->has_value()) return std::move(**cached);
  }
  // The per-key cap. A key's active jobs are among this server's (queued,
  // plus one running per executor): while those are fewer than the cap the
  // store need not be asked.
  if (execution_.active_upper_bound() >= options_.max_active_per_key) {
    auto active = store_.count_active(owner);
    if (!active.ok()) return refuse(active.status());
    if (*active >= options_.max_active_per_key) {
      if (retry_after_s != nullptr) *retry_after_s = 1;
      return refuse(resource_exhausted("this API key has " + std::to_string(*active) +
                                       " jobs queued or running, the most a key may have at once (" +
                                       std::to_string(options_.max_active_per_key) +
                                       ", --max-active-per-key); retry when some have ended"));
    }
  }
  const std::string full = "the queue for " + model->device + " is full (" + std::to_string(options_.queue_capacity) +
                           " jobs); retry later";
  auto queue_is_full = [&] {
    if (retry_after_s != nullptr) *retry_after_s = 1;
    return refuse(resource_exhausted(full));
  };
  if (queue_full(req.model_key)) return queue_is_full();
  job.state = JobState::kReceived;
  Status created = store_.create(job);
  if (!created.ok()) return refuse(created);
  metrics_.job_entered(JobState::kReceived);
  Status put = blobs_.put(BlobKind::kRequest, job.id, body);
  if (!put.ok()) {
    delivery_.finish(job, JobState::kError, StatusCode::kInternal, "could not store the request: " + put.message());
    return refuse(put);
  }
  std::shared_ptr<const transport::JobRequest> decoded;
  if (body.size() <= options_.small_blob_bytes) decoded = std::make_shared<const transport::JobRequest>(std::move(req));
  const std::string model_key = job.model;
  delivery_.transition(job, JobState::kQueued, {{"queue_position", execution_.queued_for(model_key)}});
  if (!execution_.try_enqueue(model_key, job.id, std::move(decoded))) {
    delivery_.finish(job, JobState::kError, StatusCode::kResourceExhausted, "the queue was full");
    return queue_is_full();
  }
  return SubmitAnswer{job.id, JobState::kQueued, false, subscription};
}

}  // namespace loom::server
