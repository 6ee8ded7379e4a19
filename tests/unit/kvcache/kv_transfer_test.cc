// RegisteredKv: the paged KV moves into the transport's own memory (UCX: shared memory a peer on
// this host copies to directly) with its contents, and a cache whose allocator fails stays
// usable where it is.
#include "kvcache/kv_transfer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "tests/unit/kvcache/pool_test_util.h"
#include "transport/ucx/ucx_transport.h"

namespace strata::kvcache {
namespace {

// The pool tests' small GQA spec with a third layer (six arrays).
KvCacheSpec SmallGqa() {
  KvCacheSpec spec = testing::SmallSpec();
  spec.num_layers = 3;
  return spec;
}

// Fills every array with a pattern from `seed`; returns it, array by array.
std::vector<std::vector<bf16>> Fill(PagedKvCache& cache, uint32_t seed) {
  std::mt19937 rng(seed);
  const size_t n = cache.array_bytes() / sizeof(bf16);
  std::vector<std::vector<bf16>> out;
  for (int l = 0; l < cache.spec().num_layers; ++l) {
    for (bf16* a : {cache.k(l), cache.v(l)}) {
      for (size_t i = 0; i < n; ++i) a[i] = bf16{static_cast<uint16_t>(rng())};
      out.emplace_back(a, a + n);
    }
  }
  return out;
}

void ExpectContents(PagedKvCache& cache, const std::vector<std::vector<bf16>>& want) {
  const size_t n = cache.array_bytes() / sizeof(bf16);
  int a = 0;
  for (int l = 0; l < cache.spec().num_layers; ++l) {
    for (bf16* p : {cache.k(l), cache.v(l)}) {
      EXPECT_EQ(std::memcmp(p, want[a].data(), n * sizeof(bf16)), 0) << "array " << a;
      ++a;
    }
  }
}

TEST(RegisteredKv, ArraysMoveIntoTransportMemoryWithTheirContents) {
  transport::UcxOptions options;
  options.tls = "sm,tcp";
  auto transport = transport::UcxTransport::Create(options);
  ASSERT_TRUE(transport.ok()) << transport.status().ToString();
  auto cache = PagedKvCache::Create(SmallGqa(), 5);
  ASSERT_TRUE(cache.ok());
  auto want = Fill(**cache, 1);
  auto kv = RegisteredKv::Register(cache->get(), transport->get());
  ASSERT_TRUE(kv.ok()) << kv.status().ToString();
  ASSERT_EQ((*kv)->num_segments(), 6);
  for (int l = 0; l < 3; ++l) {
    EXPECT_EQ((*kv)->region(2 * l).data(), (*cache)->k(l)) << "the cache uses the region";
    EXPECT_EQ((*kv)->region(2 * l + 1).data(), (*cache)->v(l));
    EXPECT_EQ((*kv)->region(2 * l).size(), (*cache)->array_bytes());
  }
  ExpectContents(**cache, want);
  // The cache keeps its memory alive without the registration (and the transport).
  kv->reset();
  (*transport)->Shutdown();
  transport->reset();
  auto more = Fill(**cache, 2);
  ExpectContents(**cache, more);
}

TEST(PagedKvCache, RelocateStopsAtAFailingAllocatorAndKeepsTheRest) {
  auto cache = PagedKvCache::Create(SmallGqa(), 5);
  ASSERT_TRUE(cache.ok());
  auto want = Fill(**cache, 3);
  bf16* v0 = (*cache)->v(0);
  std::vector<std::shared_ptr<std::vector<bf16>>> given;
  Status st = (*cache)->Relocate([&](int a, uint64_t bytes) -> StatusOr<PagedKvCache::ArrayMemory> {
    if (a == 1) return ResourceExhaustedError("no more");
    auto m = std::make_shared<std::vector<bf16>>(bytes / sizeof(bf16));
    given.push_back(m);
    return PagedKvCache::ArrayMemory{m->data(), m};
  });
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ((*cache)->k(0), given.at(0)->data()) << "array 0 moved";
  EXPECT_EQ((*cache)->v(0), v0) << "array 1 stayed";
  ExpectContents(**cache, want);
}

}  // namespace
}  // namespace strata::kvcache
