// Wire format of the EP dispatch and combine messages (one message per (source, destination)
// rank pair per MoE layer call), and the row codecs. Pure functions over caller-owned buffers:
// the communicator packs into and unpacks from its pre-registered buffers, so nothing here
// allocates.
//
// Dispatch message (source -> destination), 8-byte aligned sections:
//   DispatchHeader
//   int32 rank_entries[num_ranks]    entries the source sends to each rank (load metrics)
//   int32 expert_counts[num_experts] the source's routing histogram over logical experts (EPLB)
//   int32 entries[num_entries][2]    (row in this message, logical expert), by (token, choice)
//   float scales[num_rows]           INT8 only: per-row scale (absmax / 127)
//   rows[num_rows][hidden]           int8 or bf16; one row per token (sent once per destination
//                                    however many of its choices live there)
// Combine message (destination -> source): CombineHeader, then bf16 rows[num_entries][hidden],
// the expert output of each entry in the order of the dispatch message's entries.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/half.h"
#include "common/status.h"

namespace strata::expert_parallel {

enum class WireDType : uint32_t { kInt8 = 1, kBf16 = 2 };
std::string_view WireDTypeName(WireDType t);
StatusOr<WireDType> ParseWireDType(std::string_view name);  // "int8" | "bf16"

inline constexpr uint32_t kDispatchMagic = 0x31445045;  // "EPD1"
inline constexpr uint32_t kCombineMagic = 0x31435045;   // "EPC1"

struct DispatchHeader {
  uint32_t magic = kDispatchMagic;
  uint32_t layer = 0;
  uint64_t round = 0;
  uint64_t placement_version = 0;
  uint32_t source_rank = 0;
  uint32_t dtype = 0;
  uint32_t num_rows = 0;
  uint32_t num_entries = 0;
};

struct CombineHeader {
  uint32_t magic = kCombineMagic;
  uint32_t layer = 0;
  uint64_t round = 0;
  uint32_t source_rank = 0;
  uint32_t num_entries = 0;
};

// The shape every message of a group obeys. Capacities are the worst case: all max_tokens tokens
// of a source go to one destination with all top_k choices.
struct WireShape {
  int num_ranks = 1;
  int num_experts = 0;
  int64_t hidden = 0;
  int top_k = 0;
  int64_t max_tokens = 0;
  WireDType dtype = WireDType::kInt8;

  size_t RowBytes() const {
    return static_cast<size_t>(hidden) * (dtype == WireDType::kInt8 ? 1 : 2);
  }
  size_t DispatchBytes(int64_t rows, int64_t entries) const;
  size_t DispatchCapacity() const { return DispatchBytes(max_tokens, max_tokens * top_k); }
  size_t CombineBytes(int64_t entries) const;
  size_t CombineCapacity() const { return CombineBytes(max_tokens * top_k); }
};

// Section pointers of a dispatch message laid out for (rows, entries).
struct DispatchView {
  DispatchHeader* header;
  int32_t* rank_entries;
  int32_t* expert_counts;
  int32_t* entries;
  float* scales;  // null for bf16
  uint8_t* rows;
};
DispatchView LayoutDispatch(const WireShape& shape, uint8_t* base, int64_t rows, int64_t entries);

// Reads a received dispatch message of `bytes` bytes: checks magic, counts against the shape's
// capacity and the section sizes against `bytes`, every entry's row and expert in range.
// kDataLoss naming what is wrong (a peer sent garbage or a different shape).
StatusOr<DispatchView> ParseDispatch(const WireShape& shape, uint8_t* base, size_t bytes);
StatusOr<const CombineHeader*> ParseCombine(const WireShape& shape, const uint8_t* base,
                                            size_t bytes);

// Row codecs. INT8: symmetric per-row, scale = absmax / 127, q = round(x / scale) clamped to
// [-127, 127]; an all-zero row has scale 0. BF16: round to nearest even.
void EncodeRow(WireDType dtype, const float* x, int64_t n, uint8_t* out, float* scale);
void DecodeRow(WireDType dtype, const uint8_t* in, float scale, int64_t n, float* out);

}  // namespace strata::expert_parallel
