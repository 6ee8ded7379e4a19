// MoE routing, deterministic token permutation, gathers and the weighted combine.
#include <cuda_bf16.h>
#include <cub/block/block_scan.cuh>

#include "ops/cuda/kernels.h"

namespace strata::ops::cuda {
namespace {

constexpr int kMaxExpertsPerLane = 32;  // num_experts <= 1024

// Warp argmax of (value, index): larger value first, lower index on ties.
__device__ __forceinline__ void WarpArgMax(float& v, int& idx) {
  for (int o = 16; o > 0; o >>= 1) {
    float ov = __shfl_xor_sync(0xffffffffu, v, o);
    int oi = __shfl_xor_sync(0xffffffffu, idx, o);
    if (ov > v || (ov == v && oi < idx)) {
      v = ov;
      idx = oi;
    }
  }
}

// Picks the best (value, index) among this lane's entries i * 32 + lane with mask bit clear.
__device__ __forceinline__ void LaneBest(const float (&vals)[kMaxExpertsPerLane], unsigned taken,
                                         int n, int lo, int hi, float& v, int& idx) {
  v = -INFINITY;
  idx = 0x7fffffff;
  int lane = threadIdx.x % 32;
#pragma unroll
  for (int i = 0; i < kMaxExpertsPerLane; ++i) {
    int e = i * 32 + lane;
    if (e < n && e >= lo && e < hi && !(taken >> i & 1u)) {
      if (vals[i] > v || (vals[i] == v && e < idx)) {
        v = vals[i];
        idx = e;
      }
    }
  }
}

__global__ void MoeRouteKernel(const float* logits, int64_t num_tokens, RouterParams spec,
                               int32_t* expert_ids, float* weights) {
  int64_t t = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (t >= num_tokens) return;
  const int lane = threadIdx.x % 32;
  const int n = spec.num_experts;
  const float* row = logits + t * n;
  float score[kMaxExpertsPerLane];
  float choice[kMaxExpertsPerLane];
  if (!spec.sigmoid) {
    float mx = -INFINITY;
#pragma unroll
    for (int i = 0; i < kMaxExpertsPerLane; ++i) {
      int e = i * 32 + lane;
      score[i] = e < n ? row[e] : -INFINITY;
      mx = fmaxf(mx, score[i]);
    }
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < kMaxExpertsPerLane; ++i) {
      int e = i * 32 + lane;
      score[i] = e < n ? expf(score[i] - mx) : 0.0f;
      sum += score[i];
    }
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
#pragma unroll
    for (int i = 0; i < kMaxExpertsPerLane; ++i) {
      score[i] /= sum;
      choice[i] = score[i];
    }
  } else {
#pragma unroll
    for (int i = 0; i < kMaxExpertsPerLane; ++i) {
      int e = i * 32 + lane;
      float x = e < n ? row[e] : 0.0f;
      score[i] = 1.0f / (1.0f + expf(-x));
      choice[i] = score[i] + (e < n && spec.correction_bias ? spec.correction_bias[e] : 0.0f);
    }
    // Group-limited: keep the topk_groups groups whose two best choices sum highest.
    const int per_group = n / spec.num_groups;
    float group_score = -INFINITY;  // lane gi holds group gi's score (num_groups <= 32)
    for (int gi = 0; gi < spec.num_groups; ++gi) {
      unsigned taken = 0;
      float s = 0.0f;
      int picks = per_group < 2 ? per_group : 2;
      for (int pick = 0; pick < picks; ++pick) {  // best first, as the reference sums them
        float v;
        int idx;
        LaneBest(choice, taken, n, gi * per_group, (gi + 1) * per_group, v, idx);
        WarpArgMax(v, idx);
        s += v;
        if (idx % 32 == lane) taken |= 1u << (idx / 32);
      }
      if (gi == lane) group_score = s;
    }
    unsigned kept = 0;
    for (int pick = 0; pick < spec.topk_groups; ++pick) {
      bool candidate = lane < spec.num_groups && !(kept >> lane & 1u);
      float v = candidate ? group_score : -INFINITY;
      int idx = candidate ? lane : 0x7fffffff;
      WarpArgMax(v, idx);
      if (idx < 32) kept |= 1u << idx;
    }
#pragma unroll
    for (int i = 0; i < kMaxExpertsPerLane; ++i) {
      int e = i * 32 + lane;
      if (e < n && !(kept >> (e / per_group) & 1u)) choice[i] = 0.0f;
    }
  }
  unsigned taken = 0;
  float total = 0.0f;
  int ids[32];
  float sel[32];
  for (int j = 0; j < spec.top_k; ++j) {
    float v;
    int idx;
    LaneBest(choice, taken, n, 0, n, v, idx);
    WarpArgMax(v, idx);
    if (idx % 32 == lane) taken |= 1u << (idx / 32);
    // The selected expert's unbiased score, from its owning lane.
    float s_own = 0.0f;
#pragma unroll
    for (int i = 0; i < kMaxExpertsPerLane; ++i) {
      if (i * 32 + lane == idx) s_own = score[i];
    }
    float s = __shfl_sync(0xffffffffu, s_own, idx % 32);
    if (j < 32) {
      ids[j] = idx;
      sel[j] = s;
    }
    total += s;
  }
  if (lane != 0) return;
  for (int j = 0; j < spec.top_k && j < 32; ++j) {
    float w = sel[j];
    if (spec.sigmoid) {
      if (spec.norm_topk_prob) w /= (total + 1e-20f);
      w *= spec.routed_scaling_factor;
    } else if (spec.norm_topk_prob) {
      w /= total;
    }
    expert_ids[t * spec.top_k + j] = ids[j];
    weights[t * spec.top_k + j] = w;
  }
}

// Block e: ranks of expert e's assignments in assignment order, and its count.
__global__ void MoeRankKernel(const int32_t* expert_ids, int64_t num_assign, int32_t* counts,
                              int32_t* rank) {
  using Scan = cub::BlockScan<int, 256>;
  __shared__ typename Scan::TempStorage temp;
  const int e = blockIdx.x;
  int base = 0;
  for (int64_t a0 = 0; a0 < num_assign; a0 += 256) {
    int64_t a = a0 + threadIdx.x;
    int flag = (a < num_assign && expert_ids[a] == e) ? 1 : 0;
    int prefix, total;
    Scan(temp).ExclusiveSum(flag, prefix, total);
    if (flag) rank[a] = base + prefix;
    base += total;
    __syncthreads();
  }
  if (threadIdx.x == 0) counts[e + 1] = base;
}

// Exclusive scan of counts (offsets[0] = 0, counts in offsets[1..n]), up to 1024 experts.
__global__ void MoeOffsetsKernel(int32_t* offsets, int num_experts) {
  using Scan = cub::BlockScan<int, 1024>;
  __shared__ typename Scan::TempStorage temp;
  int e = threadIdx.x;
  int c = e < num_experts ? offsets[e + 1] : 0;
  int inclusive;
  Scan(temp).InclusiveSum(c, inclusive);
  __syncthreads();
  if (e < num_experts) offsets[e + 1] = inclusive;
  if (e == 0) offsets[0] = 0;
}

__global__ void MoeScatterKernel(const int32_t* expert_ids, int64_t num_assign, int top_k,
                                 const int32_t* offsets, int32_t* row_of_assignment,
                                 int32_t* token_of_row) {
  int64_t a = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (a >= num_assign) return;
  int row = offsets[expert_ids[a]] + row_of_assignment[a];  // holds the rank until now
  row_of_assignment[a] = row;
  token_of_row[row] = static_cast<int32_t>(a / top_k);
}

__global__ void GatherRowsKernel(const float* x, int64_t hidden, const int32_t* token_of_row,
                                 __nv_bfloat16* xp) {
  int64_t r = blockIdx.x;
  const float* src = x + static_cast<int64_t>(token_of_row[r]) * hidden;
  __nv_bfloat16* dst = xp + r * hidden;
  for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) dst[j] = __float2bfloat16_rn(src[j]);
}

