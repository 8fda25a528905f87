#include "transport/http_range.h"

#include <limits>
#include <vector>

#include "transport/internal/printable.h"

namespace loom::transport {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// Decimal digits; saturates at UINT64_MAX (a position past any real size
// behaves like one just past the end). nullopt when empty or not digits.
std::optional<uint64_t> parse_position(std::string_view s) {
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    uint64_t d = static_cast<uint64_t>(c - '0');
    v = v > (kMax - d) / 10 ? kMax : v * 10 + d;
  }
  return v;
}

Status malformed(std::string_view header, std::string_view why) {
  return invalid_argument("malformed range '" + internal::printable(header) + "': " + std::string(why));
}

Status unsatisfiable(std::string_view header, uint64_t size) {
  return invalid_argument(std::string(kRangeNotSatisfiable) + ": '" + internal::printable(header) + "' for " +
                          std::to_string(size) + " bytes");
}

}  // namespace

bool is_range_not_satisfiable(const Status& status) {
  return status.code() == StatusCode::kInvalidArgument &&
         status.message().compare(0, kRangeNotSatisfiable.size(), kRangeNotSatisfiable) == 0;
}

Result<std::optional<ByteRange>> parse_range(std::string_view header, uint64_t size) {
  std::string_view h = trim(header);
  if (h.empty()) return std::optional<ByteRange>();
  size_t eq = h.find('=');
  if (eq == std::string_view::npos) return malformed(header, "expected 'bytes=...'");
  if (!iequals(trim(h.substr(0, eq)), "bytes")) return std::optional<ByteRange>();

  // range-set = 1#range-spec: empty list elements are allowed and ignored.
  std::vector<std::string_view> specs;
  std::string_view rest = h.substr(eq + 1);
  while (true) {
    size_t comma = rest.find(',');
    std::string_view spec = trim(rest.substr(0, comma));
    if (!spec.empty()) specs.push_back(spec);
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  if (specs.empty()) return malformed(header, "no range given");
  if (specs.size() > 1) {
    return invalid_argument("multiple ranges are not supported: '" + internal::printable(header) + "' (ask for one range)");
  }

  std::string_view spec = specs[0];
  size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return malformed(header, "expected A-B, A- or -N");
  std::string_view first_text = spec.substr(0, dash);
  std::string_view last_text = spec.substr(dash + 1);

  if (first_text.empty()) {  // suffix: the last N bytes
    std::optional<uint64_t> n = parse_position(last_text);
    if (!n) return malformed(header, "suffix length is not a decimal number");
    if (*n == 0 || size == 0) return unsatisfiable(header, size);
    uint64_t len = *n < size ? *n : size;
    return std::optional<ByteRange>(ByteRange{size - len, size - 1});
  }

  std::optional<uint64_t> first = parse_position(first_text);
  if (!first) return malformed(header, "first position is not a decimal number");
  uint64_t last = std::numeric_limits<uint64_t>::max();
  if (!last_text.empty()) {
    std::optional<uint64_t> l = parse_position(last_text);
    if (!l) return malformed(header, "last position is not a decimal number");
    if (*l < *first) return malformed(header, "last position is before the first");
    last = *l;
  }
  if (*first >= size) return unsatisfiable(header, size);
  if (last >= size) last = size - 1;
  return std::optional<ByteRange>(ByteRange{*first, last});
}

std::string content_range(const ByteRange& range, uint64_t size) {
  return "bytes " + std::to_string(range.first) + "-" + std::to_string(range.last) + "/" + std::to_string(size);
}

std::string content_range_unsatisfiable(uint64_t size) { return "bytes */" + std::to_string(size); }

}  // namespace loom::transport
