// The KV pool service and client over the in-process transport (and the fault decorator):
// round trips, write-once, longest prefix, LRU eviction, leases, layouts, sharding, failures.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "common/clock.h"
#include "kvcache/pool_index.h"
#include "kvcache/pool_server.h"
#include "kvcache/pool_transfers.h"
#include "tests/unit/kvcache/pool_test_util.h"
#include "transport/fault/fault_transport.h"
#include "transport/inproc/inproc_transport.h"

namespace strata::kvcache::testing {
namespace {

using transport::FaultTransport;

class PoolTest : public ::testing::Test {
 protected:
  // A pool of `num_blocks` small blocks at "pool<n>:0"; `fault` gets its fault decorator.
  std::string StartPool(int num_blocks, FaultTransport** fault = nullptr,
                        KvPoolServerOptions options = {}, std::string address = "") {
    std::unique_ptr<transport::Transport> t = transport::NewInprocTransport(fabric_);
    if (fault != nullptr) {
      auto f = std::make_unique<FaultTransport>(std::move(t));
      *fault = f.get();
      t = std::move(f);
    }
    options.capacity_bytes = static_cast<uint64_t>(num_blocks) * kSmallBlockBytes;
    options.try_huge_pages = false;
    options.instance_id = "pool" + std::to_string(pools_.size());
    auto server = KvPoolServer::Create(std::move(t), options);
    EXPECT_TRUE(server.ok()) << server.status().ToString();
    if (address.empty()) address = "pool" + std::to_string(pools_.size()) + ":0";
    auto bound = (*server)->Listen(address);
    EXPECT_TRUE(bound.ok()) << bound.status().ToString();
    pools_.push_back(std::move(server).value());
    return *bound;
  }
  std::unique_ptr<Instance> NewInstance(std::vector<std::string> pools,
                                        FaultTransport** fault = nullptr,
                                        KvPoolClientOptions options = {},
                                        KvCacheSpec spec = SmallSpec()) {
    std::unique_ptr<transport::Transport> t = transport::NewInprocTransport(fabric_);
    if (fault != nullptr) {
      auto f = std::make_unique<FaultTransport>(std::move(t));
      *fault = f.get();
      t = std::move(f);
    }
    return MakeInstance(std::move(t), std::move(pools), options, spec);
  }
  // Raw requests to a pool (the client never leaves a lease open).
  StatusOr<v1::KvPoolGetReply> RawGet(Instance& inst, const std::string& pool,
                                      const std::vector<BlockHash>& hashes, uint64_t lease_ms) {
    STRATA_ASSIGN_OR_RETURN(auto peer,
                            inst.node->Connect(pool, transport::DeadlineAfterMillis(kWaitMs)));
    service::Envelope e;
    for (BlockHash h : hashes) e.mutable_kv_pool_get()->add_block_hashes(h);
    e.mutable_kv_pool_get()->set_lease_ms(lease_ms);
    STRATA_ASSIGN_OR_RETURN(
        auto reply, inst.node->CallAndWait(peer, e, transport::DeadlineAfterMillis(kWaitMs)));
    return reply.kv_pool_get_reply();
  }
  Status RawRelease(Instance& inst, const std::string& pool, uint64_t lease_id) {
    STRATA_ASSIGN_OR_RETURN(auto peer,
                            inst.node->Connect(pool, transport::DeadlineAfterMillis(kWaitMs)));
    service::Envelope e;
    e.mutable_kv_pool_release()->set_lease_id(lease_id);
    return inst.node->CallAndWait(peer, e, transport::DeadlineAfterMillis(kWaitMs)).status();
  }

