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

struct Item {
  double load;
  int32_t expert;
};

// Longest-processing-time-first assignment of the copies to ranks (per_rank slots each,
// preferring ranks without a copy of the same expert), then pairwise swaps that lower the
// largest rank load. Returns the ranks' items; *max_load is the largest rank load.
std::vector<std::vector<Item>> Assign(std::vector<Item> items, int num_ranks, int per_rank,
                                      double* max_load) {
  std::stable_sort(items.begin(), items.end(),
                   [](const Item& a, const Item& b) { return a.load > b.load; });
  std::vector<double> load(num_ranks, 0.0);
  std::vector<std::vector<Item>> ranks(num_ranks);
  for (const Item& it : items) {
    int best = -1;
    for (int pass = 0; pass < 2 && best < 0; ++pass) {
      for (int r = 0; r < num_ranks; ++r) {
        if (static_cast<int>(ranks[r].size()) >= per_rank) continue;
        bool has = false;
        for (const Item& x : ranks[r]) has = has || x.expert == it.expert;
        if (pass == 0 && has) continue;
        if (best < 0 || load[r] < load[best]) best = r;
      }
    }
    load[best] += it.load;
    ranks[best].push_back(it);
  }
  for (int iter = 0; iter < 256; ++iter) {
    const int m = static_cast<int>(std::max_element(load.begin(), load.end()) - load.begin());
    double best_gain = 1e-9;
    int br = -1, bi = -1, bj = -1;
    for (int r = 0; r < num_ranks; ++r) {
      if (r == m) continue;
      for (size_t i = 0; i < ranks[m].size(); ++i) {
        for (size_t j = 0; j < ranks[r].size(); ++j) {
          const double d = ranks[m][i].load - ranks[r][j].load;
          if (d <= 0) continue;
          const double new_max = std::max(load[m] - d, load[r] + d);
          if (load[m] - new_max > best_gain) {
            best_gain = load[m] - new_max;
            br = r;
            bi = static_cast<int>(i);
            bj = static_cast<int>(j);
          }
        }
      }
    }
    if (br < 0) break;
    const double d = ranks[m][bi].load - ranks[br][bj].load;
    std::swap(ranks[m][bi], ranks[br][bj]);
    load[m] -= d;
    load[br] += d;
  }
  *max_load = *std::max_element(load.begin(), load.end());
  return ranks;
}

std::vector<int32_t> PlanLayer(const ExpertLoad& load, int layer, int num_ranks, int num_slots) {
  const int E = load.num_experts;
  const int per_rank = num_slots / num_ranks;
  const int extras = num_slots - E;
  std::vector<int> cold(E);  // experts by ascending load: where unneeded slots go
  for (int e = 0; e < E; ++e) cold[e] = e;
  std::stable_sort(cold.begin(), cold.end(),
                   [&](int a, int b) { return load.at(layer, a) < load.at(layer, b); });
  std::vector<std::vector<Item>> best;
  double best_max = 0;
  // Hot copies: `hot` extra slots go, one at a time, to the expert with the most load per copy
  // (ties: lower id); the other extra slots hold copies of the coldest experts. Every split is
  // tried and the one with the lowest largest rank load wins (copies are discrete, so more is
  // not always better).
  for (int hot = extras; hot >= 0; --hot) {
    std::vector<int> copies(E, 1);
    for (int x = 0; x < hot; ++x) {
      int b = 0;
      for (int e = 1; e < E; ++e) {
        if (load.at(layer, e) * copies[b] > load.at(layer, b) * copies[e]) b = e;
      }
      ++copies[b];
    }
    for (int x = 0; x < extras - hot; ++x) ++copies[cold[x % E]];
    std::vector<Item> items;
    for (int e = 0; e < E; ++e) {
      for (int c = 0; c < copies[e]; ++c) {
        items.push_back({static_cast<double>(load.at(layer, e)) / copies[e], e});
      }
    }
    double max_load = 0;
    auto ranks = Assign(std::move(items), num_ranks, per_rank, &max_load);
    if (best.empty() || max_load < best_max - 1e-9) {
      best = std::move(ranks);
      best_max = max_load;
    }
  }
  std::vector<int32_t> table;
  for (auto& items : best) {
    std::vector<int32_t> experts;
    for (const Item& it : items) experts.push_back(it.expert);
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
