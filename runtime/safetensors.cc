#include "runtime/safetensors.h"

#include <ATen/ATen.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "runtime/internal/safetensors_stream.h"

// Tensor bytes are copied as they lie in memory; safetensors stores them
// little-endian. A big-endian host would need byte swapping here.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes a little-endian host");

namespace loom::runtime {
using namespace internal;
namespace {

using Json = nlohmann::json;

struct DtypeInfo {
  const char* name;
  at::ScalarType type;
  uint64_t itemsize;
};

constexpr DtypeInfo kDtypes[] = {
    {"F64", at::kDouble, 8}, {"F32", at::kFloat, 4}, {"F16", at::kHalf, 2},  {"BF16", at::kBFloat16, 2},
    {"I64", at::kLong, 8},   {"I32", at::kInt, 4},   {"I16", at::kShort, 2}, {"I8", at::kChar, 1},
    {"U8", at::kByte, 1},    {"BOOL", at::kBool, 1},
};

// The torch type of a dtype the header parser accepted.
at::ScalarType scalar_type(const SafetensorsDtype* dtype) {
  for (const DtypeInfo& d : kDtypes) {
    if (std::string_view(dtype->name) == d.name) return d.type;
  }
  return at::kByte;  // unreachable: both tables list the same names
}

const DtypeInfo* dtype_by_type(at::ScalarType type) {
  for (const DtypeInfo& d : kDtypes) {
    if (type == d.type) return &d;
  }
  return nullptr;
}

std::string le64_bytes(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return out;
}

Status io_error(const std::string& what, const std::string& path, int err) {
  std::string msg = path + ": " + what + ": " + std::strerror(err);
  switch (err) {
    case ENOENT:
    case ENOTDIR: return not_found(msg);
    case EACCES:
    case EPERM:
    case EROFS: return Status(StatusCode::kPermissionDenied, msg);
    case ENOSPC:
    case EDQUOT:
    case EFBIG: return resource_exhausted(msg);
    default: return invalid_argument(msg);
  }
}

// Allocates each tensor and lets `fill` copy its bytes in; checks BOOL bytes,
// since a bool other than 0 or 1 is undefined behaviour in kernels.
using FillFn = std::function<Status(const SafetensorsEntry&, void* dst)>;

Result<SafetensorsFile> materialize(const std::string& label, SafetensorsHeader header, const FillFn& fill) {
  SafetensorsFile out;
  out.metadata = std::move(header.metadata);
  out.tensors.reserve(header.entries.size());
  for (const SafetensorsEntry& e : header.entries) {
    at::Tensor t;
    try {
      t = at::empty(e.shape, at::TensorOptions().dtype(scalar_type(e.dtype)));
    } catch (const std::exception& ex) {  // c10::Error or std::bad_alloc
      return resource_exhausted(label + ": tensor " + json_quoted(e.name) + ": cannot allocate " +
                                std::to_string(e.end - e.begin) + " bytes: " + ex.what());
    }
    size_t nbytes = e.end - e.begin;
    if (nbytes > 0) {
      LOOM_RETURN_IF_ERROR(fill(e, t.data_ptr()));
      if (scalar_type(e.dtype) == at::kBool) {
        const auto* p = static_cast<const unsigned char*>(t.data_ptr());
        auto bad = std::find_if(p, p + nbytes, [](unsigned char b) { return b > 1; });
        if (bad != p + nbytes) {
          return invalid_argument(label + ": tensor " + json_quoted(e.name) + ": BOOL byte " +
                                  std::to_string(bad - p) + " is " + std::to_string(*bad) + ", not 0 or 1");
        }
      }
    }
    out.tensors.push_back({e.name, std::move(t)});
  }
  return out;
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

// Checks a writer's tensor and returns its header layout.
Result<internal::TensorLayout> layout_of(const NamedTensor& nt) {
  if (!nt.tensor.defined()) return invalid_argument("tensor " + json_quoted(nt.name) + " is undefined");
  if (nt.tensor.layout() != at::kStrided) {
    return invalid_argument("tensor " + json_quoted(nt.name) + ": only dense tensors can be written, got layout " +
                            c10::str(nt.tensor.layout()));
  }
  return internal::TensorLayout{nt.name, nt.tensor.scalar_type(), nt.tensor.sizes().vec()};
}

Result<std::vector<internal::TensorLayout>> layouts_of(const std::vector<NamedTensor>& tensors) {
  std::vector<internal::TensorLayout> layouts;
  layouts.reserve(tensors.size());
  for (const NamedTensor& nt : tensors) {
    LOOM_ASSIGN_OR_RETURN(auto layout, layout_of(nt));
    layouts.push_back(std::move(layout));
  }
  return layouts;
}

// Passes each tensor's bytes, CPU and contiguous, to `sink` one at a time so
// at most one converted copy is alive.
Status for_each_tensor_bytes(const std::vector<NamedTensor>& tensors,
                             const std::function<Status(const void*, size_t)>& sink) {
  for (const NamedTensor& nt : tensors) {
    at::Tensor cpu;
    try {
      cpu = nt.tensor.detach().to(at::kCPU).contiguous();
    } catch (const std::exception& e) {
      return invalid_argument("tensor " + json_quoted(nt.name) + ": cannot copy to CPU: " + e.what());
    }
    size_t nbytes = cpu.numel() * cpu.element_size();
    if (nbytes > 0) LOOM_RETURN_IF_ERROR(sink(cpu.data_ptr(), nbytes));
  }
  return Status::ok_status();
}

}  // namespace

at::Tensor SafetensorsFile::find(const std::string& name) const {
  for (const NamedTensor& nt : tensors) {
    if (nt.name == name) return nt.tensor;
  }
  return at::Tensor();
}

Result<SafetensorsFile> read_safetensors_buffer(const std::string& bytes, const SafetensorsLimits& limits) {
  const std::string label = "<buffer>";
  LOOM_ASSIGN_OR_RETURN(uint64_t n, check_safetensors_header_length(label, bytes.data(), bytes.size(), limits));
  const char* data = bytes.data() + 8 + n;
  uint64_t data_size = bytes.size() - 8 - n;
  LOOM_ASSIGN_OR_RETURN(SafetensorsHeader header, parse_safetensors_header(label, bytes.data() + 8, n, data_size, limits));
  return materialize(label, std::move(header), [data](const SafetensorsEntry& e, void* dst) {
    std::memcpy(dst, data + e.begin, e.end - e.begin);
    return Status::ok_status();
  });
}

namespace {
struct OpenedFile {
  std::unique_ptr<std::FILE, FileCloser> file;
  SafetensorsHeader header;
  uint64_t data_start = 0;
};

// Opens `path` and reads and checks its header.
Result<OpenedFile> open_safetensors(const std::string& path, const SafetensorsLimits& limits) {
  OpenedFile out;
  out.file.reset(std::fopen(path.c_str(), "rb"));
  std::FILE* f = out.file.get();
  if (f == nullptr) return io_error("cannot open", path, errno);
  struct stat st {};
  if (fstat(fileno(f), &st) != 0) return io_error("cannot stat", path, errno);
  if (!S_ISREG(st.st_mode)) return invalid_argument(path + ": not a regular file");
  uint64_t file_size = static_cast<uint64_t>(st.st_size);

  char prefix[8] = {};
  if (file_size >= 8 && std::fread(prefix, 1, 8, f) != 8) {
    return invalid_argument(path + ": cannot read the header length (file changed while reading?)");
  }
  LOOM_ASSIGN_OR_RETURN(uint64_t n, check_safetensors_header_length(path, prefix, file_size, limits));
  std::string text(n, '\0');  // n <= file size and max_header_bytes
  if (n > 0 && std::fread(text.data(), 1, n, f) != n) {
    return invalid_argument(path + ": cannot read the " + std::to_string(n) +
                            "-byte header (file changed while reading?)");
  }
  out.data_start = 8 + n;
  LOOM_ASSIGN_OR_RETURN(out.header,
                        parse_safetensors_header(path, text.data(), text.size(), file_size - out.data_start, limits));
  return out;
}
}  // namespace

Result<SafetensorsFile> read_safetensors_shapes(const std::string& path, const SafetensorsLimits& limits) {
  LOOM_ASSIGN_OR_RETURN(OpenedFile opened, open_safetensors(path, limits));
  SafetensorsFile out;
  out.metadata = std::move(opened.header.metadata);
  for (const SafetensorsEntry& e : opened.header.entries) {
    out.tensors.push_back({e.name, at::empty(e.shape, at::TensorOptions().dtype(scalar_type(e.dtype)).device(at::kMeta))});
  }
  return out;
}

Result<SafetensorsFile> read_safetensors_file(const std::string& path, const SafetensorsLimits& limits) {
  LOOM_ASSIGN_OR_RETURN(OpenedFile opened, open_safetensors(path, limits));
  const uint64_t data_start = opened.data_start;
  SafetensorsHeader header = std::move(opened.header);
  std::unique_ptr<std::FILE, FileCloser> file = std::move(opened.file);
  std::FILE* f = file.get();
  return materialize(path, std::move(header), [&](const SafetensorsEntry& e, void* dst) {
    size_t nbytes = e.end - e.begin;
    if (fseeko(f, static_cast<off_t>(data_start + e.begin), SEEK_SET) != 0 ||
        std::fread(dst, 1, nbytes, f) != nbytes) {
      return invalid_argument(path + ": tensor " + json_quoted(e.name) + ": cannot read " + std::to_string(nbytes) +
                              " bytes at offset " + std::to_string(data_start + e.begin) +
                              " (file changed while reading?)");
    }
    return Status::ok_status();
  });
}

namespace {
// One mapping, unmapped when the last tensor viewing it goes.
struct Mapping {
  void* base = MAP_FAILED;
  size_t size = 0;
  ~Mapping() {
    if (base != MAP_FAILED) munmap(base, size);
  }
};
}  // namespace

Result<SafetensorsFile> map_safetensors_file(const std::string& path, const SafetensorsLimits& limits) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error("cannot open", path, errno);
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return io_error("cannot stat", path, err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return invalid_argument(path + ": not a regular file");
  }
  auto map = std::make_shared<Mapping>();
  map->size = static_cast<size_t>(st.st_size);
  if (map->size < 8) {
    ::close(fd);
    char prefix[8] = {};
    return check_safetensors_header_length(path, prefix, map->size, limits).status();
  }
  // Private and writable: a stray in-place write copies a page instead of
  // faulting or changing the file.
  map->base = mmap(nullptr, map->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  int err = errno;
  ::close(fd);
  if (map->base == MAP_FAILED) return io_error("cannot map", path, err);
  const char* bytes = static_cast<const char*>(map->base);
  LOOM_ASSIGN_OR_RETURN(uint64_t n, check_safetensors_header_length(path, bytes, map->size, limits));
  const uint64_t data_start = 8 + n;
  LOOM_ASSIGN_OR_RETURN(SafetensorsHeader header,
                        parse_safetensors_header(path, bytes + 8, n, map->size - data_start, limits));
  SafetensorsFile out;
  out.metadata = std::move(header.metadata);
  out.tensors.reserve(header.entries.size());
  for (const SafetensorsEntry& e : header.entries) {
    const at::ScalarType type = scalar_type(e.dtype);
    if (type == at::kBool) return invalid_argument(path + ": tensor " + json_quoted(e.name) + ": BOOL tensors cannot be mapped");
    char* at_ptr = static_cast<char*>(map->base) + data_start + e.begin;
    at::Tensor t = at::from_blob(at_ptr, e.shape, [map](void*) {}, at::TensorOptions().dtype(type));
    out.tensors.push_back({e.name, std::move(t)});
  }
  return out;
}

Result<std::string> encode_safetensors(const std::vector<NamedTensor>& tensors,
                                       const std::map<std::string, std::string>& metadata) {
  LOOM_ASSIGN_OR_RETURN(auto layouts, layouts_of(tensors));
  LOOM_ASSIGN_OR_RETURN(std::string out, internal::encode_safetensors_header(layouts, metadata));
  uint64_t total = out.size();
  for (const NamedTensor& nt : tensors) total += nt.tensor.numel() * nt.tensor.element_size();
  out.reserve(total);
  LOOM_RETURN_IF_ERROR(for_each_tensor_bytes(tensors, [&out](const void* p, size_t n) {
    out.append(static_cast<const char*>(p), n);
    return Status::ok_status();
  }));
  return out;
}

Status write_safetensors_file(const std::string& path, const std::vector<NamedTensor>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  LOOM_ASSIGN_OR_RETURN(auto layouts, layouts_of(tensors));
  LOOM_ASSIGN_OR_RETURN(std::string header, internal::encode_safetensors_header(layouts, metadata));
  internal::FileSink sink(path);
  LOOM_RETURN_IF_ERROR(sink.open());
  LOOM_RETURN_IF_ERROR(sink.write(header.data(), header.size()));
  LOOM_RETURN_IF_ERROR(
      for_each_tensor_bytes(tensors, [&sink](const void* p, size_t n) { return sink.write(p, n); }));
  return sink.commit();
}

namespace internal {

uint64_t safetensors_itemsize(c10::ScalarType dtype) {
  const DtypeInfo* d = dtype_by_type(dtype);
  return d ? d->itemsize : 0;
}

Result<std::string> encode_safetensors_header(const std::vector<TensorLayout>& layouts,
                                              const std::map<std::string, std::string>& metadata) {
  // Built piece by piece: nlohmann's ordered_json looks keys up linearly,
  // which is quadratic for checkpoints with many tensors.
  std::string text = "{";
  std::set<std::string> names;
  try {
    if (!metadata.empty()) text += "\"__metadata__\":" + Json(metadata).dump();
    uint64_t offset = 0;
    for (const TensorLayout& l : layouts) {
      std::string where = "tensor " + json_quoted(l.name) + ": ";
      if (l.name.empty()) return invalid_argument("tensor name is empty");
      if (l.name == kSafetensorsMetadataKey) return invalid_argument(where + "name is reserved for metadata");
      if (!names.insert(l.name).second) return invalid_argument(where + "name appears twice");
      const DtypeInfo* d = dtype_by_type(l.dtype);
      if (d == nullptr) {
        return invalid_argument(where + "dtype " + c10::toString(l.dtype) +
                                " has no safetensors equivalent (supported: " + supported_dtypes() + ")");
      }
      uint64_t nbytes = 0;
      if (!byte_size(l.shape, d->itemsize, &nbytes) || offset + nbytes > kMaxTensorBytes) {
        return invalid_argument(where + "shape " + shape_str(l.shape) + " is negative or too large");
      }
      Json entry = {{"dtype", d->name}, {"shape", l.shape}, {"data_offsets", {offset, offset + nbytes}}};
      if (text.size() > 1) text += ",";
      text += Json(l.name).dump() + ":" + entry.dump();
      offset += nbytes;
    }
  } catch (const Json::exception& e) {  // a name or metadata string that is not UTF-8
    return invalid_argument(std::string("cannot encode safetensors header: ") + e.what());
  }
  text += "}";
  text.append((8 - text.size() % 8) % 8, ' ');
  return le64_bytes(text.size()) + text;
}

FileSink::FileSink(std::string path)
    : path_(std::move(path)), partial_path_(path_ + ".partial." + std::to_string(getpid())) {}

FileSink::~FileSink() {
  if (file_ != nullptr) std::fclose(file_);
  if (!committed_) std::remove(partial_path_.c_str());
}

Status FileSink::open() {
  file_ = std::fopen(partial_path_.c_str(), "wb");
  if (file_ == nullptr) return io_error("cannot create", partial_path_, errno);
  return Status::ok_status();
}

Status FileSink::write(const void* data, size_t size) {
  if (file_ == nullptr) return failed_precondition(path_ + ": write to a file that is not open");
  if (std::fwrite(data, 1, size, file_) != size) return io_error("cannot write", partial_path_, errno);
  return Status::ok_status();
}

Status FileSink::commit() {
  if (file_ == nullptr) return failed_precondition(path_ + ": commit of a file that is not open");
  int flush_error = std::fflush(file_) != 0 ? errno : 0;
  int close_error = std::fclose(file_) != 0 ? errno : 0;
  file_ = nullptr;
  if (flush_error || close_error) {
    return io_error("cannot write", partial_path_, flush_error ? flush_error : close_error);
  }
  if (std::rename(partial_path_.c_str(), path_.c_str()) != 0) {
    return io_error("cannot rename into place", path_, errno);
  }
  committed_ = true;
  return Status::ok_status();
}

}  // namespace internal
}  // namespace loom::runtime
