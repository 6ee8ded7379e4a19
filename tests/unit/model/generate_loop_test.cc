// GenerateOne (the loop behind `strata generate`): seeded sampling repeats, greedy equals the
// argmax chain, EOS stops unless ignored, bad options are InvalidArgument.
#include "model/generate_loop.h"

#include <gtest/gtest.h>

#include "tests/unit/model/tiny_models.h"

namespace strata::model {
namespace {

std::unique_ptr<ModelRunner> Load() {
  std::string error;
  std::string dir = testing::TinyModelDir(Arch::kQwen3Moe, &error);
  EXPECT_FALSE(dir.empty()) << error;
  RunnerOptions o;
  o.num_kv_blocks = 64;
  auto r = ModelRunner::Load(dir, o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(*r) : nullptr;
}

TEST(GenerateLoopTest, SeedsRepeatAndEosStops) {
  if (!testing::HaveAssets()) GTEST_SKIP() << "test assets missing";
  auto r = Load();
  ASSERT_NE(r, nullptr);
  std::vector<int32_t> prompt = {11, 22, 33, 44};
  GenerateOptions o;
  o.max_tokens = 12;
  o.sampling.temperature = 1.0f;
  o.sampling.seed = 7;
  auto a = GenerateOne(*r, prompt, o);
  auto b = GenerateOne(*r, prompt, o);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->token_ids, b->token_ids);
  EXPECT_EQ(a->token_ids.size(), 12u);
  o.sampling.seed = 8;
  auto c = GenerateOne(*r, prompt, o);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(a->token_ids, c->token_ids);
  // The third token as EOS: generation stops there, unless EOS is ignored.
  o.sampling.seed = 7;
  o.eos_token_ids = {a->token_ids[2]};
  auto d = GenerateOne(*r, prompt, o);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->stopped_on_eos);
  EXPECT_LE(d->token_ids.size(), 3u);
  EXPECT_EQ(d->token_ids.back(), a->token_ids[2]);
  o.ignore_eos = true;
  auto e = GenerateOne(*r, prompt, o);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->token_ids, a->token_ids);
}

TEST(GenerateLoopTest, ChunkedPromptGivesTheSameGreedyTokens) {
  if (!testing::HaveAssets()) GTEST_SKIP() << "test assets missing";
  auto r = Load();
  ASSERT_NE(r, nullptr);
  std::vector<int32_t> prompt;
  for (int i = 0; i < 30; ++i) prompt.push_back(100 + 37 * i);
  GenerateOptions o;
  o.max_tokens = 6;
  o.sampling.temperature = 0;
  auto whole = GenerateOne(*r, prompt, o);
  o.prefill_chunk_tokens = 7;
  auto chunked = GenerateOne(*r, prompt, o);
  ASSERT_TRUE(whole.ok() && chunked.ok());
  EXPECT_EQ(whole->token_ids, chunked->token_ids);
}

TEST(GenerateLoopTest, BadRequestsAreRejected) {
  if (!testing::HaveAssets()) GTEST_SKIP() << "test assets missing";
  auto r = Load();
  ASSERT_NE(r, nullptr);
  GenerateOptions o;
  EXPECT_EQ(GenerateOne(*r, {}, o).status().code(), StatusCode::kInvalidArgument);
  o.max_tokens = 0;
  EXPECT_EQ(GenerateOne(*r, {1}, o).status().code(), StatusCode::kInvalidArgument);
  o.max_tokens = 4;
  o.sampling.top_p = 2;
  EXPECT_EQ(GenerateOne(*r, {1}, o).status().code(), StatusCode::kInvalidArgument);
  o.sampling.top_p = 1;
  o.max_tokens = 64 * 16;  // more than the 64 blocks of 16
  EXPECT_EQ(GenerateOne(*r, {1}, o).status().code(), StatusCode::kResourceExhausted);
  std::vector<int32_t> bad = {static_cast<int32_t>(r->config().vocab_size)};
  o.max_tokens = 2;
  EXPECT_EQ(GenerateOne(*r, bad, o).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace strata::model