__global__ void BuildTilesKernel(const int32_t* offsets, int num_experts, int tile_rows,
                                 int32_t* row_begin, int32_t* num_rows, int32_t* expert_of_group,
                                 int2* tiles, int32_t* num_tiles) {
  using Scan = cub::BlockScan<int, 1024>;
  __shared__ typename Scan::TempStorage temp;
  int e = threadIdx.x;
  int rows = e < num_experts ? offsets[e + 1] - offsets[e] : 0;
  int my_tiles = (rows + tile_rows - 1) / tile_rows;
  int first, total;
  Scan(temp).ExclusiveSum(my_tiles, first, total);
  if (e < num_experts) {
    row_begin[e] = offsets[e];
    num_rows[e] = rows;
    expert_of_group[e] = e;
    for (int i = 0; i < my_tiles; ++i) tiles[first + i] = make_int2(e, i);
  }
  if (e == 0) *num_tiles = total;
}

__global__ void WeightedCombineKernel(const float* rows, int64_t hidden, int top_k,
                                      const int32_t* row_index, const float* weights, float* out) {
  int64_t t = blockIdx.y;
  int64_t d = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (d >= hidden) return;
  float acc = 0.0f;
  for (int j = 0; j < top_k; ++j) {
    const float* r = rows + static_cast<int64_t>(row_index[t * top_k + j]) * hidden;
    acc += weights[t * top_k + j] * r[d];
  }
  out[t * hidden + d] = acc;
}

}  // namespace

