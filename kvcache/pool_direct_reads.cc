#include "kvcache/pool_direct_reads.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/log.h"
#include "common/page_memory.h"
#include "kvcache/slot_versions.h"

namespace strata::kvcache {

using transport::PeerId;

PoolDirectReads::PoolDirectReads(transport::Transport* transport, int num_shards, size_t max_blocks)
    : transport_(transport), max_blocks_(max_blocks), shards_(static_cast<size_t>(num_shards)) {}

PoolDirectReads::~PoolDirectReads() {
  stop_.store(true);
  for (auto& t : page_fills_) t.join();
}

void PoolDirectReads::StartPageFillLocked(
    std::vector<std::shared_ptr<transport::RemoteMapping>> mappings) {
  page_fills_.emplace_back([this, mappings = std::move(mappings)] {
    // In steps, each under the mapping's guard: a peer failure waits for one step at most. Small
    // ones: a populate holds this process's mmap lock, so its mmaps and munmaps (the forward
    // pass's scratch) wait for the step in progress (kvcache/pool_server.cc's prefault).
    constexpr uint64_t kStep = 2ull << 20;
    const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    for (const auto& mapping : mappings) {
      for (uint64_t offset = 0; offset < mapping->size() && !stop_.load(); offset += kStep) {
        const bool alive = mapping->Access([&](const uint8_t* base) {
          const uintptr_t begin = (reinterpret_cast<uintptr_t>(base) + offset) & ~(page - 1);
          const uintptr_t end =
              reinterpret_cast<uintptr_t>(base) + std::min(mapping->size(), offset + kStep);
          // Page tables first (fails harmlessly on kernels before 5.14), then one load per
          // page: under a hypervisor's shadow paging a populated page still costs ~1.3 us at
          // its first touch (measured here), and only then nothing.
          (void)PopulateForRead(reinterpret_cast<const void*>(begin), end - begin);
          for (uintptr_t p = std::max(begin, reinterpret_cast<uintptr_t>(base)); p < end;
               p += page) {
            (void)*reinterpret_cast<const volatile uint8_t*>(p);
          }
        });
        if (!alive) return;
      }
    }
  });
}

bool PoolDirectReads::MapLocked(Shard& s, const v1::KvPoolGetReply& reply,
                                transport::Deadline deadline) {
  const v1::KvLocation& loc = reply.location();
  auto map = [&](const v1::RemoteMemory& m) -> std::shared_ptr<transport::RemoteMapping> {
    auto mapping = transport_->MapRemote(s.peer, ToRemoteRegion(m), deadline);
    if (mapping.ok()) return *mapping;
    // A deadline may pass on a busy host; anything else will not change for this peer.
    if (mapping.status().code() != StatusCode::kDeadlineExceeded) s.unmappable = true;
    log::Debug("KV pool {}: its memory is not mapped here ({}); reads take leases",
               loc.owner_address(), mapping.status().message());
    return nullptr;
  };
  std::vector<std::shared_ptr<transport::RemoteMapping>> segments;
  for (const v1::RemoteMemory& region : loc.regions()) {
    segments.push_back(map(region));
    if (segments.back() == nullptr) return false;
  }
  auto versions = map(reply.slot_versions());
  if (versions == nullptr) return false;
  StartPageFillLocked(segments);
  if (copier_ == nullptr) copier_ = std::make_unique<ParallelCopier>(DefaultCopyHelpers());
  s.segments = std::move(segments);
  s.versions = std::move(versions);
  s.segment_bytes = loc.segment_bytes();
  s.block_size_tokens = loc.block_size_tokens();
  log::Info("KV pool {} shares this host: blocks read before are read again without a lease",
            loc.owner_address());
  return true;
}

void PoolDirectReads::Remember(int shard, PeerId peer, std::span<const BlockHash> hashes,
                               const v1::KvPoolGetReply& reply, transport::Deadline deadline) {
  if (shard < 0 || static_cast<size_t>(shard) >= shards_.size()) return;
  const v1::KvLocation& loc = reply.location();
  std::lock_guard lock(mu_);
  Shard& s = shards_[static_cast<size_t>(shard)];
  if (s.peer != peer) {  // a new connection: perhaps a restarted pool with other memory
    s = Shard{};
    s.peer = peer;
  }
  if (s.unmappable) return;
  if (!reply.has_slot_versions() || !loc.segments_in_regions() || loc.segment_bytes() == 0 ||
      reply.versions_size() != loc.blocks_size() ||
      static_cast<uint32_t>(loc.regions_size()) != loc.num_segments()) {
    s.unmappable = true;  // a pool whose memory same-host readers cannot use
    return;
  }
  if (s.versions == nullptr && !MapLocked(s, reply, deadline)) return;
  if (s.blocks.size() + hashes.size() > max_blocks_) s.blocks.clear();
  const size_t n = std::min(hashes.size(), static_cast<size_t>(loc.blocks_size()));
  for (size_t i = 0; i < n; ++i) {
    const uint64_t offset = loc.blocks(static_cast<int>(i)).offset();
    if (offset % s.segment_bytes != 0) continue;
    s.blocks[hashes[i]] =
        Entry{static_cast<int64_t>(offset / s.segment_bytes), reply.versions(static_cast<int>(i))};
  }
}

bool PoolDirectReads::TryRead(std::span<const ShardBlocks> parts, const RegisteredKv& local) {
  struct Plan {
    const ShardBlocks* part = nullptr;
    std::vector<std::shared_ptr<transport::RemoteMapping>> segments;
    std::shared_ptr<transport::RemoteMapping> versions;
    std::vector<Entry> entries;
  };
  std::vector<Plan> plans;
  const uint64_t segment_bytes = local.segment_bytes();
  ParallelCopier* copier = nullptr;
  {
    std::lock_guard lock(mu_);
    copier = copier_.get();
    if (copier == nullptr) return false;  // nothing mapped yet
    for (const ShardBlocks& part : parts) {
      if (part.shard < 0 || static_cast<size_t>(part.shard) >= shards_.size()) return false;
      const Shard& s = shards_[static_cast<size_t>(part.shard)];
      if (s.peer != part.peer || s.versions == nullptr ||
          s.segments.size() != static_cast<size_t>(local.num_segments()) ||
          s.segment_bytes != segment_bytes ||
          s.block_size_tokens != static_cast<uint32_t>(local.spec().block_size) ||
          part.local_blocks.size() != part.hashes.size()) {
        return false;
      }
      Plan plan{&part, s.segments, s.versions, {}};
      for (BlockHash hash : part.hashes) {
        auto it = s.blocks.find(hash);
        if (it == s.blocks.end()) return false;
        plan.entries.push_back(it->second);
      }
      plans.push_back(std::move(plan));
    }
  }
  for (const Plan& plan : plans) {
    const std::vector<BlockId>& dst_blocks = plan.part->local_blocks;
    const size_t n = plan.entries.size();
    // Runs of blocks consecutive in the pool and here move as one copy per segment.
    struct Run {
      uint64_t src = 0, dst = 0, bytes = 0;
    };
    std::vector<Run> runs;
    for (size_t i = 0; i < n;) {
      size_t j = i + 1;
      while (j < n && plan.entries[j].slot == plan.entries[j - 1].slot + 1 &&
             dst_blocks[j] == dst_blocks[j - 1] + 1) {
        ++j;
      }
      runs.push_back(Run{static_cast<uint64_t>(plan.entries[i].slot) * segment_bytes,
                         static_cast<uint64_t>(dst_blocks[i]) * segment_bytes,
                         (j - i) * segment_bytes});
      i = j;
    }
    // Each segment's runs in one go, shared with the copy helpers when they are large.
    std::vector<CopyPiece> pieces;
    for (int seg = 0; seg < local.num_segments(); ++seg) {
      const transport::Region& region = local.region(seg);
      const transport::RemoteMapping& mapping = *plan.segments[static_cast<size_t>(seg)];
      bool in_bounds = true;
      const bool copied = mapping.Access([&](const uint8_t* base) {
        pieces.clear();
        for (const Run& run : runs) {
          in_bounds = run.src + run.bytes <= mapping.size() && run.dst + run.bytes <= region.size();
          if (!in_bounds) return;
          pieces.push_back(
              CopyPiece{static_cast<uint8_t*>(region.data()) + run.dst, base + run.src, run.bytes});
        }
        copier->CopyMany(pieces, /*streaming=*/false);
      });
      if (!copied || !in_bounds) return false;  // the pool went away, or a bad slot
    }
    // Valid only if no slot was reserved again since its version was learned.
    std::vector<BlockHash> changed;
    const bool mapped = plan.versions->Access([&](const uint8_t* table) {
      for (size_t k = 0; k < n; ++k) {
        const int64_t slot = plan.entries[k].slot;
        if ((static_cast<uint64_t>(slot) + 1) * sizeof(uint64_t) > plan.versions->size() ||
            SlotVersions::Load(table, slot) != plan.entries[k].version) {
          changed.push_back(plan.part->hashes[k]);
        }
      }
    });
    if (!mapped) return false;
    if (!changed.empty()) {
      std::lock_guard lock(mu_);
      Shard& s = shards_[static_cast<size_t>(plan.part->shard)];
      for (BlockHash hash : changed) s.blocks.erase(hash);
      return false;
    }
  }
  return true;
}

}  // namespace strata::kvcache
