// The transfers that move whole KV blocks between an instance and the KV pool. KV is stored one
// segment (one layer's array) of one block at a time -- a few KiB -- and per-transfer costs
// dominate at that size (UCX tcp: ~10x less bandwidth at 64 KiB than at 1 MiB), so blocks that
// are consecutive on both sides move as one transfer per segment. The runs are found directly
// from the block offsets: no per-block, per-segment transfer is ever built (at 16 MiB of KV that
// was 1,812 transfers, each with a copy of its remote key, sorted and merged again).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "common/status.h"
#include "proto/common.pb.h"
#include "transport/transport.h"

namespace strata::kvcache {

// One block to move: segment s of it lies at `local_offset` in local_regions[s], and in the
// peer's location as `remote` says (segments_in_regions: at remote->offset() in region s; else
// at remote->offset() + s * segment_bytes in region remote->region_index()).
struct BlockMove {
  int block = 0;  // the caller's index of the block
  uint64_t local_offset = 0;
  const v1::KvBlockRef* remote = nullptr;
};

// Transfers for Transport::PutBatch / GetBatch, with the blocks each one moves (part of).
struct BlockTransfers {
  std::vector<transport::Transfer> transfers;
  std::vector<std::vector<int>> blocks;  // per transfer: the caller's indexes of its blocks
  size_t size() const { return transfers.size(); }
  void Append(BlockTransfers more);
};

// Calls `on_failed(block, status)` for every block of every transfer whose status (from the
// batch's completion, in the same order) is not OK.
void ForEachFailedBlock(const std::vector<std::vector<int>>& blocks,
                        const std::vector<Status>& statuses,
                        const std::function<void(int block, const Status& status)>& on_failed);

// The transfers for `moves` (use them with Put to write the peer's blocks, with Get to read
// them): runs of moves that continue one another on both sides (in the given order) become one
// transfer per segment, none longer than `max_bytes`. kInvalidArgument when `remote` is laid
// out otherwise (segments, segment bytes, regions) or a transfer falls outside its region.
StatusOr<BlockTransfers> PlanBlockMoves(std::span<const transport::Region* const> local_regions,
                                        uint64_t segment_bytes, std::span<const BlockMove> moves,
                                        const v1::KvLocation& remote, transport::PeerId peer,
                                        transport::Deadline deadline,
                                        uint64_t max_bytes = 64ull << 20);

}  // namespace strata::kvcache
