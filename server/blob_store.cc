#include "server/blob_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

namespace loom::server {
namespace {

constexpr size_t kMaxIdLength = 128;

const char* subdir(BlobKind kind) {
  return kind == BlobKind::kRequest ? "requests" : kind == BlobKind::kResult ? "results" : "variants";
}
const char* suffix(BlobKind kind) {
  return kind == BlobKind::kRequest ? ".req" : kind == BlobKind::kResult ? ".st.zst" : ".variant";
}

// errno -> Status, once, with the operation and the file. A missing file is
// NOT_FOUND for reads; for writes it means the directory vanished: INTERNAL.
Status io_error(int err, const std::string& what, const std::string& file, bool missing_is_not_found = false) {
  std::string msg = what + " " + file + ": " + std::strerror(err);
  if (err == ENOENT && missing_is_not_found) return not_found(msg);
  if (err == ENOSPC || err == EDQUOT) return resource_exhausted(msg);
  return internal_error(msg);
}

// Closes a descriptor when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  // Closes now, reporting the error (a late write error can surface here).
  int close() {
    int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

Status write_all(int fd, std::string_view bytes, const std::string& file) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error(errno, "write", file);
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return Status();
}

// Makes a rename in `dir` durable.
Status fsync_dir(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return io_error(errno, "open directory", dir);
  if (::fsync(fd.get()) != 0) return io_error(errno, "fsync directory", dir);
  return Status();
}

}  // namespace

Result<BlobStore> BlobStore::open(const std::string& dir, bool sync) {
  if (dir.empty()) return invalid_argument("blob store directory is empty");
  for (BlobKind kind : {BlobKind::kRequest, BlobKind::kResult, BlobKind::kVariant}) {
    std::string sub = dir + "/" + subdir(kind);
    std::error_code ec;
    std::filesystem::create_directories(sub, ec);
    if (ec) return internal_error("cannot create blob directory " + sub + ": " + ec.message());
    if (!std::filesystem::is_directory(sub, ec)) {
      return failed_precondition("blob directory " + sub + " exists but is not a directory");
    }
  }
  // Temporary files of puts cut short by a crash (".<id>.XXXXXX"): an hour
  // old, no put of any live process is still writing them.
  const auto stale = std::filesystem::file_time_type::clock::now() - std::chrono::hours(1);
  for (BlobKind kind : {BlobKind::kRequest, BlobKind::kResult, BlobKind::kVariant}) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir + "/" + subdir(kind), ec)) {
      std::error_code ignored;
      if (entry.path().filename().string().rfind('.', 0) == 0 && entry.last_write_time(ignored) < stale) {
        std::filesystem::remove(entry.path(), ignored);
      }
    }
  }
  return BlobStore(dir, sync);
}

bool BlobStore::valid_id(const std::string& id) {
  if (id.empty() || id.size() > kMaxIdLength) return false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string BlobStore::path(BlobKind kind, const std::string& id) const {
  if (!valid_id(id)) return "";
  return dir_ + "/" + subdir(kind) + "/" + id + suffix(kind);
}

Result<std::string> BlobStore::checked_path(BlobKind kind, const std::string& id) const {
  if (!valid_id(id)) {
    return invalid_argument("blob id '" + id.substr(0, kMaxIdLength) + "' is not 1.." +
                            std::to_string(kMaxIdLength) + " lowercase hex chars");
  }
  return path(kind, id);
}

Status BlobStore::put(BlobKind kind, const std::string& id, std::string_view bytes) const {
  auto target = checked_path(kind, id);
  if (!target.ok()) return target.status();
  std::string dir = dir_ + "/" + subdir(kind);
  // A unique name per writer, so concurrent puts of one id do not share a
  // temporary file; the last rename wins, each whole.
  std::string tmp = dir + "/." + id + ".XXXXXX";
  Fd fd(::mkostemp(tmp.data(), O_CLOEXEC));
  if (fd.get() < 0) return io_error(errno, "create temporary file", tmp);
  auto fail = [&](Status s) {
    ::unlink(tmp.c_str());
    return s;
  };
  // mkstemp creates 0600; blobs are read by this server only, but keep the
  // usual 0644 so an operator can inspect them.
  if (::fchmod(fd.get(), 0644) != 0) return fail(io_error(errno, "chmod", tmp));
  Status s = write_all(fd.get(), bytes, tmp);
  if (!s.ok()) return fail(s);
  if (sync_ && ::fsync(fd.get()) != 0) return fail(io_error(errno, "fsync", tmp));
  if (fd.close() != 0) return fail(io_error(errno, "close", tmp));
  if (::rename(tmp.c_str(), target->c_str()) != 0) return fail(io_error(errno, "rename to " + *target, tmp));
  return sync_ ? fsync_dir(dir) : Status();
}

Status BlobStore::link(BlobKind kind, const std::string& from, const std::string& to) const {
  LOOM_ASSIGN_OR_RETURN(std::string source, checked_path(kind, from));
  LOOM_ASSIGN_OR_RETURN(std::string target, checked_path(kind, to));
  // Linked under a temporary name, then renamed over the target: atomic,
  // like put().
  std::string tmp = dir_ + "/" + subdir(kind) + "/." + to + ".link";
  ::unlink(tmp.c_str());
  if (::link(source.c_str(), tmp.c_str()) != 0) {
    if (errno == ENOENT) return io_error(errno, "link blob", source, true);
    // A filesystem without hard links: copy instead.
    LOOM_ASSIGN_OR_RETURN(std::string bytes, get(kind, from));
    return put(kind, to, bytes);
  }
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    Status s = io_error(errno, "rename to " + target, tmp);
    ::unlink(tmp.c_str());
    return s;
  }
  return sync_ ? fsync_dir(dir_ + "/" + subdir(kind)) : Status();
}

Result<std::string> BlobStore::get(BlobKind kind, const std::string& id) const {
  LOOM_ASSIGN_OR_RETURN(std::string file, checked_path(kind, id));
  Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return io_error(errno, "open blob", file, true);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return io_error(errno, "stat blob", file);
  std::string out;
  out.resize(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::read(fd.get(), out.data() + done, out.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error(errno, "read blob", file);
    }
    if (n == 0) break;  // cannot shrink: puts replace by rename, never truncate
    done += static_cast<size_t>(n);
  }
  out.resize(done);
  return out;
}

Result<uint64_t> BlobStore::size(BlobKind kind, const std::string& id) const {
  LOOM_ASSIGN_OR_RETURN(std::string file, checked_path(kind, id));
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return io_error(errno, "stat blob", file, true);
  return static_cast<uint64_t>(st.st_size);
}

Status BlobStore::remove(BlobKind kind, const std::string& id) const {
  auto file = checked_path(kind, id);
  if (!file.ok()) return file.status();
  if (::unlink(file->c_str()) != 0) return io_error(errno, "remove blob", *file, true);
  return Status();
}

}  // namespace loom::server
