// Where a job's request and result bytes live: up to
// ServerOptions::small_blob_bytes in the JobStore beside the job record (a
// file per blob costs ~1 ms to create, a row tens of microseconds), larger
// ones as files in the BlobStore. Also signs the result's download URL.
// Thread safety: safe from any thread (the stores are). Calls do blocking
// I/O: keep them off the I/O thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "graph/status.h"
#include "server/blob_store.h"
#include "server/job_store.h"
#include "server/server_options.h"

namespace loom::server {

class JobBlobs {
 public:
  JobBlobs(const ServerOptions& options, JobStore& store, BlobStore& files)
      : options_(options), store_(store), files_(files) {}

  Status put(BlobKind kind, const std::string& id, std::string_view bytes);
  Result<std::string> get(BlobKind kind, const std::string& id);  // NOT_FOUND
  // Gives job `to` the blob of job `from` without reading it: a row copied
  // inside the job store, or a hard link to the file.
  Status share(BlobKind kind, const std::string& from, const std::string& to);
  // The blob when the job store holds it; nullopt when it is a file (or gone).
  std::optional<std::string> small(BlobKind kind, const std::string& id);
  // The file of a large result (for streamed downloads).
  std::string result_file(const std::string& id) const { return files_.path(BlobKind::kResult, id); }
  // Deletes both files of a job (its rows go with the job record).
  void remove_files(const std::string& id);
  // A fresh presigned path+query for the job's result.
  std::string result_url(const std::string& job_id) const;

 private:
  const ServerOptions& options_;
  JobStore& store_;
  BlobStore& files_;
};

}  // namespace loom::server
