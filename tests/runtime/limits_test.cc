// Per-run limits fail the run with a clear error and leave the model usable.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "runtime/execute.h"
#include "runtime/trace.h"
#include "tests/runtime/test_util.h"

namespace loom::runtime {
namespace {

class LimitsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new loom::testing::TempDir();
    ASSERT_TRUE(write_random_gpt2_checkpoint(dir_->path(), Gpt2Config::tiny(), 5).ok());
    model_ = load_model(dir_->path()).value().release();
  }
  static void TearDownTestSuite() {
    delete model_;
    delete dir_;
  }
  static at::Tensor ids() { return at::arange(16, at::kLong).view({2, 8}); }
  static loom::testing::TempDir* dir_;
  static Model* model_;
};
loom::testing::TempDir* LimitsTest::dir_ = nullptr;
Model* LimitsTest::model_ = nullptr;

bool contains(const Status& s, const std::string& text) { return s.message().find(text) != std::string::npos; }

TEST_F(LimitsTest, TooManyNodes) {
  LocalTrace tr(*model_, {ids()});
  for (int i = 0; i < 5; ++i) tr.module("transformer.h.0").output(0).save("h" + std::to_string(i));
  tr.options().limits.graph.max_nodes = 4;
  auto r = tr.run();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(contains(r.status(), "graph has 6 nodes, over the limit of 4")) << r.status().message();
}

TEST_F(LimitsTest, TooManyBytesSaved) {
  LocalTrace tr(*model_, {ids()});
  tr.module("transformer.h.0").output(0).save("h0");  // 2*8*64*4 = 4096 bytes
  tr.module("transformer.h.1").output(0).save("h1");
  tr.options().limits.max_saved_bytes = 6000;
  auto r = tr.run();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(contains(r.status(), "saved values total 8192 bytes, over the run's limit of 6000")) << r.status().message();
}

TEST_F(LimitsTest, TooManyIntermediateBytes) {
  LocalTrace tr(*model_, {ids()});
  Value h = tr.module("transformer.h.0").output(0);
  (h * 2.0 * 3.0).save("x");
  tr.options().limits.max_intermediate_bytes = 5000;
  auto r = tr.run();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(contains(r.status(), "op results total 8192 bytes")) << r.status().message();
}

TEST_F(LimitsTest, WallTimeLimit) {
  LocalTrace tr(*model_, {ids()});
  tr.output().save("logits");
  tr.options().limits.max_wall_time = std::chrono::milliseconds(0);  // passed at the first hook
  auto r = tr.run();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(contains(r.status(), "wall-time limit of 0 ms")) << r.status().message();
}

TEST_F(LimitsTest, CancelStopsAtTheNextHookPoint) {
  std::atomic<bool> cancel{true};
  LocalTrace tr(*model_, {ids()});
  tr.output().save("logits");
  tr.options().cancel = &cancel;
  auto r = tr.run();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCancelled);
}

TEST_F(LimitsTest, ModelStaysUsableAfterALimitHit) {
  {
    LocalTrace tr(*model_, {ids()});
    tr.output().save("logits");
    tr.options().limits.max_saved_bytes = 1;
    ASSERT_FALSE(tr.run().ok());
  }
  LocalTrace tr(*model_, {ids()});
  tr.output().save("logits");
  auto r = tr.run();
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(at::equal(r->at("logits"), model_->forward({ids()}, nullptr).toTensor()));
}

}  // namespace
}  // namespace loom::runtime
