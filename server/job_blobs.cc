#include "server/job_blobs.h"

#include <chrono>

#include "transport/presign.h"

namespace loom::server {

Status JobBlobs::put(BlobKind kind, const std::string& id, std::string_view bytes) {
  if (bytes.size() <= options_.small_blob_bytes) return store_.put_blob(static_cast<int>(kind), id, bytes);
  return files_.put(kind, id, bytes);
}

Result<std::string> JobBlobs::get(BlobKind kind, const std::string& id) {
  LOOM_ASSIGN_OR_RETURN(std::optional<std::string> row, store_.get_blob(static_cast<int>(kind), id));
  if (row) return std::move(*row);
  return files_.get(kind, id);
}

Status JobBlobs::share(BlobKind kind, const std::string& from, const std::string& to) {
  LOOM_ASSIGN_OR_RETURN(bool copied, store_.copy_blob(static_cast<int>(kind), from, to));
  if (copied) return Status();
  return files_.link(kind, from, to);
}

std::optional<std::string> JobBlobs::small(BlobKind kind, const std::string& id) {
  auto row = store_.get_blob(static_cast<int>(kind), id);
  return row.ok() ? std::move(*row) : std::nullopt;
}

void JobBlobs::remove_files(const std::string& id) {
  (void)files_.remove(BlobKind::kResult, id);
  (void)files_.remove(BlobKind::kRequest, id);
}

std::string JobBlobs::result_url(const std::string& job_id) const {
  int64_t expires = std::chrono::duration_cast<std::chrono::seconds>(
                        (std::chrono::system_clock::now() + options_.url_lifetime).time_since_epoch())
                        .count();
  return transport::presign(options_.presign_secret, "GET", "/v1/blobs/results/" + job_id, expires);
}

}  // namespace loom::server
