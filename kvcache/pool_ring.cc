#include "kvcache/pool_ring.h"

namespace strata::kvcache {

uint64_t MixHash(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

namespace {

// FNV-1a: stable across processes and builds (std::hash is not).
uint64_t HashName(const std::string& name) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : name) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

}  // namespace

PoolHashRing::PoolHashRing(const std::vector<std::string>& shard_names, int num_virtual_nodes)
    : num_shards_(static_cast<int>(shard_names.size())) {
  const int points = num_virtual_nodes < 1 ? 1 : num_virtual_nodes;
  for (int s = 0; s < num_shards_; ++s) {
    const uint64_t base = HashName(shard_names[s]);
    for (int v = 0; v < points; ++v) {
      uint64_t point = MixHash(base ^ MixHash(static_cast<uint64_t>(v)));
      // A collision (vanishingly rare) goes to the smaller name, so every client agrees.
      auto [it, inserted] = ring_.emplace(point, s);
      if (!inserted && shard_names[s] < shard_names[it->second]) it->second = s;
    }
  }
}

int PoolHashRing::ShardOf(BlockHash hash) const {
  if (ring_.empty()) return -1;
  auto it = ring_.lower_bound(MixHash(hash));
  if (it == ring_.end()) it = ring_.begin();
  return it->second;
}

}  // namespace strata::kvcache
