// Merging the per-block, per-segment transfers of the KV pool into fewer, larger ones. KV moves
// one segment (one layer's array) of one block at a time -- a few KiB -- and per-transfer costs
// dominate at that size (UCX tcp: ~10x less bandwidth at 64 KiB than at 1 MiB). Both the paged
// KV of an instance and the pool's arena store a segment of consecutive blocks contiguously, so
// runs of consecutive blocks merge into one transfer per segment.
#pragma once

#include <cstdint>
#include <vector>

#include "transport/transport.h"

namespace strata::kvcache {

struct BlockTransfer {
  transport::Transfer transfer;
  int block = 0;  // the caller's index of the block it moves (part of)
};

struct MergedTransfer {
  transport::Transfer transfer;
  std::vector<int> blocks;  // every block it moves (part of)
};

// Merges transfers that continue one another: same peer, local region, remote region and
// deadline, with both offsets contiguous; no result longer than `max_bytes`.
std::vector<MergedTransfer> CoalesceTransfers(std::vector<BlockTransfer> transfers,
                                              uint64_t max_bytes = 64ull << 20);

}  // namespace strata::kvcache
