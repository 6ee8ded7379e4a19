#include "kvcache/block_pool.h"

#include <cassert>

namespace strata::kvcache {
namespace {

uint64_t Mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

}  // namespace

BlockHash HashBlock(BlockHash parent, std::span<const int32_t> tokens) {
  uint64_t h = Mix(0x243f6a8885a308d3ull, parent);
  h = Mix(h, tokens.size());
  for (int32_t t : tokens) h = Mix(h, static_cast<uint32_t>(t));
  return h == 0 ? 1 : h;  // 0 is reserved for "no parent"
}

std::vector<BlockHash> HashFullBlocks(std::span<const int32_t> tokens, int block_size) {
  std::vector<BlockHash> out;
  BlockHash parent = 0;
  for (size_t i = 0; i + block_size <= tokens.size(); i += block_size) {
    parent = HashBlock(parent, tokens.subspan(i, block_size));
    out.push_back(parent);
  }
  return out;
}

BlockPool::BlockPool(int32_t num_blocks) : blocks_(num_blocks) {
  free_.reserve(num_blocks);
  for (int32_t i = num_blocks - 1; i >= 0; --i) free_.push_back(i);
}

StatusOr<BlockId> BlockPool::Allocate() {
  BlockId id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
  } else if (!lru_.empty()) {
    id = lru_.front();
    lru_.pop_front();
    blocks_[id].in_lru = false;
    Unpublish(id);
    ++evictions_;
  } else {
    return ResourceExhaustedError("no free KV block (" + std::to_string(blocks_.size()) +
                                  " blocks, all in use)");
  }
  blocks_[id].refs = 1;
  ++num_used_;
  return id;
}

StatusOr<std::vector<BlockId>> BlockPool::AllocateMany(int32_t n) {
  if (n > num_available()) {
    return ResourceExhaustedError("need " + std::to_string(n) + " KV blocks, " +
                                  std::to_string(num_available()) + " available");
  }
  std::vector<BlockId> out;
  out.reserve(n);
  for (int32_t i = 0; i < n; ++i) {
    StatusOr<BlockId> id = Allocate();
    if (!id.ok()) {  // cannot happen after the check above; keep every path releasing
      ReleaseAll(out);
      return id.status();
    }
    out.push_back(*id);
  }
  return out;
}

void BlockPool::Ref(BlockId id) {
  assert(blocks_[id].refs > 0);
  ++blocks_[id].refs;
}

void BlockPool::Release(BlockId id) {
  Block& b = blocks_[id];
  assert(b.refs > 0);
  if (--b.refs > 0) return;
  --num_used_;
  if (b.published) {
    lru_.push_back(id);
    b.lru_pos = std::prev(lru_.end());
    b.in_lru = true;
  } else {
    free_.push_back(id);
  }
}

void BlockPool::ReleaseAll(std::span<const BlockId> ids) {
  for (BlockId id : ids) Release(id);
}

bool BlockPool::Publish(BlockId id, BlockHash hash) {
  Block& b = blocks_[id];
  if (b.published) return b.hash == hash;
  auto [it, inserted] = index_.emplace(hash, id);
  if (!inserted) return false;
  b.published = true;
  b.hash = hash;
  return true;
}

void BlockPool::Unpublish(BlockId id) {
  Block& b = blocks_[id];
  if (!b.published) return;
  auto it = index_.find(b.hash);
  if (it != index_.end() && it->second == id) index_.erase(it);
  b.published = false;
  b.hash = 0;
}

std::vector<BlockId> BlockPool::MatchPrefix(std::span<const BlockHash> hashes) {
  std::vector<BlockId> out;
  for (BlockHash h : hashes) {
    auto it = index_.find(h);
    if (it == index_.end()) break;
    BlockId id = it->second;
    Block& b = blocks_[id];
    if (b.refs == 0) {
      if (b.in_lru) {
        lru_.erase(b.lru_pos);
        b.in_lru = false;
      }
      ++num_used_;
    }
    ++b.refs;
    out.push_back(id);
  }
  return out;
}

int32_t BlockPool::CountCachedPrefix(std::span<const BlockHash> hashes) const {
  int32_t n = 0;
  for (BlockHash h : hashes) {
    if (index_.find(h) == index_.end()) break;
    ++n;
  }
  return n;
}

BlockCounts BlockPool::counts() const {
  BlockCounts c;
  c.total = num_blocks();
  c.free = static_cast<int32_t>(free_.size());
  c.cached = static_cast<int32_t>(lru_.size());
  c.used = num_used_;
  c.evictions = evictions_;
  return c;
}

}  // namespace strata::kvcache
