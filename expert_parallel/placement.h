// expert_parallel::Placement: where each MoE layer's experts live (DESIGN.md §1, §4).
//
// Logical experts (the checkpoint's experts 0..num_experts-1) map to physical slots, slots to
// ranks: num_slots = num_experts + redundant, every rank holds num_slots / num_ranks consecutive
// slots (rank r: slots [r * slots_per_rank, (r + 1) * slots_per_rank)). A logical expert may sit
// in several slots (redundant copies of hot experts); each one has at least one. Layers are
// indexed by the model's layer index (dense layers carry a table too, unused).
//
// A placement is plain data: built uniformly, by the EPLB planner (eplb.h), or read from JSON,
// and swapped at run time as a whole (shared_ptr<const Placement>). Immutable after creation;
// thread-safe to read.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"

namespace strata::expert_parallel {

class Placement {
 public:
  // Slot s of layer l holds expert (s % num_experts): redundant slots copy the low-numbered
  // experts. kInvalidArgument unless num_ranks divides num_experts + redundant.
  static StatusOr<Placement> Uniform(int num_layers, int num_experts, int redundant, int num_ranks);
  // slot_experts[layer][slot]. kInvalidArgument naming the layer/slot when a table has the wrong
  // length, an expert is out of range, or an expert has no slot.
  static StatusOr<Placement> FromTables(int num_ranks, int num_experts,
                                        std::vector<std::vector<int32_t>> slot_experts,
                                        uint64_t version);

  // {"version", "num_ranks", "num_experts", "num_slots", "layers": [[expert of slot, ...], ...]}.
  nlohmann::json ToJson() const;
  static StatusOr<Placement> FromJson(const nlohmann::json& j);
  static StatusOr<Placement> LoadFile(const std::string& path);
  Status SaveFile(const std::string& path) const;

  int num_layers() const { return static_cast<int>(slot_experts_.size()); }
  int num_experts() const { return num_experts_; }
  int num_ranks() const { return num_ranks_; }
  int num_slots() const { return num_slots_; }
  int slots_per_rank() const { return num_slots_ / num_ranks_; }
  uint64_t version() const { return version_; }
  int RankOfSlot(int slot) const { return slot / slots_per_rank(); }
  int32_t ExpertOfSlot(int layer, int slot) const { return slot_experts_[layer][slot]; }
  std::span<const int32_t> SlotExperts(int layer) const { return slot_experts_[layer]; }
  // The slots holding `expert` in `layer`, ascending.
  std::span<const int32_t> Replicas(int layer, int expert) const {
    const auto& b = replica_begin_[layer];
    return {replica_slots_[layer].data() + b[expert],
            static_cast<size_t>(b[expert + 1] - b[expert])};
  }
  // The slot that computes choice `choice` of token `token` sent by rank `source_rank`: replicas
  // are taken round-robin over (source_rank + token), so copies share the load evenly.
  int SlotFor(int layer, int expert, int source_rank, int64_t token) const {
    auto r = Replicas(layer, expert);
    return r[static_cast<size_t>((source_rank + token) % static_cast<int64_t>(r.size()))];
  }
  // The distinct experts whose slots are on `rank` in `layer`, ascending.
  std::vector<int32_t> ExpertsOnRank(int layer, int rank) const;

  bool operator==(const Placement& o) const {
    return num_ranks_ == o.num_ranks_ && num_experts_ == o.num_experts_ &&
           slot_experts_ == o.slot_experts_;
  }

 private:
  int num_ranks_ = 1;
  int num_experts_ = 0;
  int num_slots_ = 0;
  uint64_t version_ = 0;
  std::vector<std::vector<int32_t>> slot_experts_;
  std::vector<std::vector<int32_t>> replica_slots_;  // per layer: slots sorted by expert
  std::vector<std::vector<int32_t>> replica_begin_;  // per layer: [num_experts + 1]
};

}  // namespace strata::expert_parallel
