// Row-wise and elementwise kernels. Every output element is produced by one thread (or one
// block reduction in a fixed tree order for RMSNorm), so results do not depend on the batch.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "ops/cuda/kernels.h"

namespace strata::ops::cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ __nv_bfloat16 ToBf16(float f) { return __float2bfloat16_rn(f); }

__global__ void ConvertToBf16Kernel(const float* x, int64_t m, int64_t n, int64_t ldx,
                                    __nv_bfloat16* y, int64_t ldy, int64_t dx, int64_t dy) {
  int64_t row = blockIdx.y;
  x += blockIdx.z * dx;
  y += blockIdx.z * dy;
  for (int64_t j = blockIdx.x * blockDim.x + threadIdx.x; j < n; j += gridDim.x * blockDim.x) {
    y[row * ldy + j] = ToBf16(x[row * ldx + j]);
  }
}

__global__ void EmbeddingKernel(const void* table, DType dtype, int64_t cols, int64_t stride,
                                const int32_t* ids, float* out, int64_t ldo) {
  int64_t i = blockIdx.x;
  int64_t base = static_cast<int64_t>(ids[i]) * stride;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    float v;
    if (dtype == DType::kBF16) {
      v = __bfloat162float(static_cast<const __nv_bfloat16*>(table)[base + j]);
    } else if (dtype == DType::kF16) {
      v = __half2float(static_cast<const __half*>(table)[base + j]);
    } else {
      v = static_cast<const float*>(table)[base + j];
    }
    out[i * ldo + j] = v;
  }
}

// Block-wide sum in a fixed order (per-thread strided partial sums, then a tree).
__device__ float BlockSum(float v, float* scratch) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  int warp = threadIdx.x / 32;
  int lane = threadIdx.x % 32;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  int num_warps = blockDim.x / 32;
  v = lane < num_warps ? scratch[lane] : 0.0f;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  return v;
}

__global__ void RmsNormKernel(const float* x, int64_t n, int64_t ldx, const float* weight,
                              float eps, float* out, int64_t ldo) {
  __shared__ float scratch[32];
  const float* xr = x + blockIdx.x * ldx;
  float* orow = out + blockIdx.x * ldo;
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) sum += xr[j] * xr[j];
  sum = BlockSum(sum, scratch);
  float inv = rsqrtf(sum / static_cast<float>(n) + eps);
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) orow[j] = xr[j] * inv * weight[j];
}

__global__ void RopeKernel(float* x, int64_t token_stride, int num_heads, int64_t head_stride,
                           const int32_t* positions, const float* inv_freq, int rotary_dim,
                           bool interleaved, float attention_factor) {
  int64_t t = blockIdx.x;
  int half = rotary_dim / 2;
  float pos = static_cast<float>(positions[t]);
  for (int idx = threadIdx.x; idx < num_heads * half; idx += blockDim.x) {
    int h = idx / half;
    int i = idx % half;
    float angle = pos * inv_freq[i];
    float s, c;
    sincosf(angle, &s, &c);
    c *= attention_factor;
    s *= attention_factor;
    float* head = x + t * token_stride + h * head_stride;
    int a = interleaved ? 2 * i : i;
    int b = interleaved ? 2 * i + 1 : i + half;
    float xa = head[a];
    float xb = head[b];
    head[a] = xa * c - xb * s;
    head[b] = xb * c + xa * s;
  }
}

__global__ void SiluMulKernel(const float* gate, int64_t ldg, const float* up, int64_t ldu,
                              int64_t n, float* out, int64_t ldo) {
  int64_t i = blockIdx.y;
  for (int64_t j = blockIdx.x * blockDim.x + threadIdx.x; j < n; j += gridDim.x * blockDim.x) {
    float g = gate[i * ldg + j];
    out[i * ldo + j] = g / (1.0f + expf(-g)) * up[i * ldu + j];
  }
}

__global__ void AddKernel(float* y, int64_t ldy, const float* x, int64_t ldx, int64_t n) {
  int64_t i = blockIdx.y;
  for (int64_t j = blockIdx.x * blockDim.x + threadIdx.x; j < n; j += gridDim.x * blockDim.x) {
    y[i * ldy + j] += x[i * ldx + j];
  }
}

__global__ void ScatterKernel(const float* src, int64_t lds, int64_t width, __nv_bfloat16* dst,
                              const int64_t* dst_offsets) {
  int64_t t = blockIdx.x;
  int64_t base = dst_offsets[t];
  for (int64_t j = threadIdx.x; j < width; j += blockDim.x)
    dst[base + j] = ToBf16(src[t * lds + j]);
}

