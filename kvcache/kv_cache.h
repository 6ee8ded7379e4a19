// Paged KV storage (bf16) for one model instance.
//
// GQA (Llama, Qwen3, Mixtral, Qwen3-MoE): per layer a K and a V array, each
//   [num_blocks, block_size, num_kv_heads, head_dim].
// MLA (DeepSeek-V3): per layer one array [num_blocks, block_size, kv_lora_rank + rope_dim]
//   holding the normalized latent c_kv followed by the roped k_pe of each token.
// Token j of a sequence lives in block block_table[j / block_size] at slot j % block_size; the
// block ids come from a BlockPool of the same num_blocks (kvcache/block_pool.h).
// Thread-safety: the storage is written by the forward pass only; readers (KV transfer) must
// not touch blocks the forward is writing.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "common/half.h"
#include "common/status.h"
#include "ops/backend.h"

namespace strata::kvcache {

enum class KvLayout { kGqa, kMla };

struct KvCacheSpec {
  KvLayout layout = KvLayout::kGqa;
  int num_layers = 0;
  int block_size = 16;
  // GQA.
  int num_kv_heads = 0;
  int head_dim = 0;  // K and V head width
  // MLA.
  int kv_lora_rank = 0;
  int rope_dim = 0;

  // Elements of one token in one layer's array (GQA: per K or V array).
  int64_t TokenElements() const;
  // Bytes one block takes over all layers (K and V, or the latent).
  int64_t BytesPerBlock() const;
  Status Validate() const;
};

class PagedKvCache {
 public:
  // kInvalidArgument for a bad spec, kResourceExhausted when the memory cannot be had.
  static StatusOr<std::unique_ptr<PagedKvCache>> Create(const KvCacheSpec& spec,
                                                        int32_t num_blocks);

  const KvCacheSpec& spec() const { return spec_; }
  int32_t num_blocks() const { return num_blocks_; }

  // The first array of `layer` (GQA: K; MLA: the latent + k_pe) and the second (GQA: V; MLA:
  // the same memory).
  bf16* k(int layer) { return k_[layer]; }
  bf16* v(int layer) { return spec_.layout == KvLayout::kGqa ? v_[layer] : k_[layer]; }
  int num_arrays() const { return static_cast<int>(arrays_.size()); }
  uint64_t array_bytes() const;

  // Memory for one array from elsewhere (a transport's AllocateMemory, which peers on this host
  // reach by direct copy): its start, and what keeps it alive.
  struct ArrayMemory {
    void* data = nullptr;
    std::shared_ptr<void> owner;
  };
  using ArrayAllocator = std::function<StatusOr<ArrayMemory>(int array, uint64_t bytes)>;
  // Moves every array, with its contents, into memory from `allocate` (array order: layer by
  // layer, K then V for GQA). On an error the arrays that moved stay moved, the rest stay put.
  // Not while a forward or a transfer uses the cache.
  Status Relocate(const ArrayAllocator& allocate);
  // Element offset of (block, slot) inside a layer array.
  int64_t Offset(int32_t block, int slot) const {
    return (static_cast<int64_t>(block) * spec_.block_size + slot) * spec_.TokenElements();
  }
  // The attention view of `layer` (MLA: the absorbed MQA form over [c_kv | k_pe], v = c_kv).
  ops::KvLayerView LayerView(int layer) const;

 private:
  PagedKvCache(const KvCacheSpec& spec, int32_t num_blocks)
      : spec_(spec), num_blocks_(num_blocks) {}
  KvCacheSpec spec_;
  int32_t num_blocks_;
  std::vector<std::shared_ptr<void>> arrays_;  // owners, in Relocate's array order
  std::vector<bf16*> k_;
  std::vector<bf16*> v_;  // GQA only
};

}  // namespace strata::kvcache
