// Paged attention on tensor cores (flash style, one kernel for decode and prefill, GQA and
// MLA-as-MQA), split over keys with a fixed-order combine, plus a portable f32 kernel for
// dims the tensor-core path does not tile.
//
// A block owns 16 * RW query rows (token, head-in-group pairs sharing one KV head and one block
// table) and one split of the keys. Warps are RW x CW: each row warp's CW column warps share
// the S = Q K^T work (each computes KEYS / CW keys, exchanged through shared memory) and split
// the output dims of O = P V. K/V tiles are double buffered with cp.async. Softmax is online in
// the log2 domain. Each row reduces its keys in increasing order and the partials of its splits
// are combined in split order, and the split size depends on the dims only: a row's result is
// bit-identical whatever the batch, the rows beside it and the tile height.
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>

#include "ops/cuda/kernels.h"
#include "ops/cuda/mma.cuh"

namespace strata::ops::cuda {
namespace {

constexpr float kLog2e = 1.4426950408889634f;

template <int KPAD, int VPAD, int RW, int CW, int KEYS, int STAGES>
struct AttnConfig {
  static constexpr int kRows = 16 * RW;
  static constexpr int kThreads = 32 * RW * CW;
  static constexpr int kQStride = KPAD + 8;  // bf16 elements per smem row of Q and K
  static constexpr int kVStride = VPAD + 8;
  static constexpr int kSStride = KEYS + 4;  // f32 per smem row of S
  static constexpr int kKeysPerWarp = KEYS / CW;
  static constexpr int kDimsPerWarp = VPAD / CW;
  static_assert(kKeysPerWarp % 16 == 0 && kDimsPerWarp % 16 == 0, "tile shapes");

