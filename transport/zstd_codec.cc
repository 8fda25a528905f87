#include "transport/zstd_codec.h"

#include <zstd.h>

#include <memory>

namespace loom::transport {

namespace {

// One context per thread, reused: creating one costs more than compressing
// a small request (its workspace is allocated and zeroed).
ZSTD_CCtx* thread_cctx() {
  thread_local std::unique_ptr<ZSTD_CCtx, decltype(&ZSTD_freeCCtx)> ctx(ZSTD_createCCtx(), ZSTD_freeCCtx);
  return ctx.get();
}

ZSTD_DCtx* thread_dctx() {
  thread_local std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> ctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
  ZSTD_DCtx_reset(ctx.get(), ZSTD_reset_session_and_parameters);
  return ctx.get();
}

}  // namespace

std::string zstd_compress(std::string_view data, int level) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  size_t n = ZSTD_compressCCtx(thread_cctx(), out.data(), out.size(), data.data(), data.size(), level);
  // Only fails for a too-small destination, which compressBound rules out.
  out.resize(ZSTD_isError(n) ? 0 : n);
  return out;
}

Result<std::string> zstd_decompress(std::string_view frame, uint64_t max_output) {
  ZSTD_DCtx* ctx = thread_dctx();
  // Refuse frames whose window would need more memory than the output bound.
  ZSTD_DCtx_setParameter(ctx, ZSTD_d_windowLogMax, 27);
  std::string out;
  // The frame's declared size is a hint only (it may lie): reserve within the bound.
  unsigned long long declared = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != ZSTD_CONTENTSIZE_ERROR && declared <= max_output) {
    out.reserve(static_cast<size_t>(declared) + ZSTD_DStreamOutSize());
  }
  ZSTD_inBuffer in{frame.data(), frame.size(), 0};
  size_t last = 1;
  while (in.pos < in.size) {
    size_t chunk = ZSTD_DStreamOutSize();
    size_t old = out.size();
    out.resize(old + chunk);
    ZSTD_outBuffer o{out.data() + old, chunk, 0};
    last = ZSTD_decompressStream(ctx, &o, &in);
    out.resize(old + o.pos);
    if (ZSTD_isError(last)) {
      return invalid_argument(std::string("bad zstd data: ") + ZSTD_getErrorName(last));
    }
    if (out.size() > max_output) {
      return resource_exhausted("zstd data expands past the limit of " + std::to_string(max_output) + " bytes");
    }
    if (o.pos == 0 && in.pos < in.size && last != 0) continue;
  }
  // Drain what the decoder still holds.
  while (last != 0) {
    size_t chunk = ZSTD_DStreamOutSize();
    size_t old = out.size();
    out.resize(old + chunk);
    ZSTD_outBuffer o{out.data() + old, chunk, 0};
    last = ZSTD_decompressStream(ctx, &o, &in);
    out.resize(old + o.pos);
    if (ZSTD_isError(last)) return invalid_argument(std::string("bad zstd data: ") + ZSTD_getErrorName(last));
    if (out.size() > max_output) {
      return resource_exhausted("zstd data expands past the limit of " + std::to_string(max_output) + " bytes");
    }
    if (o.pos == 0) return invalid_argument("truncated zstd data: the frame ends early");
  }
  return out;
}

}  // namespace loom::transport
