// Host-side planning of a paged attention launch from ops::AttentionArgs: which tokens share a
// block table (items), the packed tables, per-token splits (a function of the token's key
// count alone) and the list of block tasks. CudaBackend::Attention uploads a plan per call;
// benchmarks and graph-captured steps upload it once and launch LaunchAttention directly.
#pragma once

#include <cstdint>
#include <vector>

#include "ops/backend.h"
#include "ops/cuda/kernels.h"

namespace strata::ops::cuda {

struct AttentionPlan {
  // Device pointers of q, kv and out are copied from the args; the metadata pointers are null
  // until the caller uploads the vectors below.
  AttentionParams params;
  AttentionTiling tiling;  // rows_per_block == 0: run LaunchAttentionPortable
  std::vector<int32_t> num_keys, table_offset, tables, num_splits, split_base;
  std::vector<AttentionTask> tasks;
  int64_t total_split_rows = 0;  // partial buffers: total_split_rows * num_q_heads rows
};

// args.num_keys and args.block_tables (and the spans' contents) are host memory.
AttentionPlan PlanAttention(const AttentionArgs& args);

bool Aligned16(const void* p);

}  // namespace strata::ops::cuda