__device__ __forceinline__ uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Sum of four uniforms, centred and scaled to unit variance: cheap, bounded, never zero-heavy.
__device__ __forceinline__ float RandomNormalish(uint64_t seed, int64_t i) {
  uint64_t r = Mix64(seed ^ Mix64(static_cast<uint64_t>(i)));
  float s = 0.0f;
  for (int k = 0; k < 4; ++k) s += static_cast<float>((r >> (16 * k)) & 0xffff) * (1.0f / 65536.0f);
  return (s - 2.0f) * 1.7320508f;
}

__global__ void FillBf16Kernel(__nv_bfloat16* p, int64_t n, uint64_t seed, float scale) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    p[i] = ToBf16(RandomNormalish(seed, i) * scale);
  }
}

__global__ void FillF32Kernel(float* p, int64_t n, uint64_t seed, float scale) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    p[i] = RandomNormalish(seed, i) * scale;
  }
}

unsigned ColumnBlocks(int64_t n) {
  return static_cast<unsigned>(std::min<int64_t>((n + kThreads - 1) / kThreads, 64));
}

cudaError_t Done() { return cudaGetLastError(); }

}  // namespace

cudaError_t LaunchConvertToBf16(const float* x, int64_t m, int64_t n, int64_t ldx, bf16* y,
                                int64_t ldy, cudaStream_t stream, int batch, int64_t dx,
                                int64_t dy) {
  if (m == 0 || n == 0 || batch == 0) return cudaSuccess;
  ConvertToBf16Kernel<<<dim3(ColumnBlocks(n), m, batch), kThreads, 0, stream>>>(
      x, m, n, ldx, reinterpret_cast<__nv_bfloat16*>(y), ldy, dx, dy);
  return Done();
}

cudaError_t LaunchEmbedding(const void* table, DType dtype, int64_t cols, int64_t stride,
                            const int32_t* ids, int64_t n, float* out, int64_t ldo,
                            cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  EmbeddingKernel<<<n, kThreads, 0, stream>>>(table, dtype, cols, stride, ids, out, ldo);
  return Done();
}

cudaError_t LaunchRmsNorm(const float* x, int64_t m, int64_t n, int64_t ldx, const float* weight,
                          float eps, float* out, int64_t ldo, cudaStream_t stream) {
  if (m == 0) return cudaSuccess;
  int threads = n >= 1024 ? 512 : 128;
  RmsNormKernel<<<m, threads, 0, stream>>>(x, n, ldx, weight, eps, out, ldo);
  return Done();
}

cudaError_t LaunchRope(float* x, int64_t num_tokens, int64_t token_stride, int num_heads,
                       int64_t head_stride, const int32_t* positions, const float* inv_freq,
                       int rotary_dim, bool interleaved, float attention_factor,
                       cudaStream_t stream) {
  if (num_tokens == 0 || rotary_dim < 2) return cudaSuccess;
  RopeKernel<<<num_tokens, 128, 0, stream>>>(x, token_stride, num_heads, head_stride, positions,
                                             inv_freq, rotary_dim, interleaved, attention_factor);
  return Done();
}

cudaError_t LaunchSiluMul(const float* gate, int64_t ldg, const float* up, int64_t ldu, int64_t m,
                          int64_t n, float* out, int64_t ldo, cudaStream_t stream) {
  if (m == 0 || n == 0) return cudaSuccess;
  SiluMulKernel<<<dim3(ColumnBlocks(n), m), kThreads, 0, stream>>>(gate, ldg, up, ldu, n, out, ldo);
  return Done();
}

cudaError_t LaunchAdd(float* y, int64_t ldy, const float* x, int64_t ldx, int64_t m, int64_t n,
                      cudaStream_t stream) {
  if (m == 0 || n == 0) return cudaSuccess;
  AddKernel<<<dim3(ColumnBlocks(n), m), kThreads, 0, stream>>>(y, ldy, x, ldx, n);
  return Done();
}

cudaError_t LaunchScatterToCache(const float* src, int64_t num_tokens, int64_t lds, int64_t width,
                                 bf16* dst, const int64_t* dst_offsets, cudaStream_t stream) {
  if (num_tokens == 0) return cudaSuccess;
  ScatterKernel<<<num_tokens, 128, 0, stream>>>(src, lds, width,
                                                reinterpret_cast<__nv_bfloat16*>(dst), dst_offsets);
  return Done();
}

cudaError_t LaunchFillRandomBf16(bf16* p, int64_t n, uint64_t seed, float scale,
                                 cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  FillBf16Kernel<<<1024, kThreads, 0, stream>>>(reinterpret_cast<__nv_bfloat16*>(p), n, seed,
                                                scale);
  return Done();
}

cudaError_t LaunchFillRandomF32(float* p, int64_t n, uint64_t seed, float scale,
                                cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  FillF32Kernel<<<1024, kThreads, 0, stream>>>(p, n, seed, scale);
  return Done();
}

}  // namespace strata::ops::cuda
