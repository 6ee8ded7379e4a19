// Timing and buffer helpers of the GPU benchmarks: CUDA events around a region, warm-up, the
// median of many repetitions; device buffers filled with random data (never zeros).
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "ops/cuda/kernels.h"

namespace strata::bench::gpu {

// Exits with a message on a CUDA error: a benchmark has no caller to return a Status to.
inline void Check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    std::fprintf(stderr, "gpu_bench: %s failed: %s\n", what, cudaGetErrorString(err));
    std::exit(1);
  }
}
#define BENCH_CHECK(expr) ::strata::bench::gpu::Check((expr), #expr)

// Median milliseconds of `reps` runs of fn (each timed with events) after `warmup` runs.
inline double MedianMs(cudaStream_t stream, const std::function<void(int)>& fn, int reps = 20,
                       int warmup = 3) {
  for (int i = 0; i < warmup; ++i) fn(i);
  BENCH_CHECK(cudaStreamSynchronize(stream));
  cudaEvent_t start, stop;
  BENCH_CHECK(cudaEventCreate(&start));
  BENCH_CHECK(cudaEventCreate(&stop));
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    BENCH_CHECK(cudaEventRecord(start, stream));
    fn(warmup + i);
    BENCH_CHECK(cudaEventRecord(stop, stream));
    BENCH_CHECK(cudaEventSynchronize(stop));
    float t = 0;
    BENCH_CHECK(cudaEventElapsedTime(&t, start, stop));
    ms.push_back(t);
  }
  BENCH_CHECK(cudaGetLastError());
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

template <typename T>
T* DeviceAlloc(size_t count) {
  void* p = nullptr;
  BENCH_CHECK(cudaMalloc(&p, std::max<size_t>(count, 1) * sizeof(T)));
  return static_cast<T*>(p);
}

inline bf16* RandomBf16(size_t n, uint64_t seed, float scale, cudaStream_t s) {
  bf16* p = DeviceAlloc<bf16>(n);
  BENCH_CHECK(ops::cuda::LaunchFillRandomBf16(p, static_cast<int64_t>(n), seed, scale, s));
  return p;
}

inline float* RandomF32(size_t n, uint64_t seed, float scale, cudaStream_t s) {
  float* p = DeviceAlloc<float>(n);
  BENCH_CHECK(ops::cuda::LaunchFillRandomF32(p, static_cast<int64_t>(n), seed, scale, s));
  return p;
}

template <typename T>
T* Upload(const std::vector<T>& v, cudaStream_t s) {
  T* p = DeviceAlloc<T>(v.size());
  if (!v.empty())
    BENCH_CHECK(cudaMemcpyAsync(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice, s));
  BENCH_CHECK(cudaStreamSynchronize(s));
  return p;
}

// HBM bandwidth: a 2 GiB device-to-device copy, (bytes read + bytes written) / median time.
inline double MeasureHbmCopyGbps(cudaStream_t s) {
  const size_t bytes = size_t{2} << 30;
  char* a = DeviceAlloc<char>(bytes);
  char* b = DeviceAlloc<char>(bytes);
  BENCH_CHECK(cudaMemsetAsync(a, 0x5a, bytes, s));
  double ms = MedianMs(
      s, [&](int) { BENCH_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, s)); }, 10);
  cudaFree(a);
  cudaFree(b);
  return 2.0 * bytes / (ms * 1e-3) / 1e9;
}

}  // namespace strata::bench::gpu
