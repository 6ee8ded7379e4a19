#include "ops/sampling.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

namespace strata::ops {
namespace {

std::vector<float> Logits() { return {1.0f, 3.0f, 2.5f, -1.0f, 0.5f, 2.9f}; }

TEST(SamplingTest, GreedyPicksArgmax) {
  SamplingOptions o;
  o.temperature = 0;
  EXPECT_EQ(SampleToken(Logits(), o, {}, {}, 0).token_id, 1);
}

TEST(SamplingTest, SameSeedSameTokens) {
  SamplingOptions o;
  o.seed = 42;
  std::vector<int32_t> a, b;
  for (uint64_t s = 0; s < 50; ++s) {
    a.push_back(SampleToken(Logits(), o, {}, {}, s).token_id);
    b.push_back(SampleToken(Logits(), o, {}, {}, s).token_id);
  }
  EXPECT_EQ(a, b);
  o.seed = 43;
  std::vector<int32_t> c;
  for (uint64_t s = 0; s < 50; ++s) c.push_back(SampleToken(Logits(), o, {}, {}, s).token_id);
  EXPECT_NE(a, c);
}

TEST(SamplingTest, DistributionFollowsSoftmax) {
  SamplingOptions o;
  o.seed = 1;
  std::vector<float> l = {0.0f, std::log(3.0f)};  // p = 0.25, 0.75
  int ones = 0;
  for (uint64_t s = 0; s < 4000; ++s) ones += SampleToken(l, o, {}, {}, s).token_id;
  EXPECT_NEAR(ones / 4000.0, 0.75, 0.03);
}

TEST(SamplingTest, TopKTopPMinPRestrictCandidates) {
  SamplingOptions o;
  o.seed = 3;
  o.top_k = 2;
  for (uint64_t s = 0; s < 200; ++s) {
    int32_t t = SampleToken(Logits(), o, {}, {}, s).token_id;
    EXPECT_TRUE(t == 1 || t == 5) << t;
  }
  o.top_k = -1;
  o.top_p = 0.3f;  // token 1 alone has p ~ 0.33
  for (uint64_t s = 0; s < 200; ++s) EXPECT_EQ(SampleToken(Logits(), o, {}, {}, s).token_id, 1);
  o.top_p = 1.0f;
  o.min_p = 0.7f;  // keeps 1 (p max), 5 (e^-0.1 = 0.9), drops 2 (e^-0.5 = 0.6)
  for (uint64_t s = 0; s < 200; ++s) {
    int32_t t = SampleToken(Logits(), o, {}, {}, s).token_id;
    EXPECT_TRUE(t == 1 || t == 5) << t;
  }
}

TEST(SamplingTest, PenaltiesChangeTheChoice) {
  SamplingOptions o;
  o.temperature = 0;
  std::vector<int32_t> out = {1};
  o.presence_penalty = 0.2f;  // 3.0 - 0.2 = 2.8 < 2.9
  EXPECT_EQ(SampleToken(Logits(), o, {}, out, 0).token_id, 5);
  o.presence_penalty = 0;
  o.frequency_penalty = 0.3f;
  std::vector<int32_t> twice = {1, 1};  // 3.0 - 0.6 = 2.4 < 2.5
  EXPECT_EQ(SampleToken(Logits(), o, {}, twice, 0).token_id, 5);
  o.frequency_penalty = 0;
  o.repetition_penalty = 1.5f;  // 3.0 / 1.5 = 2 (prompt token counts too)
  std::vector<int32_t> prompt = {1};
  EXPECT_EQ(SampleToken(Logits(), o, prompt, {}, 0).token_id, 5);
}

TEST(SamplingTest, LogprobsAreLogSoftmaxOfRawLogits) {
  SamplingOptions o;
  o.temperature = 0;
  o.num_top_logprobs = 3;
  SampledToken t = SampleToken(Logits(), o, {}, {}, 0);
  double z = 0;
  for (float v : Logits()) z += std::exp(v);
  EXPECT_NEAR(t.logprob, 3.0 - std::log(z), 1e-5);
  ASSERT_EQ(t.top_logprobs.size(), 3u);
  EXPECT_EQ(t.top_logprobs[0].token_id, 1);
  EXPECT_EQ(t.top_logprobs[1].token_id, 5);
  EXPECT_EQ(t.top_logprobs[2].token_id, 2);
}

TEST(SamplingTest, ValidationNamesTheField) {
  SamplingOptions o;
  o.top_p = 0;
  EXPECT_NE(ValidateSamplingOptions(o).message().find("top_p"), std::string::npos);
  o = {};
  o.temperature = -1;
  EXPECT_EQ(ValidateSamplingOptions(o).code(), StatusCode::kInvalidArgument);
  o = {};
  o.repetition_penalty = 0;
  EXPECT_EQ(ValidateSamplingOptions(o).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(ValidateSamplingOptions({}).ok());
}

}  // namespace
}  // namespace strata::ops
