// BlobStore against real files in a temporary directory.
#include "server/blob_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <thread>

#include <sys/stat.h>

#include "tests/server/temp_dir.h"

namespace loom::server {
namespace {

using loom::testing::read_file_bytes;
using loom::testing::ServerTempDir;

namespace fs = std::filesystem;

const std::string kId = "0123456789abcdef0123456789abcdef";

BlobStore open_or_die(const std::string& dir) {
  auto s = BlobStore::open(dir);
  if (!s.ok()) throw std::runtime_error(s.status().to_string());
  return std::move(s).value();
}

// Names of the files in `dir`, sorted.
std::vector<std::string> listing(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(BlobStore, OpenCreatesRequestAndResultDirectories) {
  ServerTempDir tmp;
  std::string dir = tmp.file("data/blobs");
  BlobStore store = open_or_die(dir);
  EXPECT_EQ(store.dir(), dir);
  EXPECT_TRUE(fs::is_directory(dir + "/requests"));
  EXPECT_TRUE(fs::is_directory(dir + "/results"));
  EXPECT_TRUE(BlobStore::open(dir).ok());  // again: already there is fine
}

TEST(BlobStore, OpenFailsWhenTheDirectoryIsAFile) {
  ServerTempDir tmp;
  { std::ofstream(tmp.file("plain")) << "x"; }
  auto s = BlobStore::open(tmp.file("plain"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("plain"), std::string::npos) << s.status().message();
}

TEST(BlobStore, PathsFollowTheDocumentedLayout) {
  ServerTempDir tmp;
  BlobStore store = open_or_die(tmp.path());
  EXPECT_EQ(store.path(BlobKind::kResult, kId), tmp.path() + "/results/" + kId + ".st.zst");
  EXPECT_EQ(store.path(BlobKind::kRequest, kId), tmp.path() + "/requests/" + kId + ".req");
}

TEST(BlobStore, PutGetSizeRemoveRoundTrip) {
  ServerTempDir tmp;
  BlobStore store = open_or_die(tmp.path());
  std::string bytes("\x28\xb5\x2f\xfd\0\0binary\xff", 13);
  ASSERT_TRUE(store.put(BlobKind::kResult, kId, bytes).ok());
  ASSERT_TRUE(store.put(BlobKind::kRequest, kId, "request body").ok());

  auto got = store.get(BlobKind::kResult, kId);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(got.value(), bytes);
  EXPECT_EQ(read_file_bytes(store.path(BlobKind::kResult, kId)), bytes);
  auto size = store.size(BlobKind::kResult, kId);
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(size.value(), 13u);
  EXPECT_EQ(store.get(BlobKind::kRequest, kId).value(), "request body");  // kinds are separate

  ASSERT_TRUE(store.remove(BlobKind::kResult, kId).ok());
  EXPECT_EQ(store.get(BlobKind::kResult, kId).status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(store.path(BlobKind::kResult, kId)));
  EXPECT_EQ(store.get(BlobKind::kRequest, kId).value(), "request body");
}

TEST(BlobStore, EmptyBlobIsStoredAndRead) {
  ServerTempDir tmp;
  BlobStore store = open_or_die(tmp.path());
  ASSERT_TRUE(store.put(BlobKind::kRequest, "ab", "").ok());
  EXPECT_EQ(store.get(BlobKind::kRequest, "ab").value(), "");
  EXPECT_EQ(store.size(BlobKind::kRequest, "ab").value(), 0u);
}

TEST(BlobStore, PutReplacesAndLeavesNoTemporaryFiles) {
  ServerTempDir tmp;
  BlobStore store = open_or_die(tmp.path());
  ASSERT_TRUE(store.put(BlobKind::kResult, kId, std::string(100000, 'a')).ok());
  ASSERT_TRUE(store.put(BlobKind::kResult, kId, "short").ok());
  EXPECT_EQ(store.get(BlobKind::kResult, kId).value(), "short");
  EXPECT_EQ(store.size(BlobKind::kResult, kId).value(), 5u);
  EXPECT_EQ(listing(tmp.path() + "/results"), std::vector<std::string>{kId + ".st.zst"});
}

TEST(BlobStore, ReadersNeverSeeAPartialPut) {
  // A writer alternates two full-size versions; a reader must always get one
  // of them whole (rename is atomic), never a prefix or a mix.
  ServerTempDir tmp;
  BlobStore store = open_or_die(tmp.path());
  constexpr size_t kSize = 1 << 20;
  ASSERT_TRUE(store.put(BlobKind::kResult, kId, std::string(kSize, 'a')).ok());
  std::atomic<bool> done{false};
  std::atomic<int> writes{0};
  std::thread writer([&] {
    for (int i = 0; i < 20; ++i) {
      if (store.put(BlobKind::kResult, kId, std::string(kSize, i % 2 ? 'a' : 'b')).ok()) ++writes;
    }
    done = true;
  });
  int reads = 0, torn = 0;
  while (!done || reads == 0) {
    auto got = store.get(BlobKind::kResult, kId);
    ASSERT_TRUE(got.ok()) << got.status().to_string();
    const std::string& s = got.value();
    bool whole = s.size() == kSize && s.find_first_not_of(s[0]) == std::string::npos;
    if (!whole) ++torn;
    ++reads;
  }
  writer.join();
  EXPECT_EQ(writes.load(), 20);
  EXPECT_EQ(torn, 0) << "of " << reads << " reads";
  EXPECT_EQ(listing(tmp.path() + "/results"), std::vector<std::string>{kId + ".st.zst"});
}

TEST(BlobStore, InvalidIdsAreRejectedWithoutTouchingTheDisk) {
  ServerTempDir tmp;
  BlobStore store = open_or_die(tmp.path() + "/data");
  const std::vector<std::string> bad_ids = {"../x", "..", "", "a/b", "ABCDEF", "abc.def", "abc\n",
                                           std::string("ab\0cd", 5),
                                           std::string(129, 'a'), "/etc/passwd"};
  for (const std::string& bad : bad_ids) {
    SCOPED_TRACE("id '" + bad + "'");
    EXPECT_EQ(store.put(BlobKind::kResult, bad, "x").code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(store.get(BlobKind::kResult, bad).status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(store.size(BlobKind::kRequest, bad).status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(store.remove(BlobKind::kRequest, bad).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(store.path(BlobKind::kResult, bad), "");
  }
  EXPECT_TRUE(listing(tmp.path() + "/data/results").empty());
  EXPECT_EQ(listing(tmp.path()), std::vector<std::string>{"data"});  // nothing escaped to the parent
  EXPECT_TRUE(BlobStore::valid_id(std::string(128, 'f')));
}

TEST(BlobStore, MissingBlobIsNotFound) {
  ServerTempDir tmp;
  BlobStore store = open_or_die(tmp.path());
  EXPECT_EQ(store.get(BlobKind::kResult, kId).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store.size(BlobKind::kResult, kId).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store.remove(BlobKind::kResult, kId).code(), StatusCode::kNotFound);
  auto s = store.get(BlobKind::kRequest, kId);
  EXPECT_NE(s.status().message().find(kId), std::string::npos) << s.status().message();
}

TEST(BlobStore, PutIntoARemovedDirectoryFailsWithContext) {
  ServerTempDir tmp;
  BlobStore store = open_or_die(tmp.file("gone"));
  fs::remove_all(tmp.file("gone"));
  Status s = store.put(BlobKind::kResult, kId, "x");
  EXPECT_EQ(s.code(), StatusCode::kInternal) << s.to_string();
  EXPECT_NE(s.message().find("gone/results"), std::string::npos) << s.message();
}

TEST(BlobStore, LinkSharesTheFileWithoutCopyingAndOutlivesTheSource) {
  ServerTempDir tmp;
  BlobStore store = open_or_die(tmp.file("blobs"));
  const std::string other = "fedcba9876543210fedcba9876543210";
  ASSERT_TRUE(store.put(BlobKind::kResult, kId, std::string(3 << 20, 'r')).ok());
  ASSERT_TRUE(store.link(BlobKind::kResult, kId, other).ok());
  struct stat a {}, b {};
  ASSERT_EQ(::stat(store.path(BlobKind::kResult, kId).c_str(), &a), 0);
  ASSERT_EQ(::stat(store.path(BlobKind::kResult, other).c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino) << "a copy, not a link";
  EXPECT_EQ(b.st_nlink, 2u);
  ASSERT_TRUE(store.remove(BlobKind::kResult, kId).ok());
  EXPECT_EQ(store.get(BlobKind::kResult, other).value(), std::string(3 << 20, 'r'));
  EXPECT_EQ(store.link(BlobKind::kResult, kId, other).code(), StatusCode::kNotFound);
  EXPECT_EQ(store.link(BlobKind::kResult, "../x", other).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(listing(tmp.file("blobs/results")), std::vector<std::string>{other + ".st.zst"}) << "a temporary link was left";
}

}  // namespace
}  // namespace loom::server