  std::shared_ptr<transport::InprocFabric> fabric_ = transport::NewInprocFabric();
  std::vector<std::unique_ptr<KvPoolServer>> pools_;
};

TEST_F(PoolTest, StoreThenFetchRoundTripsBytesExactly) {
  const std::string pool = StartPool(64);
  auto writer = NewInstance({pool});
  auto reader = NewInstance({pool});
  writer->Randomize(1);
  reader->Randomize(2);
  const auto hashes = Chain(5, 7);
  const std::vector<BlockId> src = {3, 17, 4, 60, 0};
  ASSERT_TRUE(writer->StoreAndWait(hashes, src).ok());
  EXPECT_EQ(reader->Lookup(hashes), 5);
  const std::vector<BlockId> dst = {9, 8, 30, 1, 2};
  ASSERT_EQ(*reader->Fetch(hashes, dst), 5);
  for (size_t i = 0; i < hashes.size(); ++i) {
    EXPECT_EQ(reader->BlockBytes(dst[i]), writer->BlockBytes(src[i])) << "block " << i;
  }
  const KvPoolStats s = pools_[0]->Stats();
  EXPECT_EQ(s.held_blocks, 5);
  EXPECT_EQ(s.slot_bytes, kSmallBlockBytes);
  EXPECT_EQ(s.bytes_in, 5 * kSmallBlockBytes);
  EXPECT_EQ(s.bytes_out, 5 * kSmallBlockBytes);
  EXPECT_EQ(s.hit_blocks, 5);
  EXPECT_EQ(s.leases_granted, 1);
  EXPECT_TRUE(Eventually([&] { return pools_[0]->Stats().active_leases == 0; }));
  // The pool's block memory was faulted in behind the first Put, without touching its bytes.
  EXPECT_TRUE(
      Eventually([&] { return pools_[0]->Stats().prefaulted_bytes >= 64 * kSmallBlockBytes; }));
  ASSERT_EQ(*reader->Fetch(hashes, dst), 5);
  for (size_t i = 0; i < hashes.size(); ++i) {
    EXPECT_EQ(reader->BlockBytes(dst[i]), writer->BlockBytes(src[i])) << "block " << i;
  }
}

TEST_F(PoolTest, PrefaultCanBeTurnedOff) {
  KvPoolServerOptions options;
  options.prefault = false;
  const std::string pool = StartPool(64, nullptr, options);
  auto writer = NewInstance({pool});
  writer->Randomize(1);
  ASSERT_TRUE(writer->StoreAndWait(Chain(3, 7), {0, 1, 2}).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(pools_[0]->Stats().prefaulted_bytes, 0u);
  EXPECT_EQ(pools_[0]->Stats().held_blocks, 3);
}

TEST_F(PoolTest, PutIsWriteOnce) {
  const std::string pool = StartPool(64);
  auto a = NewInstance({pool});
  auto b = NewInstance({pool});
  a->Randomize(1);
  b->Randomize(2);
  const auto hashes = Chain(3, 1);
  ASSERT_TRUE(a->StoreAndWait(hashes, {0, 1, 2}).ok());
  ASSERT_TRUE(b->StoreAndWait(hashes, {0, 1, 2}).ok());  // other bytes, same hashes
  EXPECT_EQ(pools_[0]->Stats().bytes_in, 3 * kSmallBlockBytes);
  ASSERT_EQ(*b->Fetch(hashes, {10, 11, 12}), 3);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(b->BlockBytes(10 + i), a->BlockBytes(i));
}

TEST_F(PoolTest, LookupAndFetchFindTheLongestHeldPrefix) {
  const std::string pool = StartPool(64);
  auto inst = NewInstance({pool});
  inst->Randomize(3);
  auto hashes = Chain(4, 2);
  ASSERT_TRUE(inst->StoreAndWait({hashes[0], hashes[1], hashes[3]}, {0, 1, 3}).ok());
  EXPECT_EQ(inst->Lookup(hashes), 2);  // hashes[2] missing: hashes[3] does not count
  EXPECT_EQ(inst->Lookup({hashes[1], hashes[0]}), 2);
  EXPECT_EQ(inst->Lookup({Chain(1, 99)[0], hashes[0]}), 0);
  EXPECT_EQ(inst->Lookup({}), 0);
  EXPECT_EQ(*inst->Fetch(hashes, {20, 21, 22, 23}), 2);
  EXPECT_EQ(inst->BlockBytes(21), inst->BlockBytes(1));
}

TEST_F(PoolTest, EvictsLeastRecentlyUsedWhenFull) {
  const std::string pool = StartPool(4);
  auto inst = NewInstance({pool});
  inst->Randomize(4);
  const auto a = Chain(2, 1), b = Chain(2, 2), c = Chain(2, 3);
  ASSERT_TRUE(inst->StoreAndWait(a, {0, 1}).ok());
  ASSERT_TRUE(inst->StoreAndWait(b, {2, 3}).ok());
  EXPECT_EQ(inst->Lookup(a), 2);  // a is now more recent than b
  ASSERT_TRUE(inst->StoreAndWait(c, {4, 5}).ok());
  EXPECT_EQ(inst->Lookup(a), 2);
  EXPECT_EQ(inst->Lookup(b), 0);
  EXPECT_EQ(inst->Lookup(c), 2);
  const KvPoolStats s = pools_[0]->Stats();
  EXPECT_EQ(s.evictions, 2);
  EXPECT_EQ(s.held_blocks, 4);
  EXPECT_EQ(s.used_bytes, 4 * kSmallBlockBytes);
  // The data of the survivors is intact after their neighbours' slots were reused.
  ASSERT_EQ(*inst->Fetch(c, {40, 41}), 2);
  EXPECT_EQ(inst->BlockBytes(40), inst->BlockBytes(4));
  ASSERT_EQ(*inst->Fetch(a, {42, 43}), 2);
  EXPECT_EQ(inst->BlockBytes(43), inst->BlockBytes(1));
}

// Evicted slots come newest-block-first; SortPending hands them to a Put's blocks in rising
// order (so their segments merge into one transfer) and the index follows.
TEST(PoolIndexTest, SortPendingGivesAPutRisingSlots) {
  PoolIndex index(4);
  std::vector<PoolSlot> first(4);
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(index.Reserve(100 + i, &first[i]), PoolIndex::ReserveOutcome::kReserved);
  }
  for (int i = 4; i-- > 0;) index.Publish(first[i]);  // the chain's head most recently used
  std::vector<BlockHash> hashes = {200, 201, 202};
  std::vector<PoolSlot> slots(3);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(index.Reserve(hashes[i], &slots[i]), PoolIndex::ReserveOutcome::kReserved);
  }
  EXPECT_EQ(slots, (std::vector<PoolSlot>{3, 2, 1})) << "victims from the chain's tail";
  index.SortPending(hashes, slots);
  EXPECT_EQ(slots, (std::vector<PoolSlot>{1, 2, 3}));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(index.hash_of(slots[i]), hashes[i]);
    index.Publish(slots[i]);
  }
  EXPECT_EQ(index.CountHeldPrefix(hashes, false), 3);
  EXPECT_EQ(index.counts().held, 4);
}

