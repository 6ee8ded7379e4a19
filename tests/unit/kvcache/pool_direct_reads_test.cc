// Lease-free reads of a same-host KV pool (kvcache/pool_direct_reads.h, slot_versions.h) over
// UCX in this process: shared memory maps the pool's blocks, a second read of the same blocks
// takes no lease, a block written again since is never taken from a stale copy, and without
// shared memory (or with the option off) every read takes a lease as before.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "common/clock.h"
#include "kvcache/pool_server.h"
#include "tests/unit/kvcache/pool_test_util.h"
#include "transport/ucx/ucx_transport.h"

namespace strata::kvcache::testing {
namespace {

class PoolDirectReadsTest : public ::testing::Test {
 protected:
  std::unique_ptr<transport::Transport> NewTransport(const std::string& tls) {
    transport::UcxOptions options;
    options.tls = tls;
    options.spin_us = 0;
    auto t = transport::UcxTransport::Create(options);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? std::move(t).value() : nullptr;
  }
  std::string StartPool(const std::string& tls, int num_blocks) {
    KvPoolServerOptions options;
    options.capacity_bytes = static_cast<uint64_t>(num_blocks) * kSmallBlockBytes;
    options.try_huge_pages = false;
    auto server = KvPoolServer::Create(NewTransport(tls), options);
    EXPECT_TRUE(server.ok()) << server.status().ToString();
    auto bound = (*server)->Listen("127.0.0.1:0");
    EXPECT_TRUE(bound.ok()) << bound.status().ToString();
    pool_ = std::move(server).value();
    return *bound;
  }
  std::unique_ptr<Instance> NewInstance(const std::string& tls, const std::string& pool,
                                        KvPoolClientOptions options = {}) {
    return MakeInstance(NewTransport(tls), {pool}, options);
  }
  void TearDown() override {
    if (pool_ != nullptr) pool_->Shutdown();
  }

