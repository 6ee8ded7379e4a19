#include "expert_parallel/eplb.h"

#include <algorithm>
#include <numeric>

namespace strata::expert_parallel {

int64_t ExpertLoad::LayerTotal(int layer) const {
  int64_t sum = 0;
  for (int e = 0; e < num_experts; ++e) sum += at(layer, e);
  return sum;
}

namespace {

std::vector<int32_t> PlanLayer(const ExpertLoad& load, int layer, int num_ranks, int num_slots) {
  const int E = load.num_experts;
  const int per_rank = num_slots / num_ranks;
  std::vector<int> copies(E, 1);
  // 1. Replication: most load per copy first (ties: lower expert id).
  for (int extra = 0; extra < num_slots - E; ++extra) {
    int best = 0;
    for (int e = 1; e < E; ++e) {
      // load[e] / copies[e] > load[best] / copies[best], without division.
      if (load.at(layer, e) * copies[best] > load.at(layer, best) * copies[e]) best = e;
    }
    ++copies[best];
  }
  struct Item {
    double load;
    int32_t expert;
  };
  std::vector<Item> items;
  for (int e = 0; e < E; ++e) {
    for (int c = 0; c < copies[e]; ++c) {
      items.push_back({static_cast<double>(load.at(layer, e)) / copies[e], e});
    }
  }
  std::stable_sort(items.begin(), items.end(),
                   [](const Item& a, const Item& b) { return a.load > b.load; });
  // 2. Assignment: least-loaded rank with room and without this expert.
  std::vector<double> rank_load(num_ranks, 0.0);
  std::vector<std::vector<int32_t>> rank_experts(num_ranks);
  for (const Item& it : items) {
    int best = -1;
    for (int pass = 0; pass < 2 && best < 0; ++pass) {
      for (int r = 0; r < num_ranks; ++r) {
        if (static_cast<int>(rank_experts[r].size()) >= per_rank) continue;
        const auto& have = rank_experts[r];
        if (pass == 0 && std::find(have.begin(), have.end(), it.expert) != have.end()) continue;
        if (best < 0 || rank_load[r] < rank_load[best]) best = r;
      }
    }
    rank_load[best] += it.load;
    rank_experts[best].push_back(it.expert);
  }
  std::vector<int32_t> table;
  for (auto& experts : rank_experts) {
    std::sort(experts.begin(), experts.end());
    table.insert(table.end(), experts.begin(), experts.end());
  }
  return table;
}

}  // namespace

StatusOr<Placement> PlanPlacement(const ExpertLoad& load, int num_ranks, int num_slots,
                                  uint64_t version) {
  if (num_ranks < 1 || num_slots < load.num_experts || num_slots % num_ranks != 0) {
    return InvalidArgumentError("EPLB: " + std::to_string(num_slots) + " slots for " +
                                std::to_string(load.num_experts) + " experts on " +
                                std::to_string(num_ranks) +
                                " ranks: need slots >= experts and "
                                "a multiple of the EP size");
  }
  if (load.counts.size() != static_cast<size_t>(load.num_layers) * load.num_experts) {
    return InvalidArgumentError("EPLB: load counts do not match num_layers * num_experts");
  }
  std::vector<std::vector<int32_t>> tables;
  for (int l = 0; l < load.num_layers; ++l) {
    if (load.LayerTotal(l) == 0) {
      std::vector<int32_t> t(num_slots);
      for (int s = 0; s < num_slots; ++s) t[s] = s % load.num_experts;
      tables.push_back(std::move(t));
    } else {
      tables.push_back(PlanLayer(load, l, num_ranks, num_slots));
    }
  }
  return Placement::FromTables(num_ranks, load.num_experts, std::move(tables), version);
}

std::vector<double> PredictedRankLoads(const Placement& placement, const ExpertLoad& load,
                                       int layer) {
  std::vector<double> out(placement.num_ranks(), 0.0);
  for (int e = 0; e < load.num_experts; ++e) {
    auto reps = placement.Replicas(layer, e);
    for (int32_t s : reps) {
      out[placement.RankOfSlot(s)] += static_cast<double>(load.at(layer, e)) / reps.size();
    }
  }
  return out;
}

double MaxMeanRatio(const std::vector<double>& loads) {
  if (loads.empty()) return 1.0;
  double sum = std::accumulate(loads.begin(), loads.end(), 0.0);
  if (sum <= 0) return 1.0;
  return *std::max_element(loads.begin(), loads.end()) / (sum / loads.size());
}

}  // namespace strata::expert_parallel