// Free slots go lowest first, whether given back or never used; the counts include the slots
// never used. A pool of 16 M slots (64 GiB of 4 KiB blocks) costs nothing until they are used.
TEST(PoolIndexTest, HandsOutTheLowestFreeSlotAndCountsUnusedOnes) {
  constexpr int64_t kSlots = int64_t{1} << 24;
  PoolIndex index(kSlots);
  std::vector<PoolSlot> slots(4);
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(index.Reserve(10 + i, &slots[i]), PoolIndex::ReserveOutcome::kReserved);
  }
  EXPECT_EQ(slots, (std::vector<PoolSlot>{0, 1, 2, 3}));
  index.Abort(slots[2]);
  index.Abort(slots[1]);
  PoolIndexCounts c = index.counts();
  EXPECT_EQ(c.num_slots, kSlots);
  EXPECT_EQ(c.free, kSlots - 2);
  EXPECT_EQ(c.pending, 2);
  PoolSlot next = -1;
  for (PoolSlot want : {1, 2, 4, 5}) {
    ASSERT_EQ(index.Reserve(100 + want, &next), PoolIndex::ReserveOutcome::kReserved);
    EXPECT_EQ(next, want);
  }
  EXPECT_EQ(index.counts().free, kSlots - 6);

  PoolIndex small(2);  // full: the least recently used held slot is evicted, then no space
  PoolSlot a = -1, b = -1, c2 = -1;
  ASSERT_EQ(small.Reserve(1, &a), PoolIndex::ReserveOutcome::kReserved);
  ASSERT_EQ(small.Reserve(2, &b), PoolIndex::ReserveOutcome::kReserved);
  EXPECT_EQ(small.Reserve(3, &c2), PoolIndex::ReserveOutcome::kNoSpace) << "both pending";
  small.Publish(a);
  ASSERT_EQ(small.Reserve(3, &c2), PoolIndex::ReserveOutcome::kReserved);
  EXPECT_EQ(c2, a);
  EXPECT_EQ(small.counts().evictions, 1);
  EXPECT_EQ(small.counts().free, 0);
}

