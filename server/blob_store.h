// Request bodies and results as files under the server's data directory:
//   DIR/requests/<job_id>.req     the zstd Cap'n Proto JobRequest as received
//   DIR/results/<job_id>.st.zst   the zstd safetensors result
//   DIR/variants/<id>.variant     a model variant (server/variants.h)
// put() is atomic: it writes a temporary file in the same directory,
// renames it over the target, so a reader (or a server restarting after a
// crash) sees the old bytes or the new, never a prefix. With `sync` it also
// fsyncs the file before the rename and the directory after, so a put
// survives power loss too (costs milliseconds per put on most disks); without
// it a put survives a crash of the process, not of the machine. Ids must be 1..128 lowercase hex chars (job ids are 32), which is
// what keeps a path from leaving DIR ("../x" is INVALID_ARGUMENT).
//
// Ownership: holds only the directory name; the files belong to the server.
// Thread safety: stateless besides the directory, safe from any thread and
// from several processes. Calls do blocking disk I/O: keep them off Asio I/O
// threads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "graph/status.h"

namespace loom::server {

enum class BlobKind { kRequest, kResult, kVariant };

class BlobStore {
 public:
  // Opens DIR, creating it and its requests/ and results/ subdirectories,
  // and removes temporary files left by puts a crash cut short (an hour old).
  static Result<BlobStore> open(const std::string& dir, bool sync = true);

  // Writes the blob atomically, replacing any previous one. RESOURCE_EXHAUSTED
  // when the disk is full, INTERNAL for other I/O errors.
  Status put(BlobKind kind, const std::string& id, std::string_view bytes) const;
  Result<std::string> get(BlobKind kind, const std::string& id) const;  // NOT_FOUND
  Result<uint64_t> size(BlobKind kind, const std::string& id) const;    // NOT_FOUND
  // Where the blob lives (or would), for streaming reads (HTTP Range); "" for
  // an invalid id.
  std::string path(BlobKind kind, const std::string& id) const;
  Status remove(BlobKind kind, const std::string& id) const;  // NOT_FOUND if absent
  // Makes `to` name the same file as `from` (a hard link: no byte is read or
  // written, and removing either leaves the other). NOT_FOUND if `from` is absent.
  Status link(BlobKind kind, const std::string& from, const std::string& to) const;

  const std::string& dir() const { return dir_; }

  // 1..128 chars, each 0-9 or a-f.
  static bool valid_id(const std::string& id);

 private:
  BlobStore(std::string dir, bool sync) : dir_(std::move(dir)), sync_(sync) {}
  Result<std::string> checked_path(BlobKind kind, const std::string& id) const;

  std::string dir_;
  bool sync_ = true;
};

}  // namespace loom::server
