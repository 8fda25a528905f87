// Result downloads for the Client: a presigned GET streamed into a sink
// through a bounded buffer, resumed with Range after a dropped connection,
// restarted with a fresh URL after a 403 (expired), and verified (size and
// SHA-256) at the end; plus streaming zstd decompression file to file.
// Used by JobClient (remote/job_client.cc). Thread safety: the caller's thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "transport/http_client.h"
#include "graph/sha256.h"

namespace loom::client::internal {

// Where downloaded bytes go.
class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual void write(std::string_view data) = 0;
  // Drops everything written (the server ignored a Range and sends it all again).
  virtual void reset() = 0;
};

class StringSink : public ByteSink {
 public:
  explicit StringSink(std::string* out) : out_(out) {}
  void write(std::string_view data) override { out_->append(data); }
  void reset() override { out_->clear(); }

 private:
  std::string* out_;
};

struct DownloadSpec {
  std::string job_id;
  std::string url;       // presigned path+query ("/v1/blobs/...") or http://HOST:PORT/...
  uint64_t size = 0;     // compressed bytes expected
  std::string sha256;    // hex of the compressed bytes
  uint64_t offset = 0;   // bytes the sink (and `hash`) already hold
  int max_attempts = 6;  // dropped connections without progress; expired URLs
  std::chrono::milliseconds initial_backoff{200};
};

// Downloads spec.url into `sink`, which already holds spec.offset bytes
// (hashed into `hash`; replaced by a fresh hash when the download restarts
// from byte 0). `fresh_url` returns a new presigned URL (the job's
// snapshot) after a 403. `progress` sees the running byte count.
// Throws NotFoundError (result gone), LoomError(INTERNAL) for a size or
// SHA-256 mismatch (the sink is reset first), ConnectionError when the
// attempts are spent.
void download(transport::HttpClient& http, const DownloadSpec& spec, ByteSink& sink, std::unique_ptr<Sha256>& hash,
              const std::function<std::string()>& fresh_url, const std::function<void(uint64_t)>& progress);

// Decompresses the zstd file `in` into `out` (created or truncated) through
// bounded buffers; stops with LoomError(RESOURCE_EXHAUSTED) past
// `max_output` bytes, LoomError(INTERNAL) for a corrupt frame. Returns the
// bytes written.
uint64_t decompress_file(const std::string& in, const std::string& out, uint64_t max_output);

// "bytes A-B/SIZE" -> A, B, SIZE; false when malformed.
bool parse_content_range(std::string_view header, uint64_t& first, uint64_t& last, uint64_t& size);

}  // namespace loom::client::internal