TEST_F(PoolTest, FetchReadsFewerWhenBlocksWereEvictedMeanwhile) {
  const std::string pool = StartPool(3);
  auto inst = NewInstance({pool});
  inst->Randomize(4);
  const auto a = Chain(3, 1), b = Chain(2, 2);
  ASSERT_TRUE(inst->StoreAndWait(a, {0, 1, 2}).ok());
  EXPECT_EQ(inst->Lookup(a), 3);
  ASSERT_TRUE(inst->StoreAndWait(b, {3, 4}).ok());  // evicts a's tail first
  EXPECT_EQ(*inst->Fetch(a, {10, 11, 12}), 1);
  EXPECT_EQ(inst->BlockBytes(10), inst->BlockBytes(0));
}

TEST_F(PoolTest, ExportsPrometheusMetrics) {
  MetricsRegistry registry;
  KvPoolServerOptions options;
  options.metrics = &registry;
  const std::string pool = StartPool(8, nullptr, options);
  auto inst = NewInstance({pool});
  inst->Randomize(1);
  const auto hashes = Chain(3, 1);
  ASSERT_TRUE(inst->StoreAndWait(hashes, {0, 1, 2}).ok());
  EXPECT_EQ(inst->Lookup({hashes[0], hashes[1], hashes[2], Chain(4, 1)[3]}), 3);
  const std::string text = registry.SerializeText();
  EXPECT_NE(text.find("strata_kvpool_capacity_bytes{instance=\"pool0\"} 4096"), std::string::npos)
      << text;
  EXPECT_NE(text.find("strata_kvpool_hit_blocks_total{instance=\"pool0\"} 3"), std::string::npos);
  EXPECT_NE(text.find("strata_kvpool_miss_blocks_total{instance=\"pool0\"} 1"), std::string::npos);
  EXPECT_NE(text.find("strata_kvpool_in_bytes_total{instance=\"pool0\"} 1536"), std::string::npos);
  EXPECT_NE(text.find("strata_kvpool_blocks{instance=\"pool0\"} 3"), std::string::npos);
  // The pool updates its metrics until it is gone: it goes before the registry does.
  inst.reset();
  pools_.clear();
}

TEST_F(PoolTest, LeasedBlocksAreNeverEvicted) {
  const std::string pool = StartPool(2);
  auto inst = NewInstance({pool});
  inst->Randomize(5);
  const auto a = Chain(2, 1), b = Chain(2, 2);
  ASSERT_TRUE(inst->StoreAndWait(a, {0, 1}).ok());
  auto lease = RawGet(*inst, pool, a, 60000);
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  ASSERT_NE(lease->lease_id(), 0u);
  ASSERT_EQ(lease->location().blocks_size(), 2);
  EXPECT_TRUE(lease->location().segments_in_regions());
  EXPECT_EQ(lease->location().regions_size(), 4);
  EXPECT_TRUE(inst->StoreAndWait(b, {2, 3}).ok());  // no room: stores none, still OK
  EXPECT_EQ(inst->Lookup(a), 2);
  EXPECT_EQ(inst->Lookup(b), 0);
  EXPECT_EQ(pools_[0]->Stats().evictions, 0);
  ASSERT_TRUE(RawRelease(*inst, pool, lease->lease_id()).ok());
  EXPECT_EQ(pools_[0]->Stats().active_leases, 0);
  ASSERT_TRUE(inst->StoreAndWait(b, {2, 3}).ok());
  EXPECT_EQ(inst->Lookup(b), 2);
  EXPECT_EQ(inst->Lookup(a), 0);
}

TEST_F(PoolTest, ExpiredLeasesAreReclaimed) {
  const std::string pool = StartPool(2);
  auto inst = NewInstance({pool});
  inst->Randomize(6);
  const auto a = Chain(2, 1), b = Chain(2, 2);
  ASSERT_TRUE(inst->StoreAndWait(a, {0, 1}).ok());
  auto lease = RawGet(*inst, pool, a, 100);  // never released
  ASSERT_TRUE(lease.ok());
  ASSERT_NE(lease->lease_id(), 0u);
  EXPECT_EQ(pools_[0]->Stats().leased_blocks, 2);
  ASSERT_TRUE(Eventually([&] { return pools_[0]->Stats().active_leases == 0; }));
  EXPECT_EQ(pools_[0]->Stats().leases_expired, 1);
  EXPECT_EQ(pools_[0]->Stats().leased_blocks, 0);
  ASSERT_TRUE(inst->StoreAndWait(b, {2, 3}).ok());
  EXPECT_EQ(inst->Lookup(b), 2);
}

