// Grouped expert GEMM on tensor cores (mma.sync bf16 -> f32), one launch for all experts.
// Block tile BM x 128 x 64 (BM = 64 or 128), 8 warps as 2 (rows) x 4 (cols), a 3-4 stage
// cp.async pipeline. Tiles come from a device list, so expert row counts never visit the host.
// The gate/up kernel loads 64 gate rows and the matching 64 up rows of the weights as one
// 128-row B tile, so silu(gate) * up is formed in registers and h is written once, in bf16.
// Every output element is reduced over k in the same 16-wide steps whatever BM or the number
// of rows: results do not depend on the batch.
#include <cuda_bf16.h>

#include "ops/cuda/kernels.h"
#include "ops/cuda/mma.cuh"

namespace strata::ops::cuda {
namespace {

constexpr int kBN = 128;
constexpr int kBK = 64;
constexpr int kStride = kBK + 8;  // bf16 per smem row (144 bytes: ldmatrix without conflicts)
constexpr int kThreads = 256;

// Pipeline depth: 4 stages of 64-row tiles or 3 of 128-row tiles (about 110 KB each, two
// blocks per SM), so 16 KB of weights per stage and up to ~100 KB per SM stay in flight.
template <int BM>
__host__ __device__ constexpr int Stages() {
  return BM == 64 ? 4 : 3;
}

template <int BM>
constexpr size_t SmemBytes() {
  return sizeof(__nv_bfloat16) * Stages<BM>() * (BM + kBN) * kStride;
}

// kFused: gate/up with silu-mul epilogue into bf16 h; otherwise a plain product into f32.
template <int BM, bool kFused>
__global__ void __launch_bounds__(kThreads)
    GroupedGemmKernel(const __nv_bfloat16* a, int64_t k_dim, int64_t n_dim,
                      GroupedGemmGroups groups, ExpertWeightTable w, __nv_bfloat16* h_out,
                      float* f_out) {
  constexpr int kStages = Stages<BM>();
  if (static_cast<int>(blockIdx.y) >= *groups.num_tiles) return;
  extern __shared__ __align__(16) unsigned char smem[];
  __nv_bfloat16* sA = reinterpret_cast<__nv_bfloat16*>(smem);
  __nv_bfloat16* sB = sA + kStages * BM * kStride;

  const int2 tile = groups.tiles[blockIdx.y];
  const int gi = tile.x;
  const int expert = groups.expert_of_group[gi];
  const int64_t row0 = groups.row_begin[gi] + static_cast<int64_t>(tile.y) * BM;
  const int rows = min(BM, groups.num_rows[gi] - tile.y * BM);
  // Output columns of this block: kFused -> 64 columns of h; else 128 columns of out.
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * (kFused ? kBN / 2 : kBN);
  const __nv_bfloat16* wa =
      reinterpret_cast<const __nv_bfloat16*>(kFused ? w.gate[expert] : w.down[expert]);
  const int64_t sa = kFused ? w.gate_stride[expert] : w.down_stride[expert];
  const __nv_bfloat16* wb = kFused ? reinterpret_cast<const __nv_bfloat16*>(w.up[expert]) : wa;
  const int64_t sb = kFused ? w.up_stride[expert] : sa;

  const int tid = threadIdx.x;
  const int lane = tid % 32;
  const int warp = tid / 32;
  const int wm = warp / 4;  // 0..1
  const int wn = warp % 4;  // 0..3
  const int g = lane / 4;
  const int t4 = lane % 4;
  const int k_tiles = static_cast<int>((k_dim + kBK - 1) / kBK);

  auto load_stage = [&](int stage, int kt) {
    const int64_t k0 = static_cast<int64_t>(kt) * kBK;
    __nv_bfloat16* da = sA + stage * BM * kStride;
    for (int idx = tid; idx < BM * (kBK / 8); idx += kThreads) {
      int r = idx / (kBK / 8);
      int c = idx % (kBK / 8);
      int64_t kc = k0 + c * 8;
      bool ok = r < rows && kc < k_dim;
      const __nv_bfloat16* src = ok ? a + (row0 + r) * k_dim + kc : a;
      CpAsync16(da + r * kStride + c * 8, src, ok ? 16 : 0);
    }
    __nv_bfloat16* db = sB + stage * kBN * kStride;
    for (int idx = tid; idx < kBN * (kBK / 8); idx += kThreads) {
      int r = idx / (kBK / 8);
      int c = idx % (kBK / 8);
      int64_t kc = k0 + c * 8;
      int64_t n;
      const __nv_bfloat16* base;
      int64_t stride;
      if (kFused) {
        n = n0 + (r % (kBN / 2));
        base = r < kBN / 2 ? wa : wb;
        stride = r < kBN / 2 ? sa : sb;
      } else {
        n = n0 + r;
        base = wa;
        stride = sa;
      }
      bool ok = n < n_dim && kc < k_dim;
      const __nv_bfloat16* src = ok ? base + n * stride + kc : wa;
      CpAsync16(db + r * kStride + c * 8, src, ok ? 16 : 0);
    }
  };

  constexpr int kMi = BM / 2 / 16;  // m16 tiles per warp
  float acc[kMi][4][4];
#pragma unroll
  for (int i = 0; i < kMi; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = acc[i][j][3] = 0.0f;

#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < k_tiles) load_stage(s, s);
    CpAsyncCommit();
  }
  for (int kt = 0; kt < k_tiles; ++kt) {
    CpAsyncWait<kStages - 2>();
    __syncthreads();
    const int stage = kt % kStages;
    const __nv_bfloat16* ta = sA + stage * BM * kStride;
    const __nv_bfloat16* tb = sB + stage * kBN * kStride;
#pragma unroll
    for (int kk = 0; kk < kBK / 16; ++kk) {
      uint32_t af[kMi][4];
#pragma unroll
      for (int mi = 0; mi < kMi; ++mi) {
        int r = wm * (BM / 2) + mi * 16 + lane % 16;
        LdMatrixX4(af[mi], ta + r * kStride + kk * 16 + (lane / 16) * 8);
      }
#pragma unroll
      for (int pp = 0; pp < 2; ++pp) {
        int nb = kFused ? (pp == 0 ? wn * 16 : kBN / 2 + wn * 16) : wn * 32 + pp * 16;
        uint32_t bf[4];
        LdMatrixX4(
            bf, tb + (nb + lane % 8 + (lane / 16) * 8) * kStride + kk * 16 + ((lane / 8) % 2) * 8);
#pragma unroll
        for (int mi = 0; mi < kMi; ++mi) {
          MmaBf16(acc[mi][2 * pp], af[mi], bf[0], bf[1]);
          MmaBf16(acc[mi][2 * pp + 1], af[mi], bf[2], bf[3]);
        }
      }
    }
    const int next = kt + kStages - 1;
    if (next < k_tiles) load_stage(next % kStages, next);
    CpAsyncCommit();
  }
  CpAsyncWait<0>();

#pragma unroll
  for (int mi = 0; mi < kMi; ++mi) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      int r = wm * (BM / 2) + mi * 16 + g + 8 * h;
      if (r >= rows) continue;
      int64_t out_row = row0 + r;
      if (kFused) {
#pragma unroll
        for (int ni = 0; ni < 2; ++ni) {
          int64_t col = n0 + wn * 16 + ni * 8 + 2 * t4;
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            if (col + e >= n_dim) continue;
            float gv = acc[mi][ni][2 * h + e];
            float uv = acc[mi][ni + 2][2 * h + e];
            h_out[out_row * n_dim + col + e] = __float2bfloat16_rn(gv / (1.0f + __expf(-gv)) * uv);
          }
        }
      } else {
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) {
          int64_t col = n0 + wn * 32 + ni * 8 + 2 * t4;
          float* dst = f_out + out_row * n_dim + col;
          if (col + 1 < n_dim && n_dim % 2 == 0) {
            *reinterpret_cast<float2*>(dst) =
                make_float2(acc[mi][ni][2 * h], acc[mi][ni][2 * h + 1]);
          } else {
            if (col < n_dim) dst[0] = acc[mi][ni][2 * h];
            if (col + 1 < n_dim) dst[1] = acc[mi][ni][2 * h + 1];
          }
        }
      }
    }
  }
}

