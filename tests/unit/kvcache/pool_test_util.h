// Shared by the KV pool tests: a fake instance (a small paged KV cache of random bytes,
// registered with its node's transport, with a KvPoolClient) and blocking helpers.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <future>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "kvcache/kv_cache.h"
#include "kvcache/kv_transfer.h"
#include "kvcache/pool_client.h"
#include "service/rpc_node.h"
#include "transport/transport.h"

namespace strata::kvcache::testing {

inline constexpr int64_t kWaitMs = 10000;

// Polls `pred` until true or kWaitMs.
template <typename Pred>
bool Eventually(Pred pred) {
  Stopwatch watch;
  while (watch.ElapsedMillis() < kWaitMs) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

// GQA, 2 layers: 4 segments of 4 tokens x 2 heads x 8 dims x 2 bytes = 128 bytes; 512 a block.
inline KvCacheSpec SmallSpec() {
  KvCacheSpec spec;
  spec.layout = KvLayout::kGqa;
  spec.num_layers = 2;
  spec.block_size = 4;
  spec.num_kv_heads = 2;
  spec.head_dim = 8;
  return spec;
}
inline constexpr uint64_t kSmallBlockBytes = 512;

// A chain of distinct block hashes (as HashFullBlocks would give for `seed`'s tokens).
inline std::vector<BlockHash> Chain(int n, int32_t seed) {
  std::vector<int32_t> tokens;
  for (int i = 0; i < n * 4; ++i) tokens.push_back(seed * 100003 + i);
  return HashFullBlocks(tokens, 4);
}

struct Instance {
  std::unique_ptr<service::RpcNode> node;
  std::unique_ptr<PagedKvCache> cache;
  std::unique_ptr<RegisteredKv> kv;
  std::unique_ptr<KvPoolClient> client;

  ~Instance() { Stop(); }
  void Stop() {
    client.reset();
    if (node != nullptr) node->Shutdown();
    kv.reset();
  }

  // Fills every block with random bytes from `seed`.
  void Randomize(uint32_t seed) {
    std::mt19937 rng(seed);
    for (int s = 0; s < kv->num_segments(); ++s) {
      auto* bytes = static_cast<uint8_t*>(kv->region(s).data());
      for (uint64_t i = 0; i < kv->region(s).size(); ++i) bytes[i] = static_cast<uint8_t>(rng());
    }
  }
  // Every segment of `block` as one string.
  std::string BlockBytes(BlockId block) const {
    std::string out;
    for (int s = 0; s < kv->num_segments(); ++s) {
      const auto* bytes = static_cast<const uint8_t*>(kv->region(s).data());
      out.append(reinterpret_cast<const char*>(bytes) + block * kv->segment_bytes(),
                 kv->segment_bytes());
    }
    return out;
  }

  Status StoreAndWait(const std::vector<BlockHash>& hashes, const std::vector<BlockId>& blocks,
                      int64_t deadline_ms = kWaitMs) {
    auto promise = std::make_shared<std::promise<Status>>();
    auto future = promise->get_future();
    client->Store(hashes, *kv, blocks, transport::DeadlineAfterMillis(deadline_ms),
                  [promise](Status st) { promise->set_value(st); });
    if (future.wait_for(std::chrono::milliseconds(deadline_ms + 10000)) !=
        std::future_status::ready) {
      return InternalError("Store's done never ran");
    }
    return future.get();
  }
  int Lookup(const std::vector<BlockHash>& hashes, int64_t deadline_ms = kWaitMs) {
    return client->Lookup(hashes, transport::DeadlineAfterMillis(deadline_ms));
  }
  StatusOr<int> Fetch(const std::vector<BlockHash>& hashes, const std::vector<BlockId>& blocks,
                      int64_t deadline_ms = kWaitMs) {
    return client->Fetch(hashes, *kv, blocks, transport::DeadlineAfterMillis(deadline_ms));
  }
};

inline std::unique_ptr<Instance> MakeInstance(std::unique_ptr<transport::Transport> transport,
                                              std::vector<std::string> pools,
                                              KvPoolClientOptions options = {},
                                              KvCacheSpec spec = SmallSpec(),
                                              int32_t num_blocks = 64) {
  auto inst = std::make_unique<Instance>();
  auto node = service::RpcNode::Create(std::move(transport), {});
  EXPECT_TRUE(node.ok()) << node.status().ToString();
  if (!node.ok()) return nullptr;
  inst->node = std::move(node).value();
  auto cache = PagedKvCache::Create(spec, num_blocks);
  EXPECT_TRUE(cache.ok()) << cache.status().ToString();
  if (!cache.ok()) return nullptr;
  inst->cache = std::move(cache).value();
  auto kv = RegisteredKv::Register(inst->cache.get(), &inst->node->transport());
  EXPECT_TRUE(kv.ok()) << kv.status().ToString();
  if (!kv.ok()) return nullptr;
  inst->kv = std::move(kv).value();
  inst->client = std::make_unique<KvPoolClient>(inst->node.get(), std::move(pools), options);
  return inst;
}

}  // namespace strata::kvcache::testing