// One sweep timer serves every lease: a shorter lease after a longer one still expires on time,
// and a longer one after a shorter one is swept by the timer the first sweep re-arms.
TEST_F(PoolTest, LeasesExpireWhateverOrderTheirLengthsCome) {
  const std::string pool = StartPool(8);
  auto inst = NewInstance({pool});
  inst->Randomize(8);
  const auto a = Chain(2, 1);
  ASSERT_TRUE(inst->StoreAndWait(a, {0, 1}).ok());
  auto long_lease = RawGet(*inst, pool, a, 60000);
  auto short_lease = RawGet(*inst, pool, a, 100);
  ASSERT_TRUE(long_lease.ok() && short_lease.ok());
  EXPECT_EQ(pools_[0]->Stats().active_leases, 2);
  ASSERT_TRUE(Eventually([&] { return pools_[0]->Stats().active_leases == 1; }));
  EXPECT_EQ(pools_[0]->Stats().leases_expired, 1);

  auto first = RawGet(*inst, pool, a, 100);
  auto second = RawGet(*inst, pool, a, 400);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(pools_[0]->Stats().active_leases, 3);
  ASSERT_TRUE(Eventually([&] { return pools_[0]->Stats().active_leases == 1; }));
  EXPECT_EQ(pools_[0]->Stats().leases_expired, 3);  // the 60 s lease is still held
}

TEST_F(PoolTest, LeasesOfAFailedPeerAreDropped) {
  const std::string pool = StartPool(4);
  auto inst = NewInstance({pool});
  auto reader = NewInstance({pool});
  inst->Randomize(7);
  ASSERT_TRUE(inst->StoreAndWait(Chain(2, 1), {0, 1}).ok());
  auto lease = RawGet(*reader, pool, Chain(2, 1), 60000);
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ(pools_[0]->Stats().active_leases, 1);
  reader->Stop();
  EXPECT_TRUE(Eventually([&] { return pools_[0]->Stats().active_leases == 0; }));
  EXPECT_EQ(pools_[0]->Stats().leases_expired, 0);
}