cudaError_t LaunchMoeRoute(const float* logits, int64_t num_tokens, const RouterParams& spec,
                           int32_t* expert_ids, float* weights, cudaStream_t stream) {
  if (num_tokens == 0) return cudaSuccess;
  if (spec.num_experts > 32 * kMaxExpertsPerLane || spec.top_k > 32 || spec.num_groups > 32 ||
      spec.num_groups < 1 || spec.topk_groups > spec.num_groups)
    return cudaErrorInvalidValue;
  constexpr int kWarps = 4;
  unsigned blocks = static_cast<unsigned>((num_tokens + kWarps - 1) / kWarps);
  MoeRouteKernel<<<blocks, 32 * kWarps, 0, stream>>>(logits, num_tokens, spec, expert_ids, weights);
  return cudaGetLastError();
}

cudaError_t LaunchMoePermute(const int32_t* expert_ids, int64_t num_tokens, int top_k,
                             int num_experts, int32_t* expert_offsets, int32_t* row_of_assignment,
                             int32_t* token_of_row, cudaStream_t stream) {
  if (num_experts > 1024) return cudaErrorInvalidValue;
  int64_t num_assign = num_tokens * top_k;
  MoeRankKernel<<<num_experts, 256, 0, stream>>>(expert_ids, num_assign, expert_offsets,
                                                 row_of_assignment);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  MoeOffsetsKernel<<<1, 1024, 0, stream>>>(expert_offsets, num_experts);
  err = cudaGetLastError();
  if (err != cudaSuccess || num_assign == 0) return err;
  MoeScatterKernel<<<static_cast<unsigned>((num_assign + 255) / 256), 256, 0, stream>>>(
      expert_ids, num_assign, top_k, expert_offsets, row_of_assignment, token_of_row);
  return cudaGetLastError();
}

cudaError_t LaunchGatherRowsBf16(const float* x, int64_t hidden, const int32_t* token_of_row,
                                 int64_t num_rows, bf16* xp, cudaStream_t stream) {
  if (num_rows == 0) return cudaSuccess;
  GatherRowsKernel<<<num_rows, 256, 0, stream>>>(x, hidden, token_of_row,
                                                 reinterpret_cast<__nv_bfloat16*>(xp));
  return cudaGetLastError();
}

cudaError_t LaunchBuildExpertTiles(const int32_t* expert_offsets, int num_experts, int tile_rows,
                                   int32_t* row_begin, int32_t* num_rows, int32_t* expert_of_group,
                                   int2* tiles, int32_t* num_tiles, cudaStream_t stream) {
  if (num_experts > 1024) return cudaErrorInvalidValue;
  BuildTilesKernel<<<1, 1024, 0, stream>>>(expert_offsets, num_experts, tile_rows, row_begin,
                                           num_rows, expert_of_group, tiles, num_tiles);
  return cudaGetLastError();
}

cudaError_t LaunchWeightedCombine(const float* rows, int64_t hidden, int64_t num_tokens, int top_k,
                                  const int32_t* row_index, const float* weights, float* out,
                                  cudaStream_t stream) {
  if (num_tokens == 0 || hidden == 0) return cudaSuccess;
  dim3 grid(static_cast<unsigned>((hidden + 255) / 256), static_cast<unsigned>(num_tokens));
  WeightedCombineKernel<<<grid, 256, 0, stream>>>(rows, hidden, top_k, row_index, weights, out);
  return cudaGetLastError();
}

}  // namespace strata::ops::cuda
