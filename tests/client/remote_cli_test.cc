// The remote `loom` commands as a user runs them against a real loom-server:
// trace --remote (blocking and --no-wait), status, wait, result, cancel,
// jobs, models, and the documented exit codes.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <regex>

#include "runtime/gpt2_config.h"
#include "runtime/safetensors.h"
#include "tests/client/remote_test_util.h"

namespace loom::client {
namespace {

using loom::testing::Ran;
using loom::testing::run_loom;
using loom::testing::ServerProcess;
using loom::testing::TempDir;

std::string last_line(const std::string& s) {
  std::string t = s;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  return t.substr(t.rfind('\n') == std::string::npos ? 0 : t.rfind('\n') + 1);
}

bool same_bytes(const at::Tensor& a, const at::Tensor& b) {
  return a.defined() && b.defined() && a.sizes() == b.sizes() && a.scalar_type() == b.scalar_type() &&
         std::memcmp(a.data_ptr(), b.data_ptr(), a.nbytes()) == 0;
}

class RemoteCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    runtime::Gpt2Config slow = runtime::Gpt2Config::tiny();
    slow.n_layer = 4;
    slow.n_embd = 256;
    slow.n_head = 4;
    ASSERT_TRUE(runtime::write_random_gpt2_checkpoint(dir_->file("tiny"), runtime::Gpt2Config::tiny(), 3).ok());
    ASSERT_TRUE(runtime::write_random_gpt2_checkpoint(dir_->file("slow"), slow, 4).ok());
    ASSERT_TRUE(runtime::write_safetensors_file(dir_->file("in.safetensors"),
                                                {{"0", at::arange(12, at::kLong).view({2, 6})}})
                    .ok());
    ASSERT_TRUE(runtime::write_safetensors_file(dir_->file("slow_in.safetensors"),
                                                {{"0", at::arange(64 * 128, at::kLong).remainder(1000).view({64, 128})}})
                    .ok());
    server_ = new ServerProcess({{"gpt2-tiny", dir_->file("tiny")}, {"gpt2-slow", dir_->file("slow")}}, dir_->path());
    key_ = new std::string(loom::testing::create_key("cli", server_->data_dir()));
  }
  static void TearDownTestSuite() {
    delete key_;
    delete server_;
    delete dir_;
  }
  static std::string env() { return "LOOM_HOST=" + server_->url() + " LOOM_API_KEY=" + *key_; }
  static std::string submit_tiny() {
    Ran r = run_loom("trace gpt2-tiny --remote --no-wait --inputs " + dir_->file("in.safetensors") + " --save output",
                     env());
    EXPECT_EQ(r.code, 0) << r.output;
    return last_line(r.stdout_only);
  }

  static TempDir* dir_;
  static ServerProcess* server_;
  static std::string* key_;
};

TempDir* RemoteCliTest::dir_ = nullptr;
ServerProcess* RemoteCliTest::server_ = nullptr;
std::string* RemoteCliTest::key_ = nullptr;

TEST_F(RemoteCliTest, ModelsListsTheServersModels) {
  Ran r = run_loom("models", env());
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.stdout_only.find("gpt2-tiny"), std::string::npos) << r.output;
  EXPECT_NE(r.stdout_only.find("gpt2-slow"), std::string::npos) << r.output;
  Ran j = run_loom("models --json", env());
  ASSERT_EQ(j.code, 0) << j.output;
  auto parsed = nlohmann::json::parse(j.stdout_only);
  EXPECT_EQ(parsed["models"].size(), 2u);
}

