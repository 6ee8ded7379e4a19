// decode::RankGroup: rank 0's choice of a rank per request and its book of forwarded requests.
#include "decode/rank_group.h"

#include <gtest/gtest.h>

#include "transport/inproc/inproc_transport.h"

namespace strata::decode {
namespace {

v1::RegisterInstance Rank(const std::string& id, uint64_t blocks) {
  v1::RegisterInstance reg;
  reg.set_instance_id(id);
  reg.set_address(id + ":0");
  reg.mutable_capacity()->set_num_kv_blocks(blocks);
  return reg;
}

// Decode's score: most free KV blocks first (lower is better), then fewer requests.
double FreeScore(const RankGroup::Rank& r) {
  return -static_cast<double>(static_cast<int64_t>(r.capacity.num_kv_blocks()) -
                              static_cast<int64_t>(r.load.num_kv_blocks_used()) - r.since_load) +
         1e-6 * r.live;
}

class RankGroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto node = service::RpcNode::Create(
        transport::NewInprocTransport(transport::NewInprocFabric()), service::RpcCallbacks());
    ASSERT_TRUE(node.ok()) << node.status().ToString();
    node_ = std::move(*node);
  }
  std::unique_ptr<service::RpcNode> node_;  // replies to unknown peers fail quietly
};

TEST_F(RankGroupTest, SpreadsByScoreCountsWhatItGaveAndEndsRequests) {
  RankGroup g(3, 100);
  const transport::PeerId a = 11, b = 12, router = 99;
  EXPECT_FALSE(g.whole());
  EXPECT_FALSE(g.OnRegister(*node_, a, 1, Rank("r1", 100)));
  EXPECT_TRUE(g.OnRegister(*node_, b, 2, Rank("r2", 100)));  // now every rank joined
  EXPECT_TRUE(g.whole());

  // This rank has 90 free blocks, the others 100: the first two go to them, 10 blocks each
  // counted against them until they report; then ties go to this rank.
  EXPECT_EQ(g.Assign("x", router, 10, -90, FreeScore), a);
  EXPECT_EQ(g.Assign("y", router, 10, -90, FreeScore), b);
  EXPECT_EQ(g.Assign("z", router, 10, -90, FreeScore), transport::kInvalidPeer);
  EXPECT_EQ(g.num_forwarded(), 2);
  EXPECT_EQ(g.AssignedPerRank(), (std::vector<int64_t>{1, 1, 1}));

  // A report replaces what was counted since the last one.
  v1::Heartbeat hb;
  hb.mutable_load()->set_num_kv_blocks_used(50);
  hb.mutable_load()->set_num_queued_tokens(7);
  g.OnHeartbeat(*node_, a, 3, hb);
  EXPECT_EQ(g.Assign("w", router, 10, -85, FreeScore), b);  // b: 90 free, a: 50, here: 85

  // A rank that turned the request down: excluded from the next pick, and not counted.
  EXPECT_EQ(g.Assign("v", router, 10, -75, FreeScore), b);  // b: 80 free, here: 75
  g.Retract("v", b);
  EXPECT_FALSE(g.Find("v").has_value());
  EXPECT_EQ(g.Assign("v", router, 10, -75, FreeScore, {b}), transport::kInvalidPeer);

  EXPECT_EQ(g.AddLoads(v1::Load()).num_kv_blocks_used(), 50u);
  EXPECT_EQ(g.AddLoads(v1::Load()).num_queued_tokens(), 7u);

  auto f = g.Find("x");
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->rank, a);
  EXPECT_EQ(f->router, router);
  EXPECT_TRUE(g.End("x").has_value());
  EXPECT_FALSE(g.End("x").has_value());
  EXPECT_FALSE(g.Find("z").has_value());  // this rank's own: not forwarded

  // A rank that goes away: its requests are ended; its count stays.
  EXPECT_TRUE(g.RemoveRank(b));
  EXPECT_FALSE(g.RemoveRank(b));
  auto ended = g.EndIf([&](const RankGroup::Forwarded& x) { return x.rank == b; });
  EXPECT_EQ(ended.size(), 2u);  // y and w
  EXPECT_EQ(g.num_forwarded(), 0);
  EXPECT_EQ(g.AssignedPerRank(), (std::vector<int64_t>{2, 1, 2}));
  EXPECT_FALSE(g.whole());
}

}  // namespace
}  // namespace strata::decode