  static size_t SmemBytes(bool v_in_k) {
    size_t b = sizeof(__nv_bfloat16) * (kRows * kQStride + STAGES * KEYS * kQStride);
    if (!v_in_k) b += sizeof(__nv_bfloat16) * STAGES * KEYS * kVStride;
    b += sizeof(float) * kRows * kSStride + sizeof(int) * 3 * kRows + sizeof(int64_t) * KEYS;
    return b;
  }
};

__device__ __forceinline__ int64_t KeyOffset(const AttentionParams& p, const int32_t* table, int j,
                                             int kvh) {
  int64_t block = table[j / p.block_size];
  return block * p.block_stride + static_cast<int64_t>(j % p.block_size) * p.token_stride +
         static_cast<int64_t>(kvh) * p.head_stride;
}

template <int KPAD, int VPAD, int RW, int CW, int KEYS, int STAGES>
__global__ void __launch_bounds__(32 * RW * CW) AttentionMmaKernel(AttentionParams p, int v_in_k) {
  using C = AttnConfig<KPAD, VPAD, RW, CW, KEYS, STAGES>;
  extern __shared__ __align__(16) unsigned char smem[];
  __nv_bfloat16* sQ = reinterpret_cast<__nv_bfloat16*>(smem);
  __nv_bfloat16* sK = sQ + C::kRows * C::kQStride;
  __nv_bfloat16* sV = v_in_k ? sK : sK + STAGES * KEYS * C::kQStride;
  const int v_stride = v_in_k ? C::kQStride : C::kVStride;
  const int v_stage = KEYS * v_stride;
  int64_t* sOff = reinterpret_cast<int64_t*>(v_in_k ? sK + STAGES * KEYS * C::kQStride
                                                    : sV + STAGES * KEYS * C::kVStride);
  float* sS = reinterpret_cast<float*>(sOff + KEYS);
  int* sTok = reinterpret_cast<int*>(sS + C::kRows * C::kSStride);
  int* sHead = sTok + C::kRows;
  int* sNk = sHead + C::kRows;

  const AttentionTask task = p.tasks[blockIdx.x];
  const int kvh = blockIdx.y;
  const int group = p.num_q_heads / p.num_kv_heads;
  const int item_rows = task.num_tokens * group;
  const int tid = threadIdx.x;
  const int lane = tid % 32;
  const int warp = tid / 32;
  const int rw = warp % RW;
  const int cw = warp / RW;
  const int g = lane / 4;
  const int t4 = lane % 4;

  for (int r = tid; r < C::kRows; r += C::kThreads) {
    int gr = task.row_begin + r;
    if (gr < item_rows) {
      int tok = task.token_begin + gr / group;
      sTok[r] = tok;
      sHead[r] = kvh * group + gr % group;
      sNk[r] = p.num_keys[tok];
    } else {
      sTok[r] = 0;
      sHead[r] = 0;
      sNk[r] = 0;
    }
  }
  __syncthreads();
  int max_keys = 0;
  for (int r = 0; r < C::kRows; ++r) max_keys = max(max_keys, sNk[r]);
  const int k_begin = task.split * p.keys_per_split;
  const int k_end = min(k_begin + p.keys_per_split, max_keys);
  if (k_end <= k_begin) return;  // no row of this block has keys in this split
  const int32_t* table = p.block_tables + p.table_offset[task.token_begin];

  // Q -> bf16 shared memory, zero outside rows and dims: 8 dims per step (one 16-byte store),
  // read-only loads so several are in flight per thread.
  {
    const float* __restrict__ q = p.q;
    constexpr int kChunks = KPAD / 8;
#pragma unroll 4
    for (int idx = tid; idx < C::kRows * kChunks; idx += C::kThreads) {
      int r = idx / kChunks;
      int d0 = (idx % kChunks) * 8;
      float v[8];
      const float* src =
          q + sTok[r] * p.q_token_stride + static_cast<int64_t>(sHead[r]) * p.q_head_stride;
      bool row_ok = sNk[r] > 0;
#pragma unroll
      for (int e = 0; e < 8; ++e) v[e] = row_ok && d0 + e < p.k_dim ? __ldg(src + d0 + e) : 0.0f;
      uint4 packed = make_uint4(PackBf16(v[0], v[1]), PackBf16(v[2], v[3]), PackBf16(v[4], v[5]),
                                PackBf16(v[6], v[7]));
      *reinterpret_cast<uint4*>(sQ + r * C::kQStride + d0) = packed;
    }
  }

  // One block-table lookup per key (in parallel, into shared memory), then 16-byte copies.
  // Called by every thread; ends with the copies issued (not committed).
  auto load_tile = [&](int stage, int j0) {
    for (int key = tid; key < KEYS; key += C::kThreads) {
      int j = j0 + key;
      sOff[key] = j < k_end ? KeyOffset(p, table, j, kvh) : -1;
    }
    __syncthreads();
    constexpr int kChunksK = KPAD / 8;
    __nv_bfloat16* dk = sK + stage * KEYS * C::kQStride;
    const __nv_bfloat16* kbase = reinterpret_cast<const __nv_bfloat16*>(p.k);
    for (int idx = tid; idx < KEYS * kChunksK; idx += C::kThreads) {
      int key = idx / kChunksK;
      int c = idx % kChunksK;
      int64_t off = sOff[key];
      bool ok = off >= 0 && c * 8 < p.k_dim;
      CpAsync16(dk + key * C::kQStride + c * 8, ok ? kbase + off + c * 8 : kbase, ok ? 16 : 0);
    }
    if (!v_in_k) {
      constexpr int kChunksV = VPAD / 8;
      __nv_bfloat16* dv = sV + stage * v_stage;
      const __nv_bfloat16* vbase = reinterpret_cast<const __nv_bfloat16*>(p.v);
      for (int idx = tid; idx < KEYS * kChunksV; idx += C::kThreads) {
        int key = idx / kChunksV;
        int c = idx % kChunksV;
        int64_t off = sOff[key];
        bool ok = off >= 0 && c * 8 < p.v_dim;
        CpAsync16(dv + key * v_stride + c * 8, ok ? vbase + off + c * 8 : vbase, ok ? 16 : 0);
      }
    }
  };

  constexpr int kNtO = C::kDimsPerWarp / 8;
  float o[kNtO][4];
#pragma unroll
  for (int i = 0; i < kNtO; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float m_run[2] = {-INFINITY, -INFINITY};
  float l_run[2] = {0.0f, 0.0f};
  const int row0 = rw * 16 + g;
  const int nk_row[2] = {sNk[row0], sNk[row0 + 8]};
  const bool warp_active = sNk[rw * 16] > 0;  // rows fill a tile from its first row
  const int kd16 = (p.k_dim + 15) / 16;
  const int vd_begin = cw * C::kDimsPerWarp;
  const float scale2 = p.scale * kLog2e;

  const int num_tiles = (k_end - k_begin + KEYS - 1) / KEYS;
#pragma unroll
  for (int st = 0; st < STAGES - 1; ++st) {
    if (st < num_tiles) load_tile(st, k_begin + st * KEYS);
    CpAsyncCommit();
  }
  for (int it = 0; it < num_tiles; ++it) {
    const int j0 = k_begin + it * KEYS;
    CpAsyncWait<STAGES - 2>();
    __syncthreads();
    const int stage = it % STAGES;
    const __nv_bfloat16* tk = sK + stage * KEYS * C::kQStride;
    const __nv_bfloat16* tv = sV + stage * v_stage;

    if (warp_active) {  // S for this warp's keys
      constexpr int kNtS = C::kKeysPerWarp / 8;
      float s[kNtS][4];
#pragma unroll
      for (int i = 0; i < kNtS; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
      const int key_base = cw * C::kKeysPerWarp;
      for (int kk = 0; kk < kd16; ++kk) {
        uint32_t a[4];
        LdMatrixX4(a, sQ + (rw * 16 + lane % 16) * C::kQStride + kk * 16 + (lane / 16) * 8);
#pragma unroll
        for (int pp = 0; pp < kNtS / 2; ++pp) {
          uint32_t b[4];
          LdMatrixX4(b, tk + (key_base + pp * 16 + lane % 8 + (lane / 16) * 8) * C::kQStride +
                            kk * 16 + ((lane / 8) % 2) * 8);
          MmaBf16(s[2 * pp], a, b[0], b[1]);
          MmaBf16(s[2 * pp + 1], a, b[2], b[3]);
        }
      }
#pragma unroll
      for (int i = 0; i < kNtS; ++i) {
        float* dst = sS + row0 * C::kSStride + key_base + i * 8 + 2 * t4;
        dst[0] = s[i][0];
        dst[1] = s[i][1];
        dst[8 * C::kSStride] = s[i][2];
        dst[8 * C::kSStride + 1] = s[i][3];
      }
    }
    __syncthreads();

    if (warp_active) {
      constexpr int kNt = KEYS / 8;
      float pr[kNt][4];
      float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int i = 0; i < kNt; ++i) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          int half = e / 2;
          int j = j0 + i * 8 + 2 * t4 + (e % 2);
          float v = sS[(row0 + 8 * half) * C::kSStride + i * 8 + 2 * t4 + (e % 2)] * scale2;
          v = j < nk_row[half] ? v : -INFINITY;
          pr[i][e] = v;
          tile_max[half] = fmaxf(tile_max[half], v);
        }
      }
      float alpha[2];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        tile_max[h] = fmaxf(tile_max[h], __shfl_xor_sync(0xffffffffu, tile_max[h], 1));
        tile_max[h] = fmaxf(tile_max[h], __shfl_xor_sync(0xffffffffu, tile_max[h], 2));
        float m_new = fmaxf(m_run[h], tile_max[h]);
        alpha[h] = m_new == -INFINITY ? 1.0f : exp2f(m_run[h] - m_new);
        m_run[h] = m_new;
      }
      float row_sum[2] = {0.0f, 0.0f};
#pragma unroll
      for (int i = 0; i < kNt; ++i) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          int h = e / 2;
          float v = pr[i][e] == -INFINITY ? 0.0f : exp2f(pr[i][e] - m_run[h]);
          pr[i][e] = v;
          row_sum[h] += v;
        }
      }
      l_run[0] = l_run[0] * alpha[0] + row_sum[0];
      l_run[1] = l_run[1] * alpha[1] + row_sum[1];
#pragma unroll
      for (int i = 0; i < kNtO; ++i) {
        o[i][0] *= alpha[0];
        o[i][1] *= alpha[0];
        o[i][2] *= alpha[1];
        o[i][3] *= alpha[1];
      }
#pragma unroll
      for (int kk = 0; kk < KEYS / 16; ++kk) {
        uint32_t a[4] = {PackBf16(pr[2 * kk][0], pr[2 * kk][1]),
                         PackBf16(pr[2 * kk][2], pr[2 * kk][3]),
                         PackBf16(pr[2 * kk + 1][0], pr[2 * kk + 1][1]),
                         PackBf16(pr[2 * kk + 1][2], pr[2 * kk + 1][3])};
#pragma unroll
        for (int pp = 0; pp < kNtO / 2; ++pp) {
          int d0 = vd_begin + pp * 16;
          if (d0 < p.v_dim) {
            uint32_t b[4];
            LdMatrixX4Trans(b, tv + (kk * 16 + lane % 8 + ((lane / 8) % 2) * 8) * v_stride + d0 +
                                   (lane / 16) * 8);
            MmaBf16(o[2 * pp], a, b[0], b[1]);
            MmaBf16(o[2 * pp + 1], a, b[2], b[3]);
          }
        }
      }
    }
    // The stage read in iteration it - 1 is refilled; every thread is past this iteration's
    // first barrier, so nobody reads it any more.
    const int next = it + STAGES - 1;
    if (next < num_tiles) load_tile(next % STAGES, k_begin + next * KEYS);
    CpAsyncCommit();
  }
  CpAsyncWait<0>();

  if (!warp_active) return;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    l_run[h] += __shfl_xor_sync(0xffffffffu, l_run[h], 1);
    l_run[h] += __shfl_xor_sync(0xffffffffu, l_run[h], 2);
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int r = row0 + 8 * h;
    const int nk = sNk[r];
    if (nk <= k_begin) continue;  // no keys of this row here (and no split of it is here)
    const int tok = sTok[r];
    const int head = sHead[r];
    const int splits = p.num_splits[tok];
    if (splits == 1) {
      float inv = 1.0f / l_run[h];
      float* dst =
          p.out + tok * p.out_token_stride + static_cast<int64_t>(head) * p.out_head_stride;
#pragma unroll
      for (int i = 0; i < kNtO; ++i) {
        int d = vd_begin + i * 8 + 2 * t4;
        if (d < p.v_dim) dst[d] = o[i][2 * h] * inv;
        if (d + 1 < p.v_dim) dst[d + 1] = o[i][2 * h + 1] * inv;
      }
    } else {
      int64_t prow = static_cast<int64_t>(p.split_base[tok] + task.split) * p.num_q_heads + head;
      float* dst = p.partial_o + prow * p.v_dim;
#pragma unroll
      for (int i = 0; i < kNtO; ++i) {
        int d = vd_begin + i * 8 + 2 * t4;
        if (d < p.v_dim) dst[d] = o[i][2 * h];
        if (d + 1 < p.v_dim) dst[d + 1] = o[i][2 * h + 1];
      }
      if (cw == 0 && t4 == 0) {
        p.partial_ml[prow * 2] = m_run[h];
        p.partial_ml[prow * 2 + 1] = l_run[h];
      }
    }
  }
}

