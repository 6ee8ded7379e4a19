#include "kvcache/block_pool.h"

#include <gtest/gtest.h>

#include <numeric>
#include <random>

#include "kvcache/kv_cache.h"

namespace strata::kvcache {
namespace {

TEST(BlockPoolTest, AllocateRefReleaseCounts) {
  BlockPool pool(4);
  auto a = pool.AllocateMany(3);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(pool.counts().used, 3);
  EXPECT_EQ(pool.counts().free, 1);
  pool.Ref((*a)[0]);
  EXPECT_EQ(pool.ref_count((*a)[0]), 2);
  EXPECT_EQ(pool.AllocateMany(2).status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(pool.counts().used, 3);  // all or nothing
  pool.ReleaseAll(*a);
  EXPECT_EQ(pool.counts().used, 1);
  pool.Release((*a)[0]);
  EXPECT_EQ(pool.counts().used, 0);
  EXPECT_EQ(pool.counts().free, 4);
}

TEST(BlockPoolTest, PrefixHitsAndLruEviction) {
  const int bs = 4;
  BlockPool pool(3);
  std::vector<int32_t> tokens = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  std::vector<BlockHash> hashes = HashFullBlocks(tokens, bs);
  ASSERT_EQ(hashes.size(), 2u);
  auto blocks = pool.AllocateMany(3);
  ASSERT_TRUE(blocks.ok());
  EXPECT_TRUE(pool.Publish((*blocks)[0], hashes[0]));
  EXPECT_TRUE(pool.Publish((*blocks)[1], hashes[1]));
  pool.ReleaseAll(*blocks);
  EXPECT_EQ(pool.counts().cached, 2);
  EXPECT_EQ(pool.counts().free, 1);
  // Same prefix: both blocks hit; a different second block: one.
  EXPECT_EQ(pool.CountCachedPrefix(hashes), 2);
  std::vector<int32_t> other = {1, 2, 3, 4, 0, 0, 0, 0};
  std::vector<BlockHash> other_hashes = HashFullBlocks(other, bs);
  EXPECT_EQ(other_hashes[0], hashes[0]);
  EXPECT_NE(other_hashes[1], hashes[1]);
  std::vector<BlockId> hit = pool.MatchPrefix(other_hashes);
  ASSERT_EQ(hit.size(), 1u);
  EXPECT_EQ(hit[0], (*blocks)[0]);
  EXPECT_EQ(pool.counts().used, 1);
  // Allocating 2 takes the free block, then evicts the cached (unreferenced) second block.
  auto more = pool.AllocateMany(2);
  ASSERT_TRUE(more.ok());
  EXPECT_EQ(pool.counts().evictions, 1);
  EXPECT_EQ(pool.CountCachedPrefix(hashes), 1);
  pool.ReleaseAll(*more);
  pool.ReleaseAll(hit);
  EXPECT_EQ(pool.counts().used, 0);
  EXPECT_EQ(pool.counts().total, pool.counts().free + pool.counts().cached);
}

TEST(BlockPoolTest, DuplicatePublishKeepsTheFirst) {
  BlockPool pool(2);
  auto b = pool.AllocateMany(2);
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(pool.Publish((*b)[0], 77));
  EXPECT_FALSE(pool.Publish((*b)[1], 77));
  pool.ReleaseAll(*b);
  EXPECT_EQ(pool.counts().cached, 1);
  EXPECT_EQ(pool.counts().free, 1);
}

// Random workload of sequences that allocate, share prefixes and finish or abort: every block
// comes back.
TEST(BlockPoolTest, RandomWorkloadReturnsToBaseline) {
  const int bs = 2;
  BlockPool pool(64);
  std::mt19937 rng(5);
  struct Live {
    std::vector<BlockId> blocks;
  };
  std::vector<Live> live;
  for (int step = 0; step < 2000; ++step) {
    if (live.size() < 8 && rng() % 2 == 0) {
      std::vector<int32_t> tokens(2 + rng() % 10);
      for (auto& t : tokens) t = rng() % 3;  // few distinct tokens: many shared prefixes
      auto hashes = HashFullBlocks(tokens, bs);
      Live l;
      l.blocks = pool.MatchPrefix(hashes);
      int32_t need = static_cast<int32_t>((tokens.size() + bs - 1) / bs) -
                     static_cast<int32_t>(l.blocks.size());
      auto fresh = pool.AllocateMany(need);
      if (!fresh.ok()) {
        pool.ReleaseAll(l.blocks);
        continue;
      }
      for (BlockId id : *fresh) {
        size_t i = l.blocks.size();
        if (i < hashes.size()) pool.Publish(id, hashes[i]);
        l.blocks.push_back(id);
      }
      live.push_back(std::move(l));
    } else if (!live.empty()) {
      size_t i = rng() % live.size();
      pool.ReleaseAll(live[i].blocks);
      live.erase(live.begin() + i);
    }
    BlockCounts c = pool.counts();
    ASSERT_EQ(c.total, c.free + c.cached + c.used);
  }
  for (auto& l : live) pool.ReleaseAll(l.blocks);
  EXPECT_EQ(pool.counts().used, 0);
  EXPECT_EQ(pool.num_available(), 64);
}

TEST(PagedKvCacheTest, LayoutAndValidation) {
  KvCacheSpec gqa;
  gqa.num_layers = 2;
  gqa.block_size = 4;
  gqa.num_kv_heads = 2;
  gqa.head_dim = 8;
  auto c = PagedKvCache::Create(gqa, 3);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->Offset(2, 1), (2 * 4 + 1) * 16);
  EXPECT_EQ(gqa.BytesPerBlock(), 2 * 2 * 4 * 16 * 2);
  ops::KvLayerView v = (*c)->LayerView(1);
  EXPECT_EQ(v.k_dim, 8);
  EXPECT_NE(v.k, v.v);
  KvCacheSpec mla;
  mla.layout = KvLayout::kMla;
  mla.num_layers = 1;
  mla.kv_lora_rank = 32;
  mla.rope_dim = 8;
  auto m = PagedKvCache::Create(mla, 2);
  ASSERT_TRUE(m.ok());
  ops::KvLayerView mv = (*m)->LayerView(0);
  EXPECT_EQ(mv.k_dim, 40);
  EXPECT_EQ(mv.v_dim, 32);
  EXPECT_EQ(mv.k, mv.v);
  KvCacheSpec bad = gqa;
  bad.block_size = 0;
  EXPECT_EQ(PagedKvCache::Create(bad, 3).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(PagedKvCache::Create(gqa, 0).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace strata::kvcache
