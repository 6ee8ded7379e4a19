#include "kvcache/kv_transfer.h"

#include <algorithm>

#include "common/log.h"

namespace strata::kvcache {

int NumSegments(const KvCacheSpec& spec) {
  return spec.layout == KvLayout::kGqa ? 2 * spec.num_layers : spec.num_layers;
}

SegmentRange SegmentsOfLayer(const KvCacheSpec& spec, int layer) {
  return spec.layout == KvLayout::kGqa ? SegmentRange{2 * layer, 2} : SegmentRange{layer, 1};
}

StatusOr<std::unique_ptr<RegisteredKv>> RegisteredKv::Register(PagedKvCache* cache,
                                                               transport::Transport* transport) {
  if (cache == nullptr) {
    return FailedPreconditionError(
        "the KV cache is not in host memory (a device runner): moving KV between processes "
        "needs --device cpu");
  }
  auto out = std::make_unique<RegisteredKv>();
  out->cache_ = cache;
  const KvCacheSpec& spec = cache->spec();
  out->segment_bytes_ =
      static_cast<uint64_t>(spec.block_size) * spec.TokenElements() * sizeof(bf16);
  const uint64_t array_bytes = cache->array_bytes();
  // The arrays move into memory the transport allocates (UCX: shared memory that a peer on
  // this host copies to directly, one memcpy per transfer instead of a protocol round).
  out->regions_.resize(cache->num_arrays());
  Status moved = cache->Relocate([&](int a, uint64_t bytes) -> StatusOr<PagedKvCache::ArrayMemory> {
    STRATA_ASSIGN_OR_RETURN(auto region, transport->AllocateMemory(bytes));
    std::shared_ptr<transport::Region> shared(std::move(region));
    out->regions_[a] = shared;
    return PagedKvCache::ArrayMemory{shared->data(), shared};
  });
  if (!moved.ok()) {
    log::Info("KV cache stays in its own memory ({}); it is registered as it is", moved.message());
  }
  for (int l = 0; l < spec.num_layers; ++l) {
    const int first = SegmentsOfLayer(spec, l).first;
    for (int i = 0; i < SegmentsOfLayer(spec, l).count; ++i) {
      if (out->regions_[first + i]) continue;
      bf16* data = i == 0 ? cache->k(l) : cache->v(l);
      STRATA_ASSIGN_OR_RETURN(auto r, transport->RegisterMemory(data, array_bytes));
      out->regions_[first + i] = std::move(r);
    }
  }
  return out;
}

v1::KvLocation RegisteredKv::Describe(std::span<const BlockId> blocks,
                                      const std::string& instance_id,
                                      const std::string& address) const {
  v1::KvLocation loc;
  loc.set_owner_instance_id(instance_id);
  loc.set_owner_address(address);
  for (const auto& r : regions_) {
    auto* m = loc.add_regions();
    m->set_address(r->remote().address);
    m->set_length(r->remote().length);
    m->set_packed_key(r->remote().packed_key);
  }
  for (BlockId b : blocks) {
    auto* ref = loc.add_blocks();
    ref->set_region_index(0);
    ref->set_offset(static_cast<uint64_t>(b) * segment_bytes_);
    ref->set_length(segment_bytes_ * regions_.size());
    ref->set_block_id(static_cast<uint32_t>(b));
  }
  loc.set_block_size_tokens(static_cast<uint32_t>(spec().block_size));
  loc.set_num_segments(static_cast<uint32_t>(regions_.size()));
  loc.set_segment_bytes(segment_bytes_);
  loc.set_segments_in_regions(true);
  return loc;
}

transport::RemoteRegion ToRemoteRegion(const v1::RemoteMemory& m) {
  transport::RemoteRegion r;
  r.address = m.address();
  r.length = m.length();
  r.packed_key = m.packed_key();
  return r;
}

StatusOr<std::vector<transport::Transfer>> PlanKvTransfers(
    const RegisteredKv& local, std::span<const BlockId> local_blocks, const v1::KvLocation& remote,
    transport::PeerId peer, const KvTransferRange& range, transport::Deadline deadline) {
  const int segments = local.num_segments();
  const int64_t local_bs = local.spec().block_size;
  const uint64_t token_bytes = local.segment_bytes() / static_cast<uint64_t>(local_bs);
  const int64_t remote_bs = remote.block_size_tokens();
  if (static_cast<int>(remote.num_segments()) != segments) {
    return InvalidArgumentError("KV layout mismatch: the peer has " +
                                std::to_string(remote.num_segments()) + " KV arrays, this side " +
                                std::to_string(segments) + " (not the same model?)");
  }
  if (remote_bs < 1 || remote.segment_bytes() % remote_bs != 0 ||
      remote.segment_bytes() / remote_bs != token_bytes) {
    return InvalidArgumentError(
        "KV layout mismatch: the peer stores " +
        std::to_string(remote_bs < 1 ? 0 : remote.segment_bytes() / remote_bs) +
        " bytes per token and array, this side " + std::to_string(token_bytes));
  }
  if (range.num_tokens < 0 || range.first_token < 0) {
    return InvalidArgumentError("negative KV transfer range");
  }
  const int64_t end = range.first_token + range.num_tokens;
  if ((end + local_bs - 1) / local_bs > static_cast<int64_t>(local_blocks.size())) {
    return InvalidArgumentError("KV transfer of " + std::to_string(end) + " tokens, but only " +
                                std::to_string(local_blocks.size()) + " local blocks");
  }
  if ((end + remote_bs - 1) / remote_bs > remote.blocks_size()) {
    return InvalidArgumentError("KV transfer of " + std::to_string(end) + " tokens, but the peer " +
                                "named only " + std::to_string(remote.blocks_size()) + " blocks");
  }
  if (remote.segments_in_regions() && remote.regions_size() != segments) {
    return InvalidArgumentError("KV location names " + std::to_string(remote.regions_size()) +
                                " regions for " + std::to_string(segments) + " arrays");
  }
  SegmentRange seg = range.segments.count == 0 ? SegmentRange{0, segments} : range.segments;
  if (seg.first < 0 || seg.first + seg.count > segments) {
    return InvalidArgumentError("KV segment range outside [0, " + std::to_string(segments) + ")");
  }
  std::vector<transport::RemoteRegion> regions;
  for (const auto& m : remote.regions()) regions.push_back(ToRemoteRegion(m));

  std::vector<transport::Transfer> out;
  for (int64_t t = range.first_token; t < end;) {
    const int64_t lb = t / local_bs, ls = t % local_bs;
    const int64_t rb = t / remote_bs, rs = t % remote_bs;
    const int64_t run = std::min({local_bs - ls, remote_bs - rs, end - t});
    const auto& ref = remote.blocks(static_cast<int>(rb));
    if (!remote.segments_in_regions() &&
        static_cast<int>(ref.region_index()) >= remote.regions_size()) {
      return InvalidArgumentError("KV block ref names region " +
                                  std::to_string(ref.region_index()) + " of " +
                                  std::to_string(remote.regions_size()));
    }
    for (int s = seg.first; s < seg.first + seg.count; ++s) {
      transport::Transfer x;
      x.peer = peer;
      x.local = &local.region(s);
      x.local_offset = static_cast<uint64_t>(local_blocks[lb]) * local.segment_bytes() +
                       static_cast<uint64_t>(ls) * token_bytes;
      if (remote.segments_in_regions()) {
        x.remote = regions[s];
        x.remote_offset = ref.offset() + static_cast<uint64_t>(rs) * token_bytes;
      } else {
        x.remote = regions[ref.region_index()];
        x.remote_offset = ref.offset() + static_cast<uint64_t>(s) * remote.segment_bytes() +
                          static_cast<uint64_t>(rs) * token_bytes;
      }
      x.length = static_cast<uint64_t>(run) * token_bytes;
      x.deadline = deadline;
      STRATA_RETURN_IF_ERROR(transport::ValidateTransfer(x));
      out.push_back(std::move(x));
    }
    t += run;
  }
  return out;
}

}  // namespace strata::kvcache