TEST_F(PoolTest, AnotherLayoutIsRefused) {
  const std::string pool = StartPool(64);
  auto inst = NewInstance({pool});
  KvCacheSpec other = SmallSpec();
  other.head_dim = 16;
  auto wrong = NewInstance({pool}, nullptr, {}, other);
  inst->Randomize(1);
  ASSERT_TRUE(inst->StoreAndWait(Chain(2, 1), {0, 1}).ok());
  Status st = wrong->StoreAndWait(Chain(2, 2), {0, 1});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  EXPECT_NE(st.message().find("layout mismatch"), std::string::npos) << st.message();
  EXPECT_EQ(pools_[0]->Stats().held_blocks, 2);
  // A reader with another block size gets an error, not wrong bytes.
  KvCacheSpec bigger_blocks = SmallSpec();
  bigger_blocks.block_size = 8;
  auto reader = NewInstance({pool}, nullptr, {}, bigger_blocks);
  EXPECT_EQ(reader->Fetch(Chain(2, 1), {0, 1}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Eventually([&] { return pools_[0]->Stats().active_leases == 0; }));
}

TEST_F(PoolTest, TwoShardsSplitTheChainByConsistentHashing) {
  const std::string p0 = StartPool(256), p1 = StartPool(256);
  auto inst = NewInstance({p0, p1});
  auto only0 = NewInstance({p0});
  auto only1 = NewInstance({p1});
  inst->Randomize(9);
  const auto hashes = Chain(48, 5);
  std::vector<BlockId> src, dst;
  for (int i = 0; i < 48; ++i) {
    src.push_back(i);
    dst.push_back(63 - i);
  }
  ASSERT_TRUE(inst->StoreAndWait(hashes, src).ok());
  const int64_t held0 = pools_[0]->Stats().held_blocks, held1 = pools_[1]->Stats().held_blocks;
  EXPECT_EQ(held0 + held1, 48);
  EXPECT_GT(held0, 0);
  EXPECT_GT(held1, 0);
  for (BlockHash h : hashes) {
    const int shard = inst->client->ShardOf(h);
    EXPECT_EQ(only0->Lookup({h}), shard == 0 ? 1 : 0);
    EXPECT_EQ(only1->Lookup({h}), shard == 1 ? 1 : 0);
  }
  EXPECT_EQ(inst->Lookup(hashes), 48);
  auto reader = NewInstance({p1, p0});  // the order of the list does not matter
  ASSERT_EQ(*reader->Fetch(hashes, dst), 48);
  for (int i = 0; i < 48; ++i) EXPECT_EQ(reader->BlockBytes(dst[i]), inst->BlockBytes(src[i]));
  // One shard down: the prefix ends at its first block, within the deadline.
  int first_on_1 = 0;
  while (inst->client->ShardOf(hashes[first_on_1]) != 1) ++first_on_1;
  pools_[1]->Shutdown();
  Stopwatch watch;
  EXPECT_EQ(inst->Lookup(hashes, 2000), first_on_1);
  EXPECT_EQ(*inst->Fetch(hashes, dst, 2000), first_on_1);
  EXPECT_LT(watch.ElapsedMillis(), 4500);
}

TEST_F(PoolTest, HashRingIsBalancedAndStable) {
  PoolHashRing three({"a:1", "b:1", "c:1"}, 128);
  PoolHashRing four({"a:1", "b:1", "c:1", "d:1"}, 128);
  std::vector<int> counts(4, 0);
  int moved_elsewhere = 0;
  const auto hashes = Chain(20000, 11);
  for (BlockHash h : hashes) {
    const int s3 = three.ShardOf(h), s4 = four.ShardOf(h);
    ++counts[s4];
    if (s4 != 3 && s4 != s3) ++moved_elsewhere;  // only moves to the new shard are allowed
  }
  EXPECT_EQ(moved_elsewhere, 0);
  for (int c : counts) {
    EXPECT_GT(c, 20000 / 4 * 6 / 10);
    EXPECT_LT(c, 20000 / 4 * 14 / 10);
  }
  EXPECT_EQ(PoolHashRing({}, 16).ShardOf(1), -1);
}

// Two segments of 100 bytes a block; local regions of 4 KiB, a remote location of two regions.
TEST(PoolTransfersTest, MergesOnlyBlocksThatContinueEachOtherOnBothSides) {
  std::vector<uint8_t> a(4096), b(4096);
  auto fabric = transport::NewInprocFabric();
  auto t = transport::NewInprocTransport(fabric);
  auto ra = t->RegisterMemory(a.data(), a.size());
  auto rb = t->RegisterMemory(b.data(), b.size());
  ASSERT_TRUE(ra.ok() && rb.ok());
  const std::vector<const transport::Region*> local = {ra->get(), rb->get()};
  v1::KvLocation remote;
  remote.set_num_segments(2);
  remote.set_segment_bytes(100);
  remote.set_segments_in_regions(true);
  for (uint64_t address : {1ull << 20, 2ull << 20}) {
    auto* m = remote.add_regions();
    m->set_address(address);
    m->set_length(8192);
    m->set_packed_key("key");
  }
  for (uint64_t offset : {1000, 1100, 5000, 5200, 5300}) remote.add_blocks()->set_offset(offset);
  // Caller's blocks 0-4: 0+1 continue each other on both sides; 2 jumps remotely; 3 continues 2
  // locally but not remotely (gap of 100); 4 continues 3 remotely but not locally.
  const std::vector<BlockMove> moves = {{0, 0, &remote.blocks(0)},
                                        {1, 100, &remote.blocks(1)},
                                        {2, 200, &remote.blocks(2)},
                                        {3, 300, &remote.blocks(3)},
                                        {4, 1000, &remote.blocks(4)}};
  auto out = PlanBlockMoves(local, 100, moves, remote, 7, transport::DeadlineAfterMillis(1000));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_EQ(out->size(), 8u);  // 4 runs x 2 segments
  EXPECT_EQ(out->blocks[0], (std::vector<int>{0, 1}));
  for (int s = 0; s < 2; ++s) {
    const transport::Transfer& x = out->transfers[s];
    EXPECT_EQ(x.local, local[s]);
    EXPECT_EQ(x.remote.address, remote.regions(s).address());
    EXPECT_EQ(x.local_offset, 0u);
    EXPECT_EQ(x.remote_offset, 1000u);
    EXPECT_EQ(x.length, 200u);
    EXPECT_EQ(x.peer, 7u);
  }
  uint64_t total = 0;
  for (const auto& x : out->transfers) total += x.length;
  EXPECT_EQ(total, 1000u);
  // The cap keeps blocks apart; a location of another layout is refused.
  EXPECT_EQ(PlanBlockMoves(local, 100, moves, remote, 7, {}, 150)->size(), 10u);
  remote.set_segment_bytes(128);
  EXPECT_EQ(PlanBlockMoves(local, 100, moves, remote, 7, {}).status().code(),
            StatusCode::kInvalidArgument);
  remote.set_segment_bytes(100);
  remote.mutable_regions(1)->set_length(1000);  // block 4's second segment lies outside
  EXPECT_EQ(PlanBlockMoves(local, 100, moves, remote, 7, {}).status().code(),
            StatusCode::kInvalidArgument);
  t->Shutdown();
}

TEST_F(PoolTest, NoPoolsMeansMisses) {
  auto inst = NewInstance({});
  inst->Randomize(1);
  const auto hashes = Chain(3, 1);
  EXPECT_EQ(inst->Lookup(hashes), 0);
  EXPECT_EQ(*inst->Fetch(hashes, {0, 1, 2}), 0);
  EXPECT_TRUE(inst->StoreAndWait(hashes, {0, 1, 2}).ok());
}

TEST_F(PoolTest, APoolThatIsDownCountsAsMisses) {
  KvPoolClientOptions options;
  options.reconnect_backoff_ms = 50;
  auto inst = NewInstance({"nowhere:7"}, nullptr, options);
  inst->Randomize(1);
  const auto hashes = Chain(3, 1);
  Stopwatch watch;
  EXPECT_EQ(inst->Lookup(hashes, 1000), 0);
  EXPECT_EQ(*inst->Fetch(hashes, {0, 1, 2}, 1000), 0);
  EXPECT_EQ(inst->StoreAndWait(hashes, {0, 1, 2}, 1000).code(), StatusCode::kUnavailable);
  EXPECT_LT(watch.ElapsedMillis(), 3000);
}

TEST_F(PoolTest, ASlowPoolCountsAsAMissWithinTheDeadline) {
  FaultTransport* fault = nullptr;
  const std::string pool = StartPool(64, &fault);
  auto inst = NewInstance({pool});
  inst->Randomize(1);
  const auto hashes = Chain(3, 1);
  ASSERT_TRUE(inst->StoreAndWait(hashes, {0, 1, 2}).ok());
  fault->SetMessageDelay(std::chrono::milliseconds(1500));  // replies come too late
  Stopwatch watch;
  EXPECT_EQ(inst->Lookup(hashes, 300), 0);
  EXPECT_EQ(*inst->Fetch(hashes, {3, 4, 5}, 300), 0);
  EXPECT_LT(watch.ElapsedMillis(), 2000);
  fault->SetMessageDelay(std::chrono::milliseconds(0));
  // The late lease reply finds no reader; its lease expires or is released.
  EXPECT_TRUE(Eventually([&] { return inst->Lookup(hashes, 1000) == 3; }));
}

TEST_F(PoolTest, ClientReconnectsAfterThePoolRestarts) {
  KvPoolClientOptions options;
  options.reconnect_backoff_ms = 20;
  const std::string pool = StartPool(64, nullptr, {}, "restart:9");
  auto inst = NewInstance({pool}, nullptr, options);
  inst->Randomize(1);
  const auto hashes = Chain(2, 1);
  ASSERT_TRUE(inst->StoreAndWait(hashes, {0, 1}).ok());
  EXPECT_EQ(inst->Lookup(hashes), 2);
  pools_[0].reset();
  EXPECT_EQ(inst->Lookup(hashes, 500), 0);
  StartPool(64, nullptr, {}, "restart:9");
  // A fresh pool is empty; storing again works over a new connection.
  ASSERT_TRUE(Eventually([&] { return inst->StoreAndWait(hashes, {0, 1}, 1000).ok(); }));
  EXPECT_EQ(inst->Lookup(hashes), 2);
}

TEST_F(PoolTest, PeerDeathDuringPutPublishesNothing) {
  FaultTransport* fault = nullptr;
  const std::string pool = StartPool(64, &fault);
  auto inst = NewInstance({pool});
  auto other = NewInstance({pool});
  inst->Randomize(1);
  const auto hashes = Chain(4, 1);
  fault->SetTransferDelay(std::chrono::milliseconds(500));  // the pool's reads start late
  inst->client->Store(hashes, *inst->kv, {0, 1, 2, 3}, transport::DeadlineAfterMillis(kWaitMs),
                      [](Status) {});
  ASSERT_TRUE(Eventually([&] { return pools_[0]->Stats().pending_blocks == 4; }));
  inst->Stop();  // dies before its blocks were read
  ASSERT_TRUE(Eventually([&] { return pools_[0]->Stats().failed_blocks == 4; }));
  const KvPoolStats s = pools_[0]->Stats();
  EXPECT_EQ(s.held_blocks, 0);
  EXPECT_EQ(s.pending_blocks, 0);
  EXPECT_EQ(s.used_bytes, 0u);
  EXPECT_EQ(other->Lookup(hashes), 0);
}

TEST_F(PoolTest, AFailedReadFreesItsSlotUnpublished) {
  FaultTransport* fault = nullptr;
  const std::string pool = StartPool(64, &fault);
  KvPoolClientOptions options;
  options.store_reply_grace_ms = 100;
  auto inst = NewInstance({pool}, nullptr, options);
  inst->Randomize(1);
  const auto hashes = Chain(4, 1);
  ASSERT_TRUE(inst->StoreAndWait({hashes[0]}, {0}).ok());
  // Every read of the pool fails from now on, and so does its reply.
  fault->FailAfter(0);
  auto done = std::make_shared<std::promise<Status>>();
  inst->client->Store(hashes, *inst->kv, {0, 1, 2, 3}, transport::DeadlineAfterMillis(300),
                      [done](Status st) { done->set_value(st); });
  ASSERT_TRUE(Eventually([&] { return pools_[0]->Stats().failed_blocks == 3; }));
  EXPECT_EQ(pools_[0]->Stats().pending_blocks, 0);
  fault->FailAfter(-1);
  auto result = done->get_future();
  ASSERT_EQ(result.wait_for(std::chrono::milliseconds(kWaitMs)), std::future_status::ready);
  EXPECT_FALSE(result.get().ok());
  KvPoolStats s = pools_[0]->Stats();
  EXPECT_EQ(s.held_blocks, 1);
  EXPECT_EQ(s.pending_blocks, 0);
  EXPECT_EQ(inst->Lookup(hashes), 1);
  // Offered again, the missing ones are stored.
  ASSERT_TRUE(inst->StoreAndWait(hashes, {0, 1, 2, 3}).ok());
  EXPECT_EQ(inst->Lookup(hashes), 4);
  ASSERT_EQ(*inst->Fetch(hashes, {10, 11, 12, 13}), 4);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(inst->BlockBytes(10 + i), inst->BlockBytes(i));
}

TEST_F(PoolTest, BadRequestsGetClearErrors) {
  const std::string pool = StartPool(64);
  auto inst = NewInstance({pool});
  auto peer = inst->node->Connect(pool, transport::DeadlineAfterMillis(kWaitMs));
  ASSERT_TRUE(peer.ok());
  service::Envelope put;
  put.mutable_kv_pool_put()->add_block_hashes(1);  // no source blocks
  auto reply = inst->node->CallAndWait(*peer, put, transport::DeadlineAfterMillis(kWaitMs));
  EXPECT_EQ(reply.status().code(), StatusCode::kInvalidArgument);
  // A source block outside its region.
  v1::KvLocation loc = inst->kv->Describe(std::vector<BlockId>{0}, "x", "");
  loc.mutable_blocks(0)->set_offset(1ull << 40);
  *put.mutable_kv_pool_put()->mutable_source() = loc;
  reply = inst->node->CallAndWait(*peer, put, transport::DeadlineAfterMillis(kWaitMs));
  EXPECT_EQ(reply.status().code(), StatusCode::kInvalidArgument) << reply.status().ToString();
  EXPECT_EQ(pools_[0]->Stats().pending_blocks, 0);
  service::Envelope other;
  other.mutable_heartbeat();
  reply = inst->node->CallAndWait(*peer, other, transport::DeadlineAfterMillis(kWaitMs));
  EXPECT_EQ(reply.status().code(), StatusCode::kInvalidArgument);
  // Too many local blocks asked of Fetch is the caller's error.
  EXPECT_EQ(inst->Fetch(Chain(3, 1), {0, 1}).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace strata::kvcache::testing