// out = sum_s O_s * 2^(m_s - M) / sum_s l_s * 2^(m_s - M), splits in increasing order.
__global__ void AttentionCombineKernel(AttentionParams p) {
  const int tok = blockIdx.x;
  const int head = blockIdx.y;
  const int splits = p.num_splits[tok];
  if (splits <= 1) return;
  const int64_t base = static_cast<int64_t>(p.split_base[tok]) * p.num_q_heads + head;
  const int64_t step = p.num_q_heads;
  float m = -INFINITY;
  for (int s = 0; s < splits; ++s) m = fmaxf(m, p.partial_ml[(base + s * step) * 2]);
  float l = 0.0f;
  for (int s = 0; s < splits; ++s) {
    const float* ml = p.partial_ml + (base + s * step) * 2;
    l += ml[1] * exp2f(ml[0] - m);
  }
  float inv = 1.0f / l;
  float* dst = p.out + tok * p.out_token_stride + static_cast<int64_t>(head) * p.out_head_stride;
  for (int d = threadIdx.x; d < p.v_dim; d += blockDim.x) {
    float acc = 0.0f;
    for (int s = 0; s < splits; ++s) {
      float w = exp2f(p.partial_ml[(base + s * step) * 2] - m);
      acc += p.partial_o[(base + s * step) * p.v_dim + d] * w;
    }
    dst[d] = acc * inv;
  }
}

