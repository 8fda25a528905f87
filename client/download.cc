#include "client/download.h"

#include <zstd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <thread>
#include <vector>

#include "client/errors.h"
#include "transport/request.h"

namespace loom::client::internal {

using transport::HttpClient;
using transport::HttpRequest;
using transport::HttpResponse;
using transport::parse_base_url;

bool parse_content_range(std::string_view header, uint64_t& first, uint64_t& last, uint64_t& size) {
  auto number = [](std::string_view s, uint64_t& v) {
    if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string_view::npos) return false;
    v = std::stoull(std::string(s));
    return true;
  };
  constexpr std::string_view kUnit = "bytes ";
  if (header.substr(0, kUnit.size()) != kUnit) return false;
  header.remove_prefix(kUnit.size());
  size_t dash = header.find('-');
  size_t slash = header.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || slash < dash) return false;
  return number(header.substr(0, dash), first) && number(header.substr(dash + 1, slash - dash - 1), last) &&
         number(header.substr(slash + 1), size) && first <= last && last < size;
}

void download(HttpClient& http, const DownloadSpec& spec, ByteSink& sink, std::unique_ptr<Sha256>& hash,
              const std::function<std::string()>& fresh_url, const std::function<void(uint64_t)>& progress) {
  const std::string what = "downloading the result of job " + spec.job_id;
  std::string url = spec.url;
  uint64_t offset = spec.offset;
  int failures = 0;   // consecutive attempts that moved no byte
  int refreshes = 0;  // fresh URLs asked for after a 403
  std::unique_ptr<HttpClient> elsewhere;  // a URL on another host than the API's

  auto restart = [&] {
    sink.reset();
    hash = std::make_unique<Sha256>();
    offset = 0;
  };
  if (offset > spec.size) restart();

  while (offset < spec.size) {
    HttpClient* h = &http;
    std::string target = url;
    if (url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0) {
      size_t path = url.find('/', url.find("://") + 3);
      auto ep = parse_base_url(url.substr(0, path));
      if (!ep.ok()) throw LoomError(StatusCode::kInternal, what + ": bad result URL: " + ep.status().message());
      target = path == std::string::npos ? "/" : url.substr(path);
      if (ep->host != http.endpoint().host || ep->port != http.endpoint().port || ep->tls != http.endpoint().tls) {
        if (!elsewhere || elsewhere->endpoint().host != ep->host || elsewhere->endpoint().port != ep->port ||
            elsewhere->endpoint().tls != ep->tls) {
          elsewhere = std::make_unique<HttpClient>(*ep, http.options());
        }
        h = elsewhere.get();
      }
    } else if (url.empty() || url.front() != '/') {
      throw LoomError(StatusCode::kInternal, what + ": the server gave no usable result URL (\"" + url + "\")");
    }
    HttpRequest req;
    req.target = target;
    // The signature is the credential (PROTOCOL.md): no API key goes to a blob URL.
    req.headers.emplace_back(transport::kProtocolHeader, std::to_string(transport::kProtocolVersion));
    if (offset > 0) req.headers.emplace_back("Range", "bytes=" + std::to_string(offset) + "-");
    const uint64_t before = offset;

    auto on_head = [&](const HttpResponse& head) {
      if (head.status == 206) {
        uint64_t first = 0, last = 0, total = 0;
        if (!parse_content_range(head.header("Content-Range"), first, last, total) || first != offset ||
            total != spec.size) {
          throw LoomError(StatusCode::kInternal, what + ": asked for bytes " + std::to_string(offset) +
                                                     "- of " + std::to_string(spec.size) +
                                                     ", the server answered Content-Range \"" +
                                                     head.header("Content-Range") + "\"");
        }
      } else if (head.ok() && offset > 0) {
        restart();  // the whole body again: the server did not honour Range
      }
    };
    auto on_data = [&](std::string_view data) {
      if (offset + data.size() > spec.size) {
        restart();
        throw LoomError(StatusCode::kInternal, what + ": the server sent more than the announced " +
                                                   std::to_string(spec.size) + " bytes");
      }
      sink.write(data);
      hash->update(data);
      offset += data.size();
      if (progress) progress(offset);
    };

    HttpResponse resp;
    try {
      resp = h->stream(req, on_head, on_data);
    } catch (const transport::HttpError& e) {
      if (e.status().code() != StatusCode::kUnavailable) throw_status(e.status());
      failures = offset > before ? 0 : failures + 1;
      if (failures >= spec.max_attempts) {
        throw ConnectionError(what + ": " + e.what() + " (gave up after " + std::to_string(failures) +
                              " attempts without progress; " + std::to_string(offset) + " of " +
                              std::to_string(spec.size) + " bytes received)");
      }
      std::this_thread::sleep_for(std::min(spec.initial_backoff * (1 << std::min(failures, 5)),
                                           std::chrono::milliseconds(5000)));
      continue;
    }
    if (resp.ok()) {
      if (offset < spec.size) {  // a clean end before the announced size: resume
        failures = offset > before ? 0 : failures + 1;
        if (failures >= spec.max_attempts) {
          throw LoomError(StatusCode::kInternal, what + ": the server keeps ending the body at " +
                                                     std::to_string(offset) + " of " + std::to_string(spec.size) +
                                                     " bytes");
        }
      }
      continue;
    }
    if (resp.status == 403) {
      // Expired (or otherwise refused) signature: the snapshot has a fresh one.
      if (++refreshes > spec.max_attempts || !fresh_url) {
        throw AuthError(what + ": the server refused the presigned URL (403) even after " +
                            std::to_string(refreshes - 1) + " fresh ones",
                        StatusCode::kPermissionDenied);
      }
      url = fresh_url();
      continue;
    }
    if (resp.status == 404) {
      throw NotFoundError(what + ": the server no longer has it (results are deleted after the retention period)");
    }
    if (resp.status == 416) {  // our offset is past what the server has: start over
      restart();
      if (++failures >= spec.max_attempts) {
        throw LoomError(StatusCode::kInternal, what + ": the server refuses every byte range (416)");
      }
      continue;
    }
    throw_http_error({resp.status, resp.body, resp.header("Retry-After"), what});
  }
  std::string digest = hash->hex_digest();
  if (digest != spec.sha256) {
    restart();
    throw LoomError(StatusCode::kInternal, what + ": SHA-256 mismatch: expected " + spec.sha256 + ", got " +
                                               digest + " (" + std::to_string(spec.size) +
                                               " bytes): the bytes were corrupted on the way; run it again");
  }
}

