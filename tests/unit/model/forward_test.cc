// Forward-pass correctness on the tiny presets of every architecture: incremental decode with
// the KV cache vs full recompute, chunked vs one-shot prefill (MLA: absorbed vs naive), batch
// and thread-count invariance (bit-identical), and sensitivity to layout mistakes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kvcache/block_pool.h"
#include "model/model_runner.h"
#include "tests/unit/model/tiny_models.h"

namespace strata::model {
namespace {

using testing::HaveAssets;
using testing::TinyModelDir;

std::unique_ptr<ModelRunner> LoadTiny(Arch arch, RunnerOptions options = {}) {
  std::string error;
  std::string dir = TinyModelDir(arch, &error);
  EXPECT_FALSE(dir.empty()) << error;
  if (dir.empty()) return nullptr;
  if (options.num_kv_blocks == 0) options.num_kv_blocks = 256;
  if (std::getenv("STRATA_TEST_REFERENCE_KERNELS")) options.kernels = ops::CpuKernels::kReference;
  options.kv_block_size = 4;  // small blocks: many block boundaries in short sequences
  auto r = ModelRunner::Load(dir, options);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(*r) : nullptr;
}

std::vector<int32_t> Prompt(int n, int salt, int64_t vocab) {
  std::vector<int32_t> p(n);
  for (int i = 0; i < n; ++i) p[i] = static_cast<int32_t>((1000 + 7919 * (i + 31 * salt)) % vocab);
  return p;
}

// A sequence with its own blocks.
struct Seq {
  std::vector<int32_t> tokens;
  std::vector<int32_t> blocks;
};

Seq MakeSeq(kvcache::BlockPool& pool, const ModelRunner& r, std::vector<int32_t> tokens,
            int extra_tokens) {
  Seq s;
  s.tokens = std::move(tokens);
  auto blocks = pool.AllocateMany(
      BlocksForTokens(static_cast<int64_t>(s.tokens.size()) + extra_tokens, r.block_size()));
  EXPECT_TRUE(blocks.ok());
  s.blocks = *blocks;
  return s;
}

float MaxRelDiff(std::span<const float> a, std::span<const float> b) {
  float max_abs = 0, diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    max_abs = std::max(max_abs, std::fabs(a[i]));
    diff = std::max(diff, std::fabs(a[i] - b[i]));
  }
  return diff / std::max(max_abs, 1e-6f);
}

// Gap between the best and second-best logit, relative to the largest magnitude.
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

// Greedy decode of n tokens after prefilling `prompt` in one chunk.
std::vector<int32_t> Greedy(ModelRunner& r, const std::vector<int32_t>& prompt, int n) {
  kvcache::BlockPool pool(r.num_kv_blocks());
  Seq s = MakeSeq(pool, r, prompt, n);
  std::vector<int32_t> out;
  ForwardBatch b;
  b.sequences.push_back({s.tokens, 0, s.blocks, LogitsMode::kLast});
  ForwardResult res;
  EXPECT_TRUE(r.Forward(b, &res).ok());
  for (int i = 0; i < n; ++i) {
    int32_t next = Argmax(res.Row(0));
    out.push_back(next);
    s.tokens.push_back(next);
    ForwardBatch d;
    d.sequences.push_back({std::span<const int32_t>(&s.tokens.back(), 1),
                           static_cast<int32_t>(s.tokens.size() - 1), s.blocks, LogitsMode::kLast});
    EXPECT_TRUE(r.Forward(d, &res).ok());
  }
  pool.ReleaseAll(s.blocks);
  return out;
}

class ForwardTest : public ::testing::TestWithParam<Arch> {
 protected:
  void SetUp() override {
    if (!HaveAssets()) GTEST_SKIP() << "test assets missing (run scripts/fetch-test-assets)";
  }
};

// Decoding token by token through the KV cache gives the logits that recomputing the whole
// sequence in one prefill gives at every position (DeepSeek: absorbed MLA vs naive MLA).
TEST_P(ForwardTest, IncrementalDecodeMatchesFullRecompute) {
  auto r = LoadTiny(GetParam());
  ASSERT_NE(r, nullptr);
  const int64_t vocab = r->config().vocab_size;
  std::vector<int32_t> tokens = Prompt(13, 1, vocab);
  kvcache::BlockPool pool(r->num_kv_blocks());
  // GQA: prefill and decode run the same kernels per token, so they agree to the last bit of
  // noise. MLA: decode attends through the absorbed latent while prefill expands bf16 keys and
  // values (two more bf16 roundings); the tiny preset's sharp attention amplifies that.
  const float tolerance = r->config().IsMla() ? 5e-2f : 1e-3f;
  // Full recompute: all logits in one chunk.
  Seq full = MakeSeq(pool, *r, tokens, 0);
  ForwardBatch fb;
  fb.sequences.push_back({full.tokens, 0, full.blocks, LogitsMode::kAll});
  ForwardResult fr;
  ASSERT_TRUE(r->Forward(fb, &fr).ok());
  // Incremental: a 3-token prefill then one token at a time.
  Seq inc = MakeSeq(pool, *r, tokens, 0);
  ForwardBatch pb;
  pb.sequences.push_back(
      {std::span<const int32_t>(inc.tokens.data(), 3), 0, inc.blocks, LogitsMode::kAll});
  ForwardResult pr;
  ASSERT_TRUE(r->Forward(pb, &pr).ok());
  for (int i = 0; i < 3; ++i) EXPECT_LT(MaxRelDiff(pr.Row(0, i), fr.Row(0, i)), 2e-2) << i;
  for (size_t i = 3; i < tokens.size(); ++i) {
    ForwardBatch db;
    db.sequences.push_back({std::span<const int32_t>(inc.tokens.data() + i, 1),
                            static_cast<int32_t>(i), inc.blocks, LogitsMode::kLast});
    ForwardResult dr;
    ASSERT_TRUE(r->Forward(db, &dr).ok());
    EXPECT_LT(MaxRelDiff(dr.Row(0), fr.Row(0, i)), tolerance) << "position " << i;
    if (Margin(fr.Row(0, i)) > tolerance) {
      EXPECT_EQ(Argmax(dr.Row(0)), Argmax(fr.Row(0, i))) << "position " << i;
    }
  }
  pool.ReleaseAll(full.blocks);
  pool.ReleaseAll(inc.blocks);
  EXPECT_EQ(pool.counts().used, 0);
}

TEST_P(ForwardTest, ChunkedPrefillMatchesOneShot) {
  auto r = LoadTiny(GetParam());
  ASSERT_NE(r, nullptr);
  std::vector<int32_t> tokens = Prompt(19, 2, r->config().vocab_size);
  kvcache::BlockPool pool(r->num_kv_blocks());
  Seq one = MakeSeq(pool, *r, tokens, 0);
  ForwardBatch ob;
  ob.sequences.push_back({one.tokens, 0, one.blocks, LogitsMode::kLast});
  ForwardResult orr;
  ASSERT_TRUE(r->Forward(ob, &orr).ok());
  Seq ch = MakeSeq(pool, *r, tokens, 0);
  ForwardResult cr;
  for (int start : {0, 5, 11}) {
    int end = start == 11 ? 19 : (start == 0 ? 5 : 11);
    ForwardBatch cb;
    cb.sequences.push_back({std::span<const int32_t>(ch.tokens.data() + start, end - start), start,
                            ch.blocks, LogitsMode::kLast});
    ASSERT_TRUE(r->Forward(cb, &cr).ok());
  }
  EXPECT_LT(MaxRelDiff(cr.Row(0), orr.Row(0)), 2e-2);
  EXPECT_EQ(Argmax(cr.Row(0)), Argmax(orr.Row(0)));
}

// A sequence's logits are bit-identical alone, inside a batch of others (prefill and decode
// mixed), and with 1 or 2 threads.
TEST_P(ForwardTest, BatchAndThreadInvariant) {
  std::vector<std::vector<float>> results;
  for (int threads : {1, 2}) {
    RunnerOptions o;
    o.num_threads = threads;
    auto r = LoadTiny(GetParam(), o);
    ASSERT_NE(r, nullptr);
    const int64_t vocab = r->config().vocab_size;
    for (bool batched : {false, true}) {
      kvcache::BlockPool pool(r->num_kv_blocks());
      Seq target = MakeSeq(pool, *r, Prompt(9, 3, vocab), 1);
      Seq other1 = MakeSeq(pool, *r, Prompt(17, 4, vocab), 1);
      Seq other2 = MakeSeq(pool, *r, Prompt(6, 5, vocab), 1);
      // Step 1: prefill (others prefilled in the same batch when batched).
      ForwardBatch b1;
      if (batched) b1.sequences.push_back({other1.tokens, 0, other1.blocks, LogitsMode::kLast});
      b1.sequences.push_back({target.tokens, 0, target.blocks, LogitsMode::kLast});
      if (batched) b1.sequences.push_back({other2.tokens, 0, other2.blocks, LogitsMode::kAll});
      ForwardResult r1;
      ASSERT_TRUE(r->Forward(b1, &r1).ok());
      size_t ti = batched ? 1 : 0;
      std::vector<float> logits(r1.Row(ti).begin(), r1.Row(ti).end());
      target.tokens.push_back(Argmax(r1.Row(ti)));
      // Step 2: decode the target, beside a decode and a prefill chunk.
      ForwardBatch b2;
      const int32_t n = static_cast<int32_t>(target.tokens.size());
      std::vector<int32_t> more = Prompt(3, 6, vocab);
      if (batched) {
        b2.sequences.push_back({std::span<const int32_t>(more.data(), 1),
                                static_cast<int32_t>(other1.tokens.size()), other1.blocks,
                                LogitsMode::kLast});
      }
      b2.sequences.push_back({std::span<const int32_t>(&target.tokens.back(), 1), n - 1,
                              target.blocks, LogitsMode::kLast});
      ForwardResult r2;
      ASSERT_TRUE(r->Forward(b2, &r2).ok());
      logits.insert(logits.end(), r2.Row(ti).begin(), r2.Row(ti).end());
      results.push_back(std::move(logits));
    }
  }
  for (size_t i = 1; i < results.size(); ++i) {
    ASSERT_EQ(results[i].size(), results[0].size());
    EXPECT_EQ(0, std::memcmp(results[i].data(), results[0].data(), results[0].size() * 4))
        << "run " << i << " (threads " << (i < 2 ? 1 : 2) << ", batched " << (i % 2) << ")";
  }
}

// DESIGN.md §5: each deliberate layout mistake changes the greedy output within a few tokens.
TEST_P(ForwardTest, LayoutMistakesChangeGreedyOutput) {
  const Arch arch = GetParam();
  auto good = LoadTiny(arch);
  ASSERT_NE(good, nullptr);
  const bool moe = good->config().IsMoe();
  std::vector<int32_t> prompt = Prompt(8, 7, good->config().vocab_size);
  const int n = 8;
  std::vector<int32_t> expected = Greedy(*good, prompt, n);
  for (ForwardMistake m : {ForwardMistake::kRopeLayout, ForwardMistake::kSwapGateUp,
                           ForwardMistake::kTransposeExpert}) {
    RunnerOptions o;
    o.mistake = m;
    auto bad = LoadTiny(arch, o);
    ASSERT_NE(bad, nullptr);
    std::vector<int32_t> got = Greedy(*bad, prompt, n);
    EXPECT_NE(got, expected) << "mistake " << static_cast<int>(m) << (moe ? " (moe)" : "");
  }
}

INSTANTIATE_TEST_SUITE_P(Tiny, ForwardTest,
                         ::testing::Values(Arch::kLlama, Arch::kQwen3, Arch::kMixtral,
                                           Arch::kQwen3Moe, Arch::kDeepseekV3),
                         [](const auto& info) { return std::string(ModelTypeName(info.param)); });

TEST(ForwardValidationTest, BadBatchesAreInvalidArgument) {
  if (!HaveAssets()) GTEST_SKIP() << "test assets missing";
  auto r = LoadTiny(Arch::kLlama);
  ASSERT_NE(r, nullptr);
  std::vector<int32_t> tokens = {1, 2, 3};
  std::vector<int32_t> blocks = {0};
  ForwardResult res;
  ForwardBatch b;
  b.sequences.push_back({tokens, 0, blocks, LogitsMode::kLast});
  EXPECT_EQ(r->Forward(b, &res).code(), StatusCode::kOk);
  b.sequences[0].start_position = 2;  // needs 2 blocks of 4
  EXPECT_EQ(r->Forward(b, &res).code(), StatusCode::kInvalidArgument);
  std::vector<int32_t> bad_tokens = {1, static_cast<int32_t>(r->config().vocab_size)};
  b.sequences[0] = {bad_tokens, 0, blocks, LogitsMode::kLast};
  EXPECT_EQ(r->Forward(b, &res).code(), StatusCode::kInvalidArgument);
  std::vector<int32_t> bad_blocks = {r->num_kv_blocks()};
  b.sequences[0] = {tokens, 0, bad_blocks, LogitsMode::kLast};
  EXPECT_EQ(r->Forward(b, &res).code(), StatusCode::kInvalidArgument);
  b.sequences[0] = {std::span<const int32_t>(), 0, blocks, LogitsMode::kLast};
  EXPECT_EQ(r->Forward(b, &res).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace strata::model
