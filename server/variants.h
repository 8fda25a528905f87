// Model variants: persistent edits on the server. `POST
// /v1/models/{key}/variants?name=NAME[&shared=1]` stores an edit (graph/edits.h)
// under NAME after validating it once against the model; a job for
// `key@NAME` runs with the edit in front of its graph. A variant is visible
// only to the API key that made it unless shared; another key's name is a
// conflict, and the owner may replace its own. Variants live in the blob
// store (a shared directory in scale-out), so every server sees them.
//
// File: one line of JSON {"owner", "model", "name", "shared"}, then the
// request bytes as received (a JobRequest whose graph is the edit).
// Thread safety: any thread except an I/O one (it reads and writes files).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

#include "graph/status.h"
#include "server/blob_store.h"
#include "server/job_runner.h"
#include "server/server_options.h"
#include "transport/request.h"

namespace loom::server {

class Variants {
 public:
  Variants(const ServerOptions& options, const BlobStore& blobs, const JobRunner& runner)
      : options_(options), blobs_(blobs), runner_(runner) {}

  // {"model": "key@name", "shared", "nodes"}; PERMISSION_DENIED when
  // another key owns the name.
  Result<nlohmann::json> create(const std::string& owner, const std::string& key, const std::string& name, bool shared,
                                std::string_view body);
  // A request for "key@name": the base model's key, the edit in front of
  // the graph. Requests without '@' are left as they are. NOT_FOUND for a
  // variant this owner cannot see.
  Status resolve(const std::string& owner, transport::JobRequest& req) const;

  // [A-Za-z0-9._-]{1,64}
  static bool valid_name(const std::string& name);

 private:
  static std::string blob_id(const std::string& key, const std::string& name);

  const ServerOptions& options_;
  const BlobStore& blobs_;
  const JobRunner& runner_;
};

}  // namespace loom::server