uint64_t decompress_file(const std::string& in, const std::string& out, uint64_t max_output) {
  std::ifstream src(in, std::ios::binary);
  if (!src) throw LoomError(StatusCode::kInternal, "cannot open " + in + " for reading");
  std::ofstream dst(out, std::ios::binary | std::ios::trunc);
  if (!dst) throw ValidationError("cannot write " + out + ": check the directory exists and is writable");
  std::unique_ptr<ZSTD_DStream, size_t (*)(ZSTD_DStream*)> ds(ZSTD_createDStream(), ZSTD_freeDStream);
  if (!ds) throw LoomError(StatusCode::kInternal, "zstd: out of memory");
  ZSTD_initDStream(ds.get());
  std::vector<char> ibuf(ZSTD_DStreamInSize());
  std::vector<char> obuf(ZSTD_DStreamOutSize());
  uint64_t written = 0;
  size_t last = 0;
  bool any = false;
  while (src) {
    src.read(ibuf.data(), static_cast<std::streamsize>(ibuf.size()));
    size_t n = static_cast<size_t>(src.gcount());
    if (n == 0) break;
    any = true;
    ZSTD_inBuffer input{ibuf.data(), n, 0};
    while (input.pos < input.size) {
      ZSTD_outBuffer output{obuf.data(), obuf.size(), 0};
      last = ZSTD_decompressStream(ds.get(), &output, &input);
      if (ZSTD_isError(last)) {
        throw LoomError(StatusCode::kInternal, in + ": bad zstd data: " + ZSTD_getErrorName(last));
      }
      written += output.pos;
      if (written > max_output) {
        throw LoomError(StatusCode::kResourceExhausted, in + ": decompresses to more than the limit of " +
                                                            std::to_string(max_output) + " bytes");
      }
      dst.write(obuf.data(), static_cast<std::streamsize>(output.pos));
    }
  }
  // Flush what the decoder still holds for a frame already fully read.
  while (any && last != 0) {
    ZSTD_inBuffer input{nullptr, 0, 0};
    ZSTD_outBuffer output{obuf.data(), obuf.size(), 0};
    last = ZSTD_decompressStream(ds.get(), &output, &input);
    if (ZSTD_isError(last)) throw LoomError(StatusCode::kInternal, in + ": bad zstd data: " + ZSTD_getErrorName(last));
    if (output.pos == 0) break;
    written += output.pos;
    if (written > max_output) {
      throw LoomError(StatusCode::kResourceExhausted,
                      in + ": decompresses to more than the limit of " + std::to_string(max_output) + " bytes");
    }
    dst.write(obuf.data(), static_cast<std::streamsize>(output.pos));
  }
  if (!any || last != 0) throw LoomError(StatusCode::kInternal, in + ": truncated zstd data");
  dst.close();
  if (!dst) throw LoomError(StatusCode::kInternal, "writing " + out + " failed (disk full?)");
  return written;
}

}  // namespace loom::client::internal
