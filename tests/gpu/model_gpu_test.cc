// Model-level GPU parity (label gpu): the ModelRunner on "cuda" against the CPU runner on the
// tiny checkpoint of every architecture (gen-model library, temp dir; tokenizers from
// STRATA_TEST_ASSETS). Skips without a CUDA device or without the assets.
//   - logits of every prompt position: max |gpu - cpu| / max |cpu| <= 5e-2 (the GPU rounds
//     matmul inputs to bf16, the CPU keeps f32 activations), and the same top-1 token wherever
//     the CPU's best-vs-second gap exceeds that bound;
//   - incremental decode through the device KV cache == full recompute on the device (same
//     bounds as the CPU forward test: GQA 1e-3, MLA 5e-2) with the same top-1 token;
//   - an unparsable device is kInvalidArgument.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "kvcache/block_pool.h"
#include "model/model_runner.h"
#include "ops/cuda/cuda_backend.h"
#include "tests/unit/model/tiny_models.h"

namespace strata::model {
namespace {

constexpr float kGpuCpuBound = 5e-2f;

std::vector<int32_t> Prompt(int n, int salt, int64_t vocab) {
  std::vector<int32_t> p(n);
  for (int i = 0; i < n; ++i) p[i] = static_cast<int32_t>((1000 + 7919 * (i + 31 * salt)) % vocab);
  return p;
}

float MaxRelDiff(std::span<const float> a, std::span<const float> ref) {
  float max_abs = 0, diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    max_abs = std::max(max_abs, std::fabs(ref[i]));
    diff = std::max(diff, std::fabs(a[i] - ref[i]));
  }
  return diff / std::max(max_abs, 1e-6f);
}

float Margin(std::span<const float> v) {
  float a = -INFINITY, b = -INFINITY, m = 0;
  for (float x : v) {
    m = std::max(m, std::fabs(x));
    if (x > a) {
      b = a;
      a = x;
    } else if (x > b) {
      b = x;
    }
  }
  return (a - b) / std::max(m, 1e-6f);
}

int Argmax(std::span<const float> v) {
  return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
}

bool HaveGpu(std::string* why) {
  auto b = ops::CreateCudaBackend({});
  if (!b.ok()) *why = b.status().ToString();
  return b.ok();
}

std::unique_ptr<ModelRunner> LoadTiny(Arch arch, const std::string& device) {
  std::string error;
  std::string dir = testing::TinyModelDir(arch, &error);
  EXPECT_FALSE(dir.empty()) << error;
  if (dir.empty()) return nullptr;
  RunnerOptions o;
  o.device = device;
  o.num_kv_blocks = 256;
  o.kv_block_size = 4;
  auto r = ModelRunner::Load(dir, o);
  EXPECT_TRUE(r.ok()) << device << ": " << r.status().ToString();
  return r.ok() ? std::move(*r) : nullptr;
}

// All logits of `tokens` prefilled in one chunk.
ForwardResult Full(ModelRunner& r, const std::vector<int32_t>& tokens) {
  kvcache::BlockPool pool(r.num_kv_blocks());
  auto blocks = pool.AllocateMany(BlocksForTokens(tokens.size(), r.block_size()));
  EXPECT_TRUE(blocks.ok());
  ForwardBatch b;
  b.sequences.push_back({tokens, 0, *blocks, LogitsMode::kAll});
  ForwardResult res;
  Status s = r.Forward(b, &res);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return res;
}

class ModelGpuTest : public ::testing::TestWithParam<Arch> {
 protected:
  void SetUp() override {
    std::string why;
    if (!HaveGpu(&why)) GTEST_SKIP() << "no CUDA device: " << why;
    if (!testing::HaveAssets()) GTEST_SKIP() << "test assets missing (scripts/fetch-test-assets)";
  }
};

TEST_P(ModelGpuTest, LogitsMatchCpu) {
  auto cpu = LoadTiny(GetParam(), "cpu");
  auto gpu = LoadTiny(GetParam(), "cuda");
  ASSERT_NE(cpu, nullptr);
  ASSERT_NE(gpu, nullptr);
  std::vector<int32_t> tokens = Prompt(17, 3, cpu->config().vocab_size);
  ForwardResult c = Full(*cpu, tokens), g = Full(*gpu, tokens);
  ASSERT_EQ(c.logits.size(), g.logits.size());
  float worst = 0;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const float err = MaxRelDiff(g.Row(0, i), c.Row(0, i));
    worst = std::max(worst, err);
    EXPECT_LT(err, kGpuCpuBound) << "position " << i;
    if (Margin(c.Row(0, i)) > kGpuCpuBound) {
      EXPECT_EQ(Argmax(g.Row(0, i)), Argmax(c.Row(0, i))) << "position " << i;
    }
  }
  std::printf("%s: max rel logit error gpu vs cpu %.3g\n",
              std::string(ModelTypeName(GetParam())).c_str(), worst);
}

