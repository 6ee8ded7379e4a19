#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "expert_parallel/eplb.h"
#include "expert_parallel/placement.h"

namespace strata::expert_parallel {
namespace {

TEST(PlacementTest, UniformSpreadsSlotsOverRanks) {
  auto p = Placement::Uniform(2, 8, 4, 4);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->num_slots(), 12);
  EXPECT_EQ(p->slots_per_rank(), 3);
  EXPECT_EQ(p->RankOfSlot(11), 3);
  EXPECT_EQ(p->Replicas(0, 0).size(), 2u);  // slots 0 and 8
  EXPECT_EQ(p->Replicas(0, 7).size(), 1u);
  EXPECT_EQ(p->ExpertsOnRank(0, 2), (std::vector<int32_t>{0, 6, 7}));
  // Replicas are taken round-robin over the token index.
  EXPECT_NE(p->SlotFor(0, 0, 0, 0), p->SlotFor(0, 0, 0, 1));
  EXPECT_FALSE(Placement::Uniform(1, 8, 1, 4).ok());  // 9 slots on 4 ranks
}

TEST(PlacementTest, JsonRoundTripAndFiles) {
  auto p = Placement::FromTables(2, 4, {{0, 1, 2, 3, 0, 1}, {3, 2, 1, 0, 3, 3}}, 7);
  ASSERT_TRUE(p.ok()) << p.status().message();
  auto q = Placement::FromJson(p->ToJson());
  ASSERT_TRUE(q.ok()) << q.status().message();
  EXPECT_EQ(*p, *q);
  EXPECT_EQ(q->version(), 7u);
  auto path = std::filesystem::temp_directory_path() / "strata_placement_test.json";
  ASSERT_TRUE(p->SaveFile(path.string()).ok());
  auto r = Placement::LoadFile(path.string());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, *p);
  std::filesystem::remove(path);
  EXPECT_EQ(Placement::LoadFile("/nonexistent/p.json").status().code(), StatusCode::kNotFound);
}

TEST(PlacementTest, BadTablesAreRejectedWithReasons) {
  auto missing = Placement::FromTables(2, 4, {{0, 1, 2, 2}}, 0);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("expert 3 has no slot"), std::string::npos);
  EXPECT_FALSE(Placement::FromTables(2, 4, {{0, 1, 2, 9}}, 0).ok());
  EXPECT_FALSE(Placement::FromTables(2, 4, {{0, 1, 2, 3}, {0, 1, 2}}, 0).ok());
  EXPECT_FALSE(Placement::FromTables(3, 4, {{0, 1, 2, 3}}, 0).ok());
  EXPECT_FALSE(Placement::FromJson(nlohmann::json::parse(R"({"num_ranks": 2})")).ok());
  EXPECT_FALSE(
      Placement::FromJson(
          nlohmann::json::parse(R"({"num_ranks": 2, "num_experts": 2, "layers": [[0, "x"]]})"))
          .ok());
  EXPECT_FALSE(Placement::FromJson(
                   nlohmann::json::parse(
                       R"({"num_ranks": 2, "num_experts": 2, "num_slots": 4, "layers": [[0, 1]]})"))
                   .ok());
}

TEST(EplbTest, PlannerBalancesASkewedLoad) {
  ExpertLoad load;
  load.Reset(2, 16);
  for (int e = 0; e < 16; ++e) {
    load.at(0, e) = e < 4 ? 1000 - 200 * e : 50;  // four hot experts
  }
  // Layer 1 has no counts: uniform.
  auto uniform = Placement::Uniform(2, 16, 8, 4);
  ASSERT_TRUE(uniform.ok());
  const double before = MaxMeanRatio(PredictedRankLoads(*uniform, load, 0));
  auto plan = PlanPlacement(load, 4, 24, 1);
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  const double after = MaxMeanRatio(PredictedRankLoads(*plan, load, 0));
  EXPECT_GT(before, 1.5);
  EXPECT_LE(after, 1.05) << "before " << before;
  for (int e = 1; e < 16; ++e) {  // the hottest expert has the most copies
    EXPECT_GE(plan->Replicas(0, 0).size(), plan->Replicas(0, e).size());
  }
  EXPECT_GE(plan->Replicas(0, 0).size(), 2u);
  for (int e = 0; e < 16; ++e) EXPECT_GE(plan->Replicas(0, e).size(), 1u);
  EXPECT_EQ(std::vector<int32_t>(plan->SlotExperts(1).begin(), plan->SlotExperts(1).end()),
            std::vector<int32_t>(uniform->SlotExperts(1).begin(), uniform->SlotExperts(1).end()));
  // Deterministic: the same counts give the same plan.
  EXPECT_EQ(*plan, *PlanPlacement(load, 4, 24, 1));
  EXPECT_FALSE(PlanPlacement(load, 5, 24, 1).ok());
  EXPECT_FALSE(PlanPlacement(load, 4, 12, 1).ok());
}

}  // namespace
}  // namespace strata::expert_parallel
