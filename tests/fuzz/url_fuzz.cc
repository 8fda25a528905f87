// Fuzz target: the text a client controls in a download and a submit:
// presigned URL path and query, Range headers, callback-style base URLs and
// the protocol header. Input: three fields separated by '\n'.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "transport/http_client.h"
#include "transport/http_range.h"
#include "transport/presign.h"
#include "transport/wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t a = in.find('\n');
  const std::string_view path = in.substr(0, a);
  const std::string_view rest = a == std::string_view::npos ? std::string_view() : in.substr(a + 1);
  const size_t b = rest.find('\n');
  const std::string_view query = rest.substr(0, b);
  const std::string_view header = b == std::string_view::npos ? std::string_view() : rest.substr(b + 1);
  (void)loom::transport::verify_presigned("fuzz-secret", "GET", path, query, 1700000000);
  for (uint64_t total : {uint64_t{0}, uint64_t{1}, uint64_t{1000}, ~uint64_t{0}}) {
    (void)loom::transport::parse_range(header, total);
  }
  (void)loom::transport::parse_base_url(std::string(path));
  (void)loom::transport::check_protocol_header(header);
  return 0;
}
