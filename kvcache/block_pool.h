// The local KV block pool: a block allocator with reference counts and a prefix index.
//
// Blocks are identified by BlockId (an index into the KV cache's storage, kvcache/kv_cache.h).
// A block is in exactly one state:
//   free      ref count 0, no content worth keeping
//   used      ref count > 0 (a running sequence, or several sharing a cached prefix)
//   cached    ref count 0 but published under a prefix hash: reusable by MatchPrefix() until
//             Allocate() evicts it (least recently released first)
// Prefix caching: the hash of a full block is HashBlock(parent hash, its token ids) with parent
// 0 for the first block, so equal hashes mean equal whole prefixes (up to 64-bit collisions).
//
// Every block handed out (Allocate, MatchPrefix) carries one reference that the caller must
// give back with Release() on every path (finish, abort, error). counts() lets tests and
// metrics check that used returns to its baseline.
// Thread-safety: none; one owner (the scheduler) calls it from one thread.
#pragma once

#include <cstdint>
#include <list>
#include <span>
#include <unordered_map>
#include <vector>

#include "common/status.h"

namespace strata::kvcache {

using BlockId = int32_t;
using BlockHash = uint64_t;

// Hash of a block given its parent's hash (0 for the first block) and its token ids.
BlockHash HashBlock(BlockHash parent, std::span<const int32_t> tokens);
// Hashes of the full blocks of `tokens` (a trailing partial block has none).
std::vector<BlockHash> HashFullBlocks(std::span<const int32_t> tokens, int block_size);

struct BlockCounts {
  int32_t total = 0;
  int32_t free = 0;    // never published or evicted
  int32_t used = 0;    // ref count > 0
  int32_t cached = 0;  // ref count 0, published, evictable
  int64_t evictions = 0;
};

class BlockPool {
 public:
  explicit BlockPool(int32_t num_blocks);

  // A block with ref count 1: a free one, else the least recently released cached one (which
  // leaves the prefix index). kResourceExhausted when every block is used.
  StatusOr<BlockId> Allocate();
  // n blocks, all or nothing.
  StatusOr<std::vector<BlockId>> AllocateMany(int32_t n);
  // Adds a reference to a used block.
  void Ref(BlockId id);
  // Drops a reference; at zero the block becomes cached (if published) or free.
  void Release(BlockId id);
  void ReleaseAll(std::span<const BlockId> ids);

  // Declares that used block `id` holds the full block whose prefix hash is `hash`. Returns
  // false (and changes nothing) when another block already holds that hash.
  bool Publish(BlockId id, BlockHash hash);
  // The blocks holding the longest cached prefix of `hashes` (stops at the first miss); each
  // returned block gets one reference.
  std::vector<BlockId> MatchPrefix(std::span<const BlockHash> hashes);
  // Number of leading hashes that are cached, without taking references.
  int32_t CountCachedPrefix(std::span<const BlockHash> hashes) const;

  int32_t ref_count(BlockId id) const { return blocks_[id].refs; }
  int32_t num_blocks() const { return static_cast<int32_t>(blocks_.size()); }
  // Blocks Allocate() can still hand out (free + cached).
  int32_t num_available() const { return static_cast<int32_t>(free_.size() + lru_.size()); }
  BlockCounts counts() const;

 private:
  struct Block {
    int32_t refs = 0;
    bool published = false;
    BlockHash hash = 0;
    std::list<BlockId>::iterator lru_pos;
    bool in_lru = false;
  };
  void Unpublish(BlockId id);

  std::vector<Block> blocks_;
  std::vector<BlockId> free_;  // LIFO: deterministic reuse order
  std::list<BlockId> lru_;     // cached blocks, least recently released first
  std::unordered_map<BlockHash, BlockId> index_;
  int32_t num_used_ = 0;
  int64_t evictions_ = 0;
};

}  // namespace strata::kvcache