TEST_P(ModelGpuTest, IncrementalDecodeMatchesFullRecomputeOnGpu) {
  auto r = LoadTiny(GetParam(), "cuda");
  ASSERT_NE(r, nullptr);
  std::vector<int32_t> tokens = Prompt(13, 1, r->config().vocab_size);
  ForwardResult full = Full(*r, tokens);
  const float tolerance = r->config().IsMla() ? 5e-2f : 1e-3f;
  kvcache::BlockPool pool(r->num_kv_blocks());
  auto blocks = pool.AllocateMany(BlocksForTokens(tokens.size(), r->block_size()));
  ASSERT_TRUE(blocks.ok());
  ForwardBatch pb;
  pb.sequences.push_back(
      {std::span<const int32_t>(tokens.data(), 3), 0, *blocks, LogitsMode::kAll});
  ForwardResult pr;
  ASSERT_TRUE(r->Forward(pb, &pr).ok());
  for (int i = 0; i < 3; ++i) EXPECT_LT(MaxRelDiff(pr.Row(0, i), full.Row(0, i)), 2e-2) << i;
  float worst = 0;
  for (size_t i = 3; i < tokens.size(); ++i) {
    ForwardBatch db;
    db.sequences.push_back({std::span<const int32_t>(tokens.data() + i, 1), static_cast<int32_t>(i),
                            *blocks, LogitsMode::kLast});
    ForwardResult dr;
    Status s = r->Forward(db, &dr);
    ASSERT_TRUE(s.ok()) << s.ToString();
    const float err = MaxRelDiff(dr.Row(0), full.Row(0, i));
    worst = std::max(worst, err);
    EXPECT_LT(err, tolerance) << "position " << i;
    if (Margin(full.Row(0, i)) > tolerance) {
      EXPECT_EQ(Argmax(dr.Row(0)), Argmax(full.Row(0, i))) << "position " << i;
    }
  }
  std::printf("%s: max rel logit error decode vs recompute on gpu %.3g\n",
              std::string(ModelTypeName(GetParam())).c_str(), worst);
}

INSTANTIATE_TEST_SUITE_P(Tiny, ModelGpuTest,
                         ::testing::Values(Arch::kLlama, Arch::kQwen3, Arch::kQwen3Moe,
                                           Arch::kMixtral, Arch::kDeepseekV3),
                         [](const auto& info) { return std::string(ModelTypeName(info.param)); });

// Runs everywhere: a bad device string is rejected before any device is touched, and without a
// device "cuda" is kUnavailable with the reason.
TEST(ModelDeviceOption, BadDeviceAndMissingDevice) {
  if (!testing::HaveAssets()) GTEST_SKIP() << "test assets missing (scripts/fetch-test-assets)";
  std::string error;
  std::string dir = testing::TinyModelDir(Arch::kLlama, &error);
  ASSERT_FALSE(dir.empty()) << error;
  RunnerOptions o;
  o.device = "tpu";
  auto bad = ModelRunner::Load(dir, o);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument) << bad.status().ToString();
  std::string why;
  if (HaveGpu(&why)) return;
  o.device = "cuda";
  auto missing = ModelRunner::Load(dir, o);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kUnavailable) << missing.status().ToString();
}

}  // namespace
}  // namespace strata::model
