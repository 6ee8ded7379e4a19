// Reads of KV pool blocks without a lease, for a client on the pool's host (slot_versions.h).
// After a leased read it remembers where each block lies in the pool and at which version, and
// maps the pool's memory once (Transport::MapRemote); a later Fetch of blocks it remembers copies
// them straight from that memory on the caller's thread (and copy helpers of its own, for
// megabytes) -- no message, no lease, no transport thread -- and keeps the copy only if every
// block's version is still the remembered one. Over shared memory that turns a pool read from a
// round trip plus copies into copies alone.
//
// Anything else -- a pool on another host or behind a transport that cannot map, a block not
// remembered, a version that moved, a pool that restarted -- falls back to the leased read,
// which refreshes what is remembered.
//
// Thread-safety: thread-safe; copies run outside the lock, so calls from several threads
// proceed in parallel.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/parallel_copy.h"
#include "kvcache/block_pool.h"
#include "kvcache/kv_transfer.h"
#include "proto/kvpool.pb.h"
#include "transport/transport.h"

namespace strata::kvcache {

class PoolDirectReads {
 public:
  // `transport` must outlive this. At most `max_blocks` blocks are remembered per pool (then it
  // starts over).
  PoolDirectReads(transport::Transport* transport, int num_shards, size_t max_blocks = 1 << 16);
  ~PoolDirectReads();  // stops the page-table fill

  // After the blocks `hashes` (location order) of `reply`, a lease of shard `shard` through
  // `peer`, were read: remembers them. The first time for a peer it maps the pool's memory,
  // waiting for the transport up to `deadline`; a pool that cannot be mapped is not asked again
  // until its peer changes.
  void Remember(int shard, transport::PeerId peer, std::span<const BlockHash> hashes,
                const v1::KvPoolGetReply& reply, transport::Deadline deadline);

  struct ShardBlocks {
    int shard = 0;
    transport::PeerId peer = transport::kInvalidPeer;  // the shard's connection now
    std::vector<BlockHash> hashes;                     // in chain order
    std::vector<BlockId> local_blocks;                 // where each goes
  };
  // Copies every block of `parts` into `local` and validates it. True when all were read; false
  // when any is not remembered or changed (the caller reads them all with leases; blocks of
  // `local` may have been written meanwhile). Forgets the blocks found changed.
  bool TryRead(std::span<const ShardBlocks> parts, const RegisteredKv& local);

 private:
  struct Entry {
    int64_t slot = 0;
    uint64_t version = 0;
  };
  struct Shard {
    transport::PeerId peer = transport::kInvalidPeer;
    bool unmappable = false;
    uint64_t segment_bytes = 0;
    uint32_t block_size_tokens = 0;
    std::vector<std::shared_ptr<transport::RemoteMapping>> segments;  // one per KV segment
    std::shared_ptr<transport::RemoteMapping> versions;
    std::unordered_map<BlockHash, Entry> blocks;
  };
  // Maps shard `s`'s memory as `reply` describes it (s.peer set). False when it cannot.
  bool MapLocked(Shard& s, const v1::KvPoolGetReply& reply, transport::Deadline deadline);

  // Touches every page of a pool's mapped memory once, in the background: the first touch of
  // a 4 KiB page mapped from another process faults (2-15 us on the development VM), which made
  // a block's first read ~50x slower than its later ones until its pages had been read once.
  void StartPageFillLocked(std::vector<std::shared_ptr<transport::RemoteMapping>> mappings);

  transport::Transport* transport_;
  const size_t max_blocks_;
  std::mutex mu_;
  std::vector<Shard> shards_;
  std::unique_ptr<ParallelCopier> copier_;  // made with the first mapping, kept until the end
  std::atomic<bool> stop_{false};
  std::vector<std::thread> page_fills_;  // one per mapped pool connection
};

}  // namespace strata::kvcache
