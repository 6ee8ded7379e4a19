// EPLB: expert-parallel load balancing (DESIGN.md §1). Token counts per (layer, expert) are
// collected every step (LoadCounter); the planner turns a window of them into a placement with
// redundant copies of the hot experts that minimizes the largest per-rank receive load.
//
// The planner is a pure, deterministic function: every rank of a group feeds it the same global
// counts and gets the same placement, so no rank has to broadcast one.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "expert_parallel/placement.h"

namespace strata::expert_parallel {

// Per-layer, per-expert token counts (one count per (token, choice) routed to the expert).
struct ExpertLoad {
  int num_layers = 0;
  int num_experts = 0;
  std::vector<int64_t> counts;  // [num_layers * num_experts]

  void Reset(int layers, int experts) {
    num_layers = layers;
    num_experts = experts;
    counts.assign(static_cast<size_t>(layers) * experts, 0);
  }
  int64_t& at(int layer, int expert) {
    return counts[static_cast<size_t>(layer) * num_experts + expert];
  }
  int64_t at(int layer, int expert) const {
    return counts[static_cast<size_t>(layer) * num_experts + expert];
  }
  int64_t LayerTotal(int layer) const;
};

// Greedy planner, per layer:
//  1. replication: each expert starts with one slot; h of the num_slots - num_experts extra
//     slots go, one at a time, to the expert with the largest load per copy, the others copy
//     the coldest experts; every h is tried, the best result kept (copies are discrete);
//  2. assignment: copies (each carrying load / copies) sorted by load, heaviest first, go to the
//     rank with the least load so far that still has a free slot and no copy of that expert
//     (longest-processing-time first), then pairwise swaps between the most loaded rank and the
//     others while they lower the largest rank load.
// Layers with no counts get the uniform table. kInvalidArgument when num_ranks does not divide
// num_slots or num_slots < num_experts.
StatusOr<Placement> PlanPlacement(const ExpertLoad& load, int num_ranks, int num_slots,
                                  uint64_t version);

// The receive load each rank of `placement` would get in `layer` if every expert's load splits
// evenly over its copies.
std::vector<double> PredictedRankLoads(const Placement& placement, const ExpertLoad& load,
                                       int layer);

// max / mean of `loads` (1 when all are zero).
double MaxMeanRatio(const std::vector<double>& loads);

}  // namespace strata::expert_parallel
