#include "expert_parallel/placement.h"

#include <algorithm>
#include <fstream>
#include <sstream>

namespace strata::expert_parallel {

StatusOr<Placement> Placement::Uniform(int num_layers, int num_experts, int redundant,
                                       int num_ranks) {
  if (num_layers < 0 || num_experts < 1 || redundant < 0 || num_ranks < 1) {
    return InvalidArgumentError("placement: need num_experts >= 1, redundant >= 0, ranks >= 1");
  }
  std::vector<int32_t> table(num_experts + redundant);
  for (size_t s = 0; s < table.size(); ++s) table[s] = static_cast<int32_t>(s % num_experts);
  return FromTables(num_ranks, num_experts, std::vector<std::vector<int32_t>>(num_layers, table),
                    0);
}

StatusOr<Placement> Placement::FromTables(int num_ranks, int num_experts,
                                          std::vector<std::vector<int32_t>> slot_experts,
                                          uint64_t version) {
  if (num_ranks < 1) return InvalidArgumentError("placement: num_ranks must be >= 1");
  if (num_experts < 1) return InvalidArgumentError("placement: num_experts must be >= 1");
  Placement p;
  p.num_ranks_ = num_ranks;
  p.num_experts_ = num_experts;
  p.version_ = version;
  p.num_slots_ = slot_experts.empty() ? num_experts : static_cast<int>(slot_experts[0].size());
  if (p.num_slots_ < num_experts || p.num_slots_ % num_ranks != 0) {
    return InvalidArgumentError("placement: " + std::to_string(p.num_slots_) +
                                " slots: need >= num_experts (" + std::to_string(num_experts) +
                                ") and a multiple of the EP size " + std::to_string(num_ranks));
  }
  for (size_t l = 0; l < slot_experts.size(); ++l) {
    const auto& t = slot_experts[l];
    const std::string where = "placement: layer " + std::to_string(l) + ": ";
    if (static_cast<int>(t.size()) != p.num_slots_) {
      return InvalidArgumentError(where + std::to_string(t.size()) + " slots, expected " +
                                  std::to_string(p.num_slots_));
    }
    std::vector<int32_t> begin(num_experts + 1, 0);
    for (size_t s = 0; s < t.size(); ++s) {
      if (t[s] < 0 || t[s] >= num_experts) {
        return InvalidArgumentError(where + "slot " + std::to_string(s) + " holds expert " +
                                    std::to_string(t[s]) + ", outside [0, " +
                                    std::to_string(num_experts) + ")");
      }
      ++begin[t[s] + 1];
    }
    for (int e = 0; e < num_experts; ++e) {
      if (begin[e + 1] == 0) {
        return InvalidArgumentError(where + "expert " + std::to_string(e) + " has no slot");
      }
      begin[e + 1] += begin[e];
    }
    std::vector<int32_t> slots(t.size());
    std::vector<int32_t> next(begin.begin(), begin.end() - 1);
    for (size_t s = 0; s < t.size(); ++s) slots[next[t[s]]++] = static_cast<int32_t>(s);
    p.replica_slots_.push_back(std::move(slots));
    p.replica_begin_.push_back(std::move(begin));
  }
  p.slot_experts_ = std::move(slot_experts);
  return p;
}

std::vector<int32_t> Placement::ExpertsOnRank(int layer, int rank) const {
  std::vector<int32_t> out;
  for (int s = rank * slots_per_rank(); s < (rank + 1) * slots_per_rank(); ++s) {
    out.push_back(slot_experts_[layer][s]);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

nlohmann::json Placement::ToJson() const {
  return {{"version", version_},
          {"num_ranks", num_ranks_},
          {"num_experts", num_experts_},
          {"num_slots", num_slots_},
          {"layers", slot_experts_}};
}

StatusOr<Placement> Placement::FromJson(const nlohmann::json& j) {
  if (!j.is_object()) return InvalidArgumentError("placement JSON: not an object");
  for (const char* key : {"num_ranks", "num_experts", "layers"}) {
    if (!j.contains(key)) return InvalidArgumentError(std::string("placement JSON: no ") + key);
  }
  if (!j["num_ranks"].is_number_integer() || !j["num_experts"].is_number_integer() ||
      !j["layers"].is_array()) {
    return InvalidArgumentError(
        "placement JSON: num_ranks/num_experts must be integers, "
        "layers an array of arrays");
  }
  std::vector<std::vector<int32_t>> tables;
  for (const auto& layer : j["layers"]) {
    if (!layer.is_array()) return InvalidArgumentError("placement JSON: a layer is not an array");
    std::vector<int32_t> t;
    for (const auto& e : layer) {
      if (!e.is_number_integer()) {
        return InvalidArgumentError("placement JSON: a slot is not an integer");
      }
      int64_t v = e.get<int64_t>();
      if (v < INT32_MIN || v > INT32_MAX) return InvalidArgumentError("placement JSON: slot range");
      t.push_back(static_cast<int32_t>(v));
    }
    tables.push_back(std::move(t));
  }
  const int64_t ranks = j["num_ranks"].get<int64_t>(), experts = j["num_experts"].get<int64_t>();
  if (ranks < 1 || ranks > 4096 || experts < 1 || experts > (1 << 20)) {
    return InvalidArgumentError("placement JSON: num_ranks/num_experts out of range");
  }
  uint64_t version = 0;
  if (j.contains("version")) {
    if (!j["version"].is_number_unsigned()) {
      return InvalidArgumentError("placement JSON: version must be a non-negative integer");
    }
    version = j["version"].get<uint64_t>();
  }
  STRATA_ASSIGN_OR_RETURN(
      Placement p,
      FromTables(static_cast<int>(ranks), static_cast<int>(experts), std::move(tables), version));
  if (j.contains("num_slots") && j["num_slots"] != p.num_slots()) {
    return InvalidArgumentError("placement JSON: num_slots disagrees with the tables");
  }
  return p;
}

StatusOr<Placement> Placement::LoadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFoundError("placement file " + path + ": cannot open");
  nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded()) return InvalidArgumentError("placement file " + path + ": not JSON");
  auto p = FromJson(j);
  if (!p.ok()) return InvalidArgumentError(path + ": " + std::string(p.status().message()));
  return p;
}

Status Placement::SaveFile(const std::string& path) const {
  std::ofstream out(path);
  if (!out) return NotFoundError("placement file " + path + ": cannot write");
  out << ToJson().dump() << "\n";
  return out ? OkStatus() : DataLossError("placement file " + path + ": write failed");
}

}  // namespace strata::expert_parallel
