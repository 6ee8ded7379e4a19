#include "kvcache/pool_transfers.h"

#include <string>

#include "kvcache/kv_transfer.h"

namespace strata::kvcache {

void BlockTransfers::Append(BlockTransfers more) {
  for (size_t t = 0; t < more.size(); ++t) {
    transfers.push_back(std::move(more.transfers[t]));
    blocks.push_back(std::move(more.blocks[t]));
  }
}

void ForEachFailedBlock(const std::vector<std::vector<int>>& blocks,
                        const std::vector<Status>& statuses,
                        const std::function<void(int block, const Status& status)>& on_failed) {
  for (size_t t = 0; t < statuses.size() && t < blocks.size(); ++t) {
    if (statuses[t].ok()) continue;
    for (int b : blocks[t]) on_failed(b, statuses[t]);
  }
}

StatusOr<BlockTransfers> PlanBlockMoves(std::span<const transport::Region* const> local_regions,
                                        uint64_t segment_bytes, std::span<const BlockMove> moves,
                                        const v1::KvLocation& remote, transport::PeerId peer,
                                        transport::Deadline deadline, uint64_t max_bytes) {
  const size_t segments = local_regions.size();
  if (remote.num_segments() != segments || remote.segment_bytes() != segment_bytes) {
    return InvalidArgumentError("KV layout mismatch: the peer stores " +
                                std::to_string(remote.num_segments()) + " arrays of " +
                                std::to_string(remote.segment_bytes()) + " bytes a block, this " +
                                "side " + std::to_string(segments) + " of " +
                                std::to_string(segment_bytes) + " (not the same model?)");
  }
  const bool in_regions = remote.segments_in_regions();
  if (in_regions && static_cast<size_t>(remote.regions_size()) != segments) {
    return InvalidArgumentError("KV location names " + std::to_string(remote.regions_size()) +
                                " regions for " + std::to_string(segments) + " arrays");
  }
  std::vector<transport::RemoteRegion> regions;
  for (const auto& m : remote.regions()) regions.push_back(ToRemoteRegion(m));
  // Whether block b continues block a on both sides.
  auto continues = [&](const BlockMove& a, const BlockMove& b) {
    return b.local_offset == a.local_offset + segment_bytes &&
           b.remote->offset() == a.remote->offset() + segment_bytes &&
           (in_regions || b.remote->region_index() == a.remote->region_index());
  };
  for (const BlockMove& m : moves) {
    if (m.remote == nullptr) return InvalidArgumentError("KV block move without a remote block");
  }
  BlockTransfers out;
  for (size_t first = 0; first < moves.size();) {
    size_t end = first + 1;
    while (end < moves.size() && continues(moves[end - 1], moves[end]) &&
           (end + 1 - first) * segment_bytes <= max_bytes) {
      ++end;
    }
    const v1::KvBlockRef& ref = *moves[first].remote;
    if (!in_regions && static_cast<int>(ref.region_index()) >= remote.regions_size()) {
      return InvalidArgumentError("KV block ref names region " +
                                  std::to_string(ref.region_index()) + " of " +
                                  std::to_string(remote.regions_size()));
    }
    std::vector<int> blocks;
    for (size_t i = first; i < end; ++i) blocks.push_back(moves[i].block);
    for (size_t s = 0; s < segments; ++s) {
      transport::Transfer x;
      x.peer = peer;
      x.local = local_regions[s];
      x.local_offset = moves[first].local_offset;
      x.remote = regions[in_regions ? s : ref.region_index()];
      x.remote_offset = ref.offset() + (in_regions ? 0 : s * segment_bytes);
      x.length = (end - first) * segment_bytes;
      x.deadline = deadline;
      STRATA_RETURN_IF_ERROR(transport::ValidateTransfer(x));
      out.transfers.push_back(std::move(x));
      out.blocks.push_back(blocks);
    }
    first = end;
  }
  return out;
}

}  // namespace strata::kvcache