// One warp per (token, head): f32 dot products reduced by a fixed shuffle tree, online softmax
// over keys in increasing order. Dynamic shared memory: k_dim + v_dim floats.
__global__ void AttentionPortableKernel(AttentionParams p) {
  extern __shared__ float sh[];
  float* q = sh;
  float* acc = sh + p.k_dim;
  const int tok = blockIdx.x;
  const int head = blockIdx.y;
  const int lane = threadIdx.x;
  const int group = p.num_q_heads / p.num_kv_heads;
  const int kvh = head / group;
  const float* qsrc = p.q + tok * p.q_token_stride + static_cast<int64_t>(head) * p.q_head_stride;
  for (int d = lane; d < p.k_dim; d += 32) q[d] = qsrc[d];
  for (int d = lane; d < p.v_dim; d += 32) acc[d] = 0.0f;
  __syncwarp();
  const int32_t* table = p.block_tables + p.table_offset[tok];
  const int n = p.num_keys[tok];
  float m = -INFINITY;
  float l = 0.0f;
  for (int j = 0; j < n; ++j) {
    int64_t off = KeyOffset(p, table, j, kvh);
    const __nv_bfloat16* k = reinterpret_cast<const __nv_bfloat16*>(p.k) + off;
    const __nv_bfloat16* v = reinterpret_cast<const __nv_bfloat16*>(p.v) + off;
    float dot = 0.0f;
    for (int d = lane; d < p.k_dim; d += 32) dot += q[d] * __bfloat162float(k[d]);
    for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
    float s = dot * p.scale;
    float m_new = fmaxf(m, s);
    float alpha = expf(m - m_new);
    float pj = expf(s - m_new);
    l = l * alpha + pj;
    m = m_new;
    for (int d = lane; d < p.v_dim; d += 32) acc[d] = acc[d] * alpha + pj * __bfloat162float(v[d]);
  }
  __syncwarp();
  float* dst = p.out + tok * p.out_token_stride + static_cast<int64_t>(head) * p.out_head_stride;
  for (int d = lane; d < p.v_dim; d += 32) dst[d] = acc[d] / l;
}