TEST_F(RemoteCliTest, RemoteTraceWritesTheSameBytesAsALocalOne) {
  std::string specs = " --save transformer.h.0.output.0 --save lm_head.input.0 --save output";
  Ran remote = run_loom("trace gpt2-tiny --remote --inputs " + dir_->file("in.safetensors") + specs + " -o " +
                            dir_->file("remote.safetensors"),
                        env());
  ASSERT_EQ(remote.code, 0) << remote.output;
  EXPECT_NE(remote.output.find("COMPLETED in"), std::string::npos) << remote.output;  // the status display (stderr)
  Ran local = run_loom("trace " + dir_->file("tiny") + " --inputs " + dir_->file("in.safetensors") + specs + " -o " +
                       dir_->file("local.safetensors"));
  ASSERT_EQ(local.code, 0) << local.output;
  EXPECT_EQ(remote.stdout_only, local.stdout_only);  // the same tensor summary lines
  auto a = loom::testing::read_or_die(dir_->file("remote.safetensors"));
  auto b = loom::testing::read_or_die(dir_->file("local.safetensors"));
  ASSERT_EQ(a.tensors.size(), 3u);
  for (const auto& nt : b.tensors) EXPECT_TRUE(same_bytes(a.find(nt.name), nt.tensor)) << nt.name;
  EXPECT_EQ(a.metadata.at("model"), "gpt2-tiny");
  EXPECT_EQ(a.metadata.at("job_id").size(), 32u);
}

// --grad SPEC --loss lm saves grad:SPEC; --cache saves each module's output.
TEST_F(RemoteCliTest, GradAndCacheFlagsWriteTheSameBytesRemotelyAsLocally) {
  const std::string flags = " --inputs " + dir_->file("in.safetensors") +
                            " --grad transformer.h.0.output.0 --grad transformer.h.1.output.0 --loss lm"
                            " --cache transformer.ln_f --save output";
  Ran remote = run_loom("trace gpt2-tiny --remote" + flags + " -o " + dir_->file("grad_remote.safetensors"), env());
  ASSERT_EQ(remote.code, 0) << remote.output;
  Ran local = run_loom("trace " + dir_->file("tiny") + flags + " -o " + dir_->file("grad_local.safetensors"));
  ASSERT_EQ(local.code, 0) << local.output;
  auto a = loom::testing::read_or_die(dir_->file("grad_remote.safetensors"));
  auto b = loom::testing::read_or_die(dir_->file("grad_local.safetensors"));
  ASSERT_EQ(b.tensors.size(), 4u);
  for (const auto& nt : b.tensors) EXPECT_TRUE(same_bytes(a.find(nt.name), nt.tensor)) << nt.name;
  const at::Tensor g0 = b.find("grad:transformer.h.0.output.0");
  ASSERT_TRUE(g0.defined());
  EXPECT_EQ(g0.sizes(), (std::vector<int64_t>{2, 6, 64}));
  EXPECT_GT(g0.abs().max().item<double>(), 0.0);
  EXPECT_TRUE(b.find("transformer.ln_f.output").defined());
  // The flags need each other.
  Ran no_loss = run_loom("trace " + dir_->file("tiny") + " --inputs " + dir_->file("in.safetensors") +
                         " --grad transformer.h.0.output.0 -o " + dir_->file("x.safetensors"));
  EXPECT_EQ(no_loss.code, 2) << no_loss.output;
  EXPECT_NE(no_loss.output.find("--loss lm"), std::string::npos) << no_loss.output;
}

TEST_F(RemoteCliTest, NoWaitPrintsTheJobIdLastThenStatusWaitResultCancelJobs) {
  std::string id = submit_tiny();
  ASSERT_TRUE(std::regex_match(id, std::regex("[0-9a-f]{32}"))) << id;

  Ran waited = run_loom("wait " + id, env());
  EXPECT_EQ(waited.code, 0) << waited.output;
  EXPECT_EQ(last_line(waited.stdout_only), id + " COMPLETED");

  Ran st = run_loom("status " + id, env());
  EXPECT_EQ(st.code, 0) << st.output;
  EXPECT_NE(st.stdout_only.find(id + " COMPLETED"), std::string::npos) << st.output;
  Ran js = run_loom("status " + id + " --json", env());
  ASSERT_EQ(js.code, 0) << js.output;
  auto snap = nlohmann::json::parse(js.stdout_only);
  EXPECT_EQ(snap["id"], id);
  EXPECT_EQ(snap["state"], "COMPLETED");

  Ran res = run_loom("result " + id + " -o " + dir_->file(id + ".safetensors"), env());
  ASSERT_EQ(res.code, 0) << res.output;
  auto file = loom::testing::read_or_die(dir_->file(id + ".safetensors"));
  EXPECT_EQ(file.find("output").sizes(), (std::vector<int64_t>{2, 6, 1000}));
  EXPECT_EQ(file.metadata.at("job_id"), id);

  Ran cancelled = run_loom("cancel " + id, env());
  EXPECT_EQ(cancelled.code, 0) << cancelled.output;
  EXPECT_EQ(last_line(cancelled.stdout_only), id + " COMPLETED");  // it had already finished

  Ran jobs = run_loom("jobs", env());
  EXPECT_EQ(jobs.code, 0) << jobs.output;
  EXPECT_NE(jobs.stdout_only.find(id), std::string::npos) << jobs.output;
}

