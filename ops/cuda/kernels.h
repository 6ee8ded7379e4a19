// Launchers of the CUDA kernels: raw device pointers and a stream in, the launch's error out
// (cudaSuccess or the error cudaGetLastError reported right after the launch). They never
// synchronize and never allocate; workspaces are passed in. Every launcher is safe to call
// while the stream is being captured into a CUDA graph, since metadata is read from device
// memory only.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common/half.h"
#include "ops/dtype.h"

namespace strata::ops::cuda {

// ---- elementwise (elementwise.cu) -------------------------------------------------------
// y[i, j] = bf16(x[i, j]), round to nearest even; `batch` matrices dx / dy elements apart.
cudaError_t LaunchConvertToBf16(const float* x, int64_t m, int64_t n, int64_t ldx, bf16* y,
                                int64_t ldy, cudaStream_t stream, int batch = 1, int64_t dx = 0,
                                int64_t dy = 0);
// out[i, :] = f32(table[ids[i], :]) for table of dtype kF32, kBF16 or kF16.
cudaError_t LaunchEmbedding(const void* table, DType dtype, int64_t cols, int64_t stride,
                            const int32_t* ids, int64_t n, float* out, int64_t ldo,
                            cudaStream_t stream);
cudaError_t LaunchRmsNorm(const float* x, int64_t m, int64_t n, int64_t ldx, const float* weight,
                          float eps, float* out, int64_t ldo, cudaStream_t stream);
// inv_freq: device, rotary_dim / 2 entries.
cudaError_t LaunchRope(float* x, int64_t num_tokens, int64_t token_stride, int num_heads,
                       int64_t head_stride, const int32_t* positions, const float* inv_freq,
                       int rotary_dim, bool interleaved, float attention_factor,
                       cudaStream_t stream);
cudaError_t LaunchSiluMul(const float* gate, int64_t ldg, const float* up, int64_t ldu, int64_t m,
                          int64_t n, float* out, int64_t ldo, cudaStream_t stream);
cudaError_t LaunchAdd(float* y, int64_t ldy, const float* x, int64_t ldx, int64_t m, int64_t n,
                      cudaStream_t stream);
cudaError_t LaunchScatterToCache(const float* src, int64_t num_tokens, int64_t lds, int64_t width,
                                 bf16* dst, const int64_t* dst_offsets, cudaStream_t stream);
// Fills n bf16 values with a deterministic pseudo-random N(0,1)-like distribution times scale
// (benchmarks and tests: never zeros).
cudaError_t LaunchFillRandomBf16(bf16* p, int64_t n, uint64_t seed, float scale,
                                 cudaStream_t stream);
cudaError_t LaunchFillRandomF32(float* p, int64_t n, uint64_t seed, float scale,
                                cudaStream_t stream);

// ---- paged attention (attention.cu) ------------------------------------------------------
// A block of work: rows [row_begin, row_begin + rows_per_block) of the item whose tokens are
// [token_begin, token_begin + num_tokens) (they share one block table), over the keys of split
// `split` (keys [split * keys_per_split, (split + 1) * keys_per_split)). Rows of an item are
// (token, head-in-group) pairs, row = token_in_item * group + head_in_group.
struct AttentionTask {
  int32_t token_begin = 0;
  int32_t num_tokens = 0;
  int32_t row_begin = 0;
  int32_t split = 0;
};

struct AttentionParams {
  const float* q = nullptr;
  int64_t q_token_stride = 0;
  int64_t q_head_stride = 0;
  int num_q_heads = 0;
  int num_kv_heads = 0;
  const bf16* k = nullptr;
  const bf16* v = nullptr;
  int64_t block_stride = 0;
  int64_t token_stride = 0;
  int64_t head_stride = 0;
  int block_size = 0;
  int k_dim = 0;
  int v_dim = 0;
  float scale = 1.0f;
  float* out = nullptr;
  int64_t out_token_stride = 0;
  int64_t out_head_stride = 0;
  // Per token (device): keys seen, offset of its block table in `block_tables`, number of
  // splits (ceil(num_keys / keys_per_split): a function of the token alone, so results do
  // not depend on the batch) and the index of its first split in the partial buffers.
  const int32_t* num_keys = nullptr;
  const int32_t* table_offset = nullptr;
  const int32_t* block_tables = nullptr;
  const int32_t* num_splits = nullptr;
  const int32_t* split_base = nullptr;
  int keys_per_split = 0;
  // Partial results of tokens with more than one split: [split row * num_q_heads + head].
  float* partial_o = nullptr;   // v_dim floats each
  float* partial_ml = nullptr;  // (max, sum) each, max in log2 units
  const AttentionTask* tasks = nullptr;
  int num_tasks = 0;
  int64_t num_tokens = 0;
};

// How the launcher will tile: rows per block and keys per split for these dims, or 0 rows
// when only the portable kernel can run them (dims not multiples of 8, > 576/512, misaligned).
struct AttentionTiling {
  int kind = 0;  // which kernel instantiation; 0 = none
  int rows_per_block = 0;
  int keys_per_split = 0;
};
// max_tokens_per_item: the most tokens sharing one block table in a launch (1 for decode);
// v_in_k: V is the first v_dim elements of K (MLA's latent). Key tiles (32) and the split size
// (512 keys; 1024 for MLA-sized dims) depend on the dims only, never on the batch.
AttentionTiling ChooseAttentionTiling(int group, int k_dim, int v_dim, bool aligned,
                                      int max_tokens_per_item, bool v_in_k);

// Runs the tensor-core kernel over `tasks` then the fixed-order combine of split tokens.
// Precondition: tiling.rows_per_block > 0 for these params.
cudaError_t LaunchAttention(const AttentionParams& p, const AttentionTiling& tiling,
                            cudaStream_t stream);
// One warp per (token, head), f32, online softmax in key order. Any dims and alignment.
cudaError_t LaunchAttentionPortable(const AttentionParams& p, cudaStream_t stream);

// ---- MoE (moe.cu, grouped_gemm.cu) --------------------------------------------------------
struct RouterParams {
  bool sigmoid = false;
  int num_experts = 0;
  int top_k = 0;
  bool norm_topk_prob = false;
  int num_groups = 1;
  int topk_groups = 1;
  float routed_scaling_factor = 1.0f;
  const float* correction_bias = nullptr;  // device or null
};
// One warp per token. num_experts <= 1024, top_k <= 32.
cudaError_t LaunchMoeRoute(const float* logits, int64_t num_tokens, const RouterParams& spec,
                           int32_t* expert_ids, float* weights, cudaStream_t stream);

// Token permutation, deterministic: the rows of expert e are its assignments (t, j) in
// increasing t * top_k + j. Outputs: expert_offsets[num_experts + 1] (exclusive scan of counts),
// row_of_assignment[num_tokens * top_k] (the row each assignment lands in, for
// WeightedCombine), token_of_row[num_tokens * top_k].
cudaError_t LaunchMoePermute(const int32_t* expert_ids, int64_t num_tokens, int top_k,
                             int num_experts, int32_t* expert_offsets, int32_t* row_of_assignment,
                             int32_t* token_of_row, cudaStream_t stream);
// xp[r, :] = bf16(x[token_of_row[r], :]).
cudaError_t LaunchGatherRowsBf16(const float* x, int64_t hidden, const int32_t* token_of_row,
                                 int64_t num_rows, bf16* xp, cudaStream_t stream);

// Grouped GEMM over experts: group g has rows [row_begin[g], row_begin[g] + num_rows[g]) of A
// and uses expert expert_of_group[g]. Weights are per expert [n, k] row-major with row stride
// (elements). Output tiles are listed in `tiles` (one int2 (group, m_tile) each); blocks past
// *num_tiles exit, so the grid can be sized by an upper bound while counts stay on the device.
struct GroupedGemmGroups {
  const int32_t* row_begin = nullptr;
  const int32_t* num_rows = nullptr;
  const int32_t* expert_of_group = nullptr;
  const int2* tiles = nullptr;
  const int32_t* num_tiles = nullptr;
  int max_tiles = 0;  // grid size
};
struct ExpertWeightTable {
  const bf16* const* gate = nullptr;  // [num_experts] device pointers
  const bf16* const* up = nullptr;
  const bf16* const* down = nullptr;
  const int64_t* gate_stride = nullptr;
  const int64_t* up_stride = nullptr;
  const int64_t* down_stride = nullptr;
};
// Rows per output tile of the grouped GEMM.
int GroupedGemmTileRows(int64_t max_rows_per_group);
// Builds `tiles` and *num_tiles on the device from expert_offsets[num_experts + 1] (one group
// per expert, row_begin = offsets[e], expert_of_group[e] = e).
cudaError_t LaunchBuildExpertTiles(const int32_t* expert_offsets, int num_experts, int tile_rows,
                                   int32_t* row_begin, int32_t* num_rows, int32_t* expert_of_group,
                                   int2* tiles, int32_t* num_tiles, cudaStream_t stream);
// h[r, :inter] = bf16(silu(a[r] . gate[e]) * (a[r] . up[e])) for every row of every group.
cudaError_t LaunchGroupedGateUp(const bf16* a, int64_t hidden, int64_t inter,
                                const GroupedGemmGroups& groups, const ExpertWeightTable& w,
                                int tile_rows, bf16* h, cudaStream_t stream);
// out[r, :hidden] = h[r] . down[e] (f32).
cudaError_t LaunchGroupedDown(const bf16* h, int64_t inter, int64_t hidden,
                              const GroupedGemmGroups& groups, const ExpertWeightTable& w,
                              int tile_rows, float* out, cudaStream_t stream);

cudaError_t LaunchWeightedCombine(const float* rows, int64_t hidden, int64_t num_tokens, int top_k,
                                  const int32_t* row_index, const float* weights, float* out,
                                  cudaStream_t stream);

}  // namespace strata::ops::cuda