template <int BM, bool kFused>
cudaError_t Launch(const bf16* a, int64_t k_dim, int64_t n_dim, const GroupedGemmGroups& groups,
                   const ExpertWeightTable& w, bf16* h, float* out, cudaStream_t stream) {
  if (groups.max_tiles == 0) return cudaSuccess;
  auto kernel = GroupedGemmKernel<BM, kFused>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(SmemBytes<BM>()));
  if (err != cudaSuccess) return err;
  int64_t cols_per_block = kFused ? kBN / 2 : kBN;
  // n fastest: the blocks of one row tile run together and share its activations in L2, and
  // the next row tile of the same expert follows while that expert's weights are still there.
  dim3 grid(static_cast<unsigned>((n_dim + cols_per_block - 1) / cols_per_block), groups.max_tiles);
  kernel<<<grid, kThreads, SmemBytes<BM>(), stream>>>(reinterpret_cast<const __nv_bfloat16*>(a),
                                                      k_dim, n_dim, groups, w,
                                                      reinterpret_cast<__nv_bfloat16*>(h), out);
  return cudaGetLastError();
}

}  // namespace

int GroupedGemmTileRows(int64_t max_rows_per_group) { return max_rows_per_group <= 64 ? 64 : 128; }

cudaError_t LaunchGroupedGateUp(const bf16* a, int64_t hidden, int64_t inter,
                                const GroupedGemmGroups& groups, const ExpertWeightTable& w,
                                int tile_rows, bf16* h, cudaStream_t stream) {
  if (hidden % 8 != 0) return cudaErrorInvalidValue;
  return tile_rows == 64 ? Launch<64, true>(a, hidden, inter, groups, w, h, nullptr, stream)
                         : Launch<128, true>(a, hidden, inter, groups, w, h, nullptr, stream);
}

cudaError_t LaunchGroupedDown(const bf16* h, int64_t inter, int64_t hidden,
                              const GroupedGemmGroups& groups, const ExpertWeightTable& w,
                              int tile_rows, float* out, cudaStream_t stream) {
  if (inter % 8 != 0) return cudaErrorInvalidValue;
  return tile_rows == 64 ? Launch<64, false>(h, inter, hidden, groups, w, nullptr, out, stream)
                         : Launch<128, false>(h, inter, hidden, groups, w, nullptr, out, stream);
}

}  // namespace strata::ops::cuda