TEST_F(RemoteCliTest, FlagsWorkWithoutTheEnvironment) {
  Ran r = run_loom("models --host " + server_->url() + " --api-key " + *key_, "env -u LOOM_HOST -u LOOM_API_KEY");
  EXPECT_EQ(r.code, 0) << r.output;
}

TEST_F(RemoteCliTest, WaitTimesOutThenCancelledJobExitsNine) {
  Ran sub = run_loom("trace gpt2-slow --remote --no-wait --inputs " + dir_->file("slow_in.safetensors") +
                         " --save output",
                     env());
  ASSERT_EQ(sub.code, 0) << sub.output;
  std::string id = last_line(sub.stdout_only);
  Ran timed_out = run_loom("wait " + id + " --timeout 0.05", env());
  EXPECT_EQ(timed_out.code, 8) << timed_out.output;
  EXPECT_NE(timed_out.output.find("loom cancel " + id), std::string::npos) << timed_out.output;
  Ran cancelled = run_loom("cancel " + id, env());
  EXPECT_EQ(cancelled.code, 0) << cancelled.output;
  Ran waited = run_loom("wait " + id, env());
  EXPECT_EQ(waited.code, 9) << waited.output;
  EXPECT_EQ(last_line(waited.stdout_only), id + " CANCELLED");
  Ran result = run_loom("result " + id + " -o " + dir_->file("x.safetensors"), env());
  EXPECT_EQ(result.code, 9) << result.output;
}

TEST_F(RemoteCliTest, ExitCodesSayWhatWentWrong) {
  const std::string in = " --inputs " + dir_->file("in.safetensors");
  Ran no_host = run_loom("jobs", "env -u LOOM_HOST LOOM_API_KEY=" + *key_);
  EXPECT_EQ(no_host.code, 5) << no_host.output;
  EXPECT_NE(no_host.output.find("LOOM_HOST"), std::string::npos) << no_host.output;

  Ran down = run_loom("jobs --host http://127.0.0.1:1", env());
  EXPECT_EQ(down.code, 5) << down.output;

  Ran bad_key = run_loom("jobs --api-key loom_wrong", env());
  EXPECT_EQ(bad_key.code, 6) << bad_key.output;

  Ran no_job = run_loom("status 0123456789abcdef0123456789abcdef", env());
  EXPECT_EQ(no_job.code, 7) << no_job.output;

  Ran bad_id = run_loom("status ../x", env());
  EXPECT_EQ(bad_id.code, 2) << bad_id.output;

  Ran no_model = run_loom("trace gpt3 --remote --no-wait --save output" + in, env());
  EXPECT_EQ(no_model.code, 7) << no_model.output;
  EXPECT_NE(no_model.output.find("gpt2-tiny"), std::string::npos) << no_model.output;

  Ran bad_path = run_loom("trace gpt2-tiny --remote --save transformer.h.7.output.0 -o x" + in, env());
  EXPECT_EQ(bad_path.code, 4) << bad_path.output;
  EXPECT_NE(bad_path.output.find("transformer.h.7"), std::string::npos) << bad_path.output;

  Ran no_wait_local = run_loom("trace " + dir_->file("tiny") + " --no-wait --save output" + in, env());
  EXPECT_EQ(no_wait_local.code, 2) << no_wait_local.output;

  std::string id = submit_tiny();
  run_loom("wait " + id, env());
  Ran bad_out = run_loom("result " + id + " -o " + dir_->file("no/such/dir/x.safetensors"), env());
  EXPECT_EQ(bad_out.code, 3) << bad_out.output;
}

}  // namespace
}  // namespace loom::client