enum TilingKind { kNone = 0, k64r1, k64r4, k128r1, k128r4, k256r1, k256r4, kMla };

template <int KPAD, int VPAD, int RW, int CW, int KEYS, int STAGES>
cudaError_t LaunchMma(const AttentionParams& p, bool v_in_k, cudaStream_t stream) {
  using C = AttnConfig<KPAD, VPAD, RW, CW, KEYS, STAGES>;
  auto kernel = AttentionMmaKernel<KPAD, VPAD, RW, CW, KEYS, STAGES>;
  size_t smem = C::SmemBytes(v_in_k);
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(smem));
  if (err != cudaSuccess) return err;
  kernel<<<dim3(p.num_tasks, p.num_kv_heads), C::kThreads, smem, stream>>>(p, v_in_k ? 1 : 0);
  return cudaGetLastError();
}

}  // namespace

AttentionTiling ChooseAttentionTiling(int group, int k_dim, int v_dim, bool aligned,
                                      int max_tokens_per_item, bool v_in_k) {
  AttentionTiling t;
  if (!aligned || k_dim % 8 != 0 || v_dim % 8 != 0 || k_dim <= 0 || v_dim <= 0) return t;
  bool one_warp_rows = static_cast<int64_t>(max_tokens_per_item) * group <= 16;
  int d = std::max(k_dim, v_dim);
  if (d <= 64) {
    t.kind = one_warp_rows ? k64r1 : k64r4;
  } else if (d <= 128) {
    t.kind = one_warp_rows ? k128r1 : k128r4;
  } else if (d <= 256) {
    t.kind = one_warp_rows ? k256r1 : k256r4;
  } else if (k_dim <= 576 && v_dim <= 512 && v_in_k) {  // V tiles would not fit beside K
    t.kind = kMla;
  } else {
    return t;
  }
  t.rows_per_block = (t.kind == kMla || !one_warp_rows) ? 64 : 16;
  t.keys_per_split = t.kind == kMla ? 1024 : 512;
  return t;
}

cudaError_t LaunchAttention(const AttentionParams& p, const AttentionTiling& tiling,
                            cudaStream_t stream) {
  if (p.num_tasks == 0) return cudaSuccess;
  bool v_in_k = p.v == p.k && p.v_dim <= p.k_dim;
  cudaError_t err = cudaErrorInvalidValue;
  switch (tiling.kind) {
    case k64r1:
      err = LaunchMma<64, 64, 1, 2, 32, 3>(p, v_in_k, stream);
      break;
    case k64r4:
      err = LaunchMma<64, 64, 4, 2, 32, 3>(p, v_in_k, stream);
      break;
    case k128r1:
      err = LaunchMma<128, 128, 1, 2, 32, 3>(p, v_in_k, stream);
      break;
    case k128r4:
      err = LaunchMma<128, 128, 4, 2, 32, 3>(p, v_in_k, stream);
      break;
    case k256r1:
      err = LaunchMma<256, 256, 1, 2, 32, 3>(p, v_in_k, stream);
      break;
    case k256r4:
      err = LaunchMma<256, 256, 4, 2, 32, 3>(p, v_in_k, stream);
      break;
    case kMla:
      err = LaunchMma<576, 512, 4, 2, 32, 3>(p, v_in_k, stream);
      break;
    default:
      break;
  }
  if (err != cudaSuccess) return err;
  AttentionCombineKernel<<<dim3(p.num_tokens, p.num_q_heads), 128, 0, stream>>>(p);
  return cudaGetLastError();
}

cudaError_t LaunchAttentionPortable(const AttentionParams& p, cudaStream_t stream) {
  if (p.num_tokens == 0) return cudaSuccess;
  size_t smem = sizeof(float) * (p.k_dim + p.v_dim);
  if (smem > 48 * 1024) {
    cudaError_t err = cudaFuncSetAttribute(AttentionPortableKernel,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (err != cudaSuccess) return err;
  }
  AttentionPortableKernel<<<dim3(p.num_tokens, p.num_q_heads), 32, smem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace strata::ops::cuda
