#include "kvcache/pool_transfers.h"

#include <algorithm>
#include <tuple>

namespace strata::kvcache {

std::vector<MergedTransfer> CoalesceTransfers(std::vector<BlockTransfer> transfers,
                                              uint64_t max_bytes) {
  std::stable_sort(transfers.begin(), transfers.end(),
                   [](const BlockTransfer& a, const BlockTransfer& b) {
                     const transport::Transfer& x = a.transfer;
                     const transport::Transfer& y = b.transfer;
                     return std::tie(x.peer, x.local, x.remote.address, x.local_offset) <
                            std::tie(y.peer, y.local, y.remote.address, y.local_offset);
                   });
  std::vector<MergedTransfer> out;
  for (BlockTransfer& t : transfers) {
    if (!out.empty()) {
      MergedTransfer& last = out.back();
      const transport::Transfer& p = last.transfer;
      const transport::Transfer& x = t.transfer;
      if (p.peer == x.peer && p.local == x.local && p.remote.address == x.remote.address &&
          p.remote.length == x.remote.length && p.remote.packed_key == x.remote.packed_key &&
          p.deadline == x.deadline && p.local_offset + p.length == x.local_offset &&
          p.remote_offset + p.length == x.remote_offset && p.length + x.length <= max_bytes) {
        last.transfer.length += x.length;
        if (last.blocks.back() != t.block) last.blocks.push_back(t.block);
        continue;
      }
    }
    out.push_back(MergedTransfer{std::move(t.transfer), {t.block}});
  }
  return out;
}

}  // namespace strata::kvcache
