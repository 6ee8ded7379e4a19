// Consistent hashing of KV block hashes over several pool instances (DESIGN.md §4): a hash ring
// with virtual nodes, so adding or removing one pool moves only ~1/N of the blocks. The ring
// depends only on the pool addresses (not their order), so every client maps a block to the
// same pool.
// Thread-safety: immutable after construction.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "kvcache/block_pool.h"

namespace strata::kvcache {

class PoolHashRing {
 public:
  // `num_virtual_nodes` points per shard (at least 1).
  PoolHashRing(const std::vector<std::string>& shard_names, int num_virtual_nodes);

  int num_shards() const { return num_shards_; }
  // The shard (index into shard_names) that owns `hash`; -1 when there are no shards.
  int ShardOf(BlockHash hash) const;

 private:
  int num_shards_ = 0;
  std::map<uint64_t, int> ring_;
};

// A 64-bit mix (splitmix64 finalizer): spreads block hashes and names over the ring.
uint64_t MixHash(uint64_t x);

}  // namespace strata::kvcache