  std::unique_ptr<KvPoolServer> pool_;
};

constexpr const char* kSharedMemory = "sm,tcp";

TEST_F(PoolDirectReadsTest, ReadingTheSameBlocksAgainTakesNoLease) {
  const std::string pool = StartPool(kSharedMemory, 64);
  auto writer = NewInstance(kSharedMemory, pool);
  auto reader = NewInstance(kSharedMemory, pool);
  writer->Randomize(1);
  reader->Randomize(2);
  const auto hashes = Chain(5, 7);
  const std::vector<BlockId> src = {3, 17, 4, 60, 0};
  ASSERT_TRUE(writer->StoreAndWait(hashes, src).ok());
  // The first read leases the blocks, then copies them from the mapped pool memory.
  const std::vector<BlockId> first = {9, 8, 30, 1, 2};
  ASSERT_EQ(*reader->Fetch(hashes, first), 5);
  for (size_t i = 0; i < hashes.size(); ++i) {
    EXPECT_EQ(reader->BlockBytes(first[i]), writer->BlockBytes(src[i])) << "block " << i;
  }
  EXPECT_EQ(pool_->Stats().leases_granted, 1);
  // Again, into other blocks (two of them consecutive), and a part of the chain.
  const std::vector<BlockId> dst = {40, 41, 42, 50, 12};
  ASSERT_EQ(*reader->Fetch(hashes, dst), 5);
  for (size_t i = 0; i < hashes.size(); ++i) {
    EXPECT_EQ(reader->BlockBytes(dst[i]), writer->BlockBytes(src[i])) << "block " << i;
  }
  ASSERT_EQ(*reader->Fetch({hashes[0], hashes[1]}, {20, 21}), 2);
  EXPECT_EQ(reader->BlockBytes(21), writer->BlockBytes(src[1]));
  EXPECT_EQ(pool_->Stats().leases_granted, 1) << "the second and third reads took leases";
  // The pool still learns of the reads: counted, and the blocks stay recently used.
  EXPECT_TRUE(Eventually([&] { return pool_->Stats().direct_read_blocks == 7; }));
  EXPECT_EQ(pool_->Stats().bytes_out, 12 * kSmallBlockBytes);
  EXPECT_EQ(pool_->Stats().active_leases, 0);
}

TEST_F(PoolDirectReadsTest, ABlockWrittenAgainSinceIsNeverTakenFromAStaleCopy) {
  const std::string pool = StartPool(kSharedMemory, 3);
  auto inst = NewInstance(kSharedMemory, pool);
  inst->Randomize(4);
  const auto a = Chain(3, 1), b = Chain(2, 2);
  ASSERT_TRUE(inst->StoreAndWait(a, {0, 1, 2}).ok());
  ASSERT_EQ(*inst->Fetch(a, {10, 11, 12}), 3);  // leased; remembered
  // b takes the slots of a's tail, with other bytes. A copy from the remembered slots would
  // now give b's bytes for a's blocks: the versions tell, and the read takes a lease instead.
  ASSERT_TRUE(inst->StoreAndWait(b, {3, 4}).ok());
  EXPECT_EQ(*inst->Fetch(a, {20, 21, 22}), 1);
  EXPECT_EQ(inst->BlockBytes(20), inst->BlockBytes(0));
  EXPECT_EQ(pool_->Stats().leases_granted, 2);
  // What is unchanged is still read without one.
  ASSERT_EQ(*inst->Fetch({a[0]}, {30}), 1);
  EXPECT_EQ(inst->BlockBytes(30), inst->BlockBytes(0));
  ASSERT_EQ(*inst->Fetch(b, {31, 32}), 2);  // leased (never read before)
  ASSERT_EQ(*inst->Fetch(b, {33, 34}), 2);
  EXPECT_EQ(inst->BlockBytes(33), inst->BlockBytes(3));
  EXPECT_EQ(inst->BlockBytes(34), inst->BlockBytes(4));
  EXPECT_EQ(pool_->Stats().leases_granted, 3);
}

TEST_F(PoolDirectReadsTest, APoolThatWentAwayIsAMissNotACrash) {
  const std::string pool = StartPool(kSharedMemory, 8);
  auto inst = NewInstance(kSharedMemory, pool);
  inst->Randomize(5);
  const auto hashes = Chain(2, 3);
  ASSERT_TRUE(inst->StoreAndWait(hashes, {0, 1}).ok());
  ASSERT_EQ(*inst->Fetch(hashes, {10, 11}), 2);
  pool_->Shutdown();
  pool_.reset();  // its memory is released; the client's mapping must not be used any more
  Stopwatch watch;
  auto read = inst->Fetch(hashes, {12, 13}, /*deadline_ms=*/2000);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  // The mapping goes when the client notices the peer is gone; until then the pool's memory
  // is still mapped here and holds what it held, so either answer is right, never garbage.
  if (*read == 2) EXPECT_EQ(inst->BlockBytes(13), inst->BlockBytes(1));
  EXPECT_TRUE(Eventually([&] { return *inst->Fetch(hashes, {12, 13}, 2000) == 0; }));
  EXPECT_LT(watch.ElapsedMillis(), kWaitMs + 5000);
}

TEST_F(PoolDirectReadsTest, WithoutSharedMemoryOrWithTheOptionOffEveryReadTakesALease) {
  for (const bool tcp_only : {true, false}) {
    SCOPED_TRACE(tcp_only ? "tcp" : "direct_reads = false");
    const std::string tls = tcp_only ? "tcp" : kSharedMemory;
    const std::string pool = StartPool(tls, 8);
    KvPoolClientOptions options;
    options.direct_reads = tcp_only;  // on, but nothing to map over tcp
    auto inst = NewInstance(tls, pool, options);
    inst->Randomize(6);
    const auto hashes = Chain(2, 4);
    ASSERT_TRUE(inst->StoreAndWait(hashes, {0, 1}).ok());
    ASSERT_EQ(*inst->Fetch(hashes, {10, 11}), 2);
    ASSERT_EQ(*inst->Fetch(hashes, {12, 13}), 2);
    EXPECT_EQ(inst->BlockBytes(13), inst->BlockBytes(1));
    EXPECT_EQ(pool_->Stats().leases_granted, 2);
    EXPECT_EQ(pool_->Stats().direct_read_blocks, 0);
    inst->Stop();
    pool_->Shutdown();
  }
}

}  // namespace
}  // namespace strata::kvcache::testing
