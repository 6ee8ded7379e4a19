// Moving KV blocks between processes (DESIGN.md §3-4): this instance's paged KV registered with
// a transport, described to peers as a strata.v1.KvLocation, and the Put/Get transfers that move
// a range of a sequence's tokens between local blocks and a remote location.
//
// A block is split into segments, one per KV array (GQA: K0, V0, K1, V1, ...; MLA: the latent
// array of each layer), so a layer's KV can move as soon as that layer is computed. The two sides
// may use different block sizes (the transfers follow runs of tokens that are contiguous on
// both); the bytes per token of each segment must match (same model), which is checked.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "kvcache/block_pool.h"
#include "kvcache/kv_cache.h"
#include "proto/common.pb.h"
#include "transport/transport.h"

namespace strata::kvcache {

// Segments of `layer` (GQA: K and V, 2 segments; MLA: 1) as [first, first + count).
struct SegmentRange {
  int first = 0;
  int count = 0;
};
SegmentRange SegmentsOfLayer(const KvCacheSpec& spec, int layer);
int NumSegments(const KvCacheSpec& spec);

// `cache`'s arrays registered with `transport`. Register moves the arrays into memory from the
// transport's AllocateMemory when it can (the cache then keeps that memory alive); call it before
// the cache holds anything in use. The cache must outlive this.
class RegisteredKv {
 public:
  static StatusOr<std::unique_ptr<RegisteredKv>> Register(PagedKvCache* cache,
                                                          transport::Transport* transport);

  const KvCacheSpec& spec() const { return cache_->spec(); }
  int num_segments() const { return static_cast<int>(regions_.size()); }
  uint64_t segment_bytes() const { return segment_bytes_; }  // one block, one array
  const transport::Region& region(int segment) const { return *regions_[segment]; }

  // Where `blocks` (in token order) are, for a peer to read or write them.
  v1::KvLocation Describe(std::span<const BlockId> blocks, const std::string& instance_id,
                          const std::string& address) const;

 private:
  PagedKvCache* cache_ = nullptr;
  uint64_t segment_bytes_ = 0;
  std::vector<std::shared_ptr<transport::Region>> regions_;  // segment order (shared with cache_)
};

// A peer's memory as described in a strata.v1.RemoteMemory.
transport::RemoteRegion ToRemoteRegion(const v1::RemoteMemory& m);

// What to move: tokens [first_token, first_token + num_tokens) of a sequence whose local blocks
// are `local_blocks` and whose remote blocks are `remote.blocks`, segments `segments`.
struct KvTransferRange {
  int64_t first_token = 0;
  int64_t num_tokens = 0;
  SegmentRange segments;  // count 0: every segment
};

// The transfers for `range` (use them with Put to write the remote side, with Get to read it).
// kInvalidArgument when the layouts do not match (segments, bytes per token), a block list is
// too short for the range, or a block ref names a region the location does not have.
StatusOr<std::vector<transport::Transfer>> PlanKvTransfers(
    const RegisteredKv& local, std::span<const BlockId> local_blocks, const v1::KvLocation& remote,
    transport::PeerId peer, const KvTransferRange& range, transport::Deadline deadline);

}  // namespace strata::kvcache
