// Shared by the seeded checkpoint generators (gpt2_config.cc,
// llama_config.cc): a reproducible normal stream and a text-file writer.
// Thread safety: single-owner objects and free functions.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <string>

#include "runtime/internal/safetensors_stream.h"

namespace loom::runtime::internal {

// A deterministic N(0, 1) stream: mt19937_64 is fully specified by the C++
// standard and Box-Muller is written out here, whereas std::normal_distribution
// and torch's generators may change between library versions.
class NormalStream {
 public:
  explicit NormalStream(uint64_t seed) : rng_(seed) {}
  double next() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1 = (static_cast<double>(rng_() >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]
    double u2 = static_cast<double>(rng_() >> 11) * 0x1.0p-53;          // [0, 1)
    double r = std::sqrt(-2.0 * std::log(u1));
    double theta = 2.0 * M_PI * u2;
    spare_ = r * std::sin(theta);
    has_spare_ = true;
    return r * std::cos(theta);
  }

 private:
  std::mt19937_64 rng_;
  double spare_ = 0;
  bool has_spare_ = false;
};

// Written whole or not at all (FileSink renames on commit).
inline Status write_text_file(const std::string& path, const std::string& text) {
  FileSink sink(path);
  LOOM_RETURN_IF_ERROR(sink.open());
  LOOM_RETURN_IF_ERROR(sink.write(text.data(), text.size()));
  return sink.commit();
}

}  // namespace loom::runtime::internal
