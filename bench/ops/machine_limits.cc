#include "bench/ops/machine_limits.h"

#include <immintrin.h>

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "ops/cpu/cpu_features.h"

namespace strata::bench {
namespace {

using Clock = std::chrono::steady_clock;

__attribute__((target("avx512f"))) uint64_t SumAvx512(const uint8_t* p, size_t n) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 256 <= n; i += 256) {
    a0 = _mm512_add_epi64(a0, _mm512_load_si512(p + i));
    a1 = _mm512_add_epi64(a1, _mm512_load_si512(p + i + 64));
    a2 = _mm512_add_epi64(a2, _mm512_load_si512(p + i + 128));
    a3 = _mm512_add_epi64(a3, _mm512_load_si512(p + i + 192));
  }
  a0 = _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3));
  return static_cast<uint64_t>(_mm512_reduce_add_epi64(a0));
}

uint64_t SumPlain(const uint8_t* p, size_t n) {
  const uint64_t* q = reinterpret_cast<const uint64_t*>(p);
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (size_t i = 0; i + 4 <= n / 8; i += 4) {
    s0 += q[i];
    s1 += q[i + 1];
    s2 += q[i + 2];
    s3 += q[i + 3];
  }
  return s0 + s1 + s2 + s3;
}

template <typename Fn>
double TimeThreads(int threads, TimeBase base, Fn&& fn) {
  if (base == TimeBase::kThreadCpu) {  // single thread: the caller's CPU time
    double a = Now(base);
    fn(0);
    return Now(base) - a;
  }
  auto start = Clock::now();
  std::vector<std::thread> ts;
  for (int t = 1; t < threads; ++t) ts.emplace_back([&, t] { fn(t); });
  fn(0);
  for (auto& t : ts) t.join();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

__attribute__((target("avx512f,avx512bf16"))) float Bf16Loop(int64_t iters) {
  __m512 acc[12];
  for (auto& a : acc) a = _mm512_setzero_ps();
  __m512bh x = reinterpret_cast<__m512bh>(_mm512_set1_epi16(0x3f80));
  __m512bh y = reinterpret_cast<__m512bh>(_mm512_set1_epi16(0x3c00));
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < 12; ++j) acc[j] = _mm512_dpbf16_ps(acc[j], x, y);
  }
  __m512 s = acc[0];
  for (int j = 1; j < 12; ++j) s = _mm512_add_ps(s, acc[j]);
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx512f"))) float F32Loop512(int64_t iters) {
  __m512 acc[12];
  for (auto& a : acc) a = _mm512_setzero_ps();
  __m512 x = _mm512_set1_ps(1.0001f), y = _mm512_set1_ps(0.9999f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < 12; ++j) acc[j] = _mm512_fmadd_ps(x, y, acc[j]);
  }
  __m512 s = acc[0];
  for (int j = 1; j < 12; ++j) s = _mm512_add_ps(s, acc[j]);
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) float F32Loop256(int64_t iters) {
  __m256 acc[12];
  for (auto& a : acc) a = _mm256_setzero_ps();
  __m256 x = _mm256_set1_ps(1.0001f), y = _mm256_set1_ps(0.9999f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < 12; ++j) acc[j] = _mm256_fmadd_ps(x, y, acc[j]);
  }
  float out[8];
  __m256 s = acc[0];
  for (int j = 1; j < 12; ++j) s = _mm256_add_ps(s, acc[j]);
  _mm256_storeu_ps(out, s);
  return out[0];
}

volatile float g_sink;
volatile uint64_t g_sink64;

}  // namespace

double Now(TimeBase base) {
  timespec t;
  clock_gettime(base == TimeBase::kWall ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

double MeasureReadBandwidthGBs(int threads, size_t bytes, int repeats, TimeBase base) {
  if (base == TimeBase::kThreadCpu) threads = 1;
  bytes = bytes / (256 * threads) * 256 * threads;
  uint8_t* buf = static_cast<uint8_t*>(std::aligned_alloc(64, bytes));
  std::memset(buf, 1, bytes);
  const bool avx512 = ops::GetCpuFeatures().avx512f;
  const size_t part = bytes / threads;
  double best = 0;
  for (int r = 0; r < repeats; ++r) {
    std::vector<uint64_t> sums(threads);
    double s = TimeThreads(threads, base, [&](int t) {
      sums[t] = avx512 ? SumAvx512(buf + t * part, part) : SumPlain(buf + t * part, part);
    });
    for (uint64_t v : sums) g_sink64 = g_sink64 + v;
    best = std::max(best, bytes / s / 1e9);
  }
  std::free(buf);
  return best;
}

double MeasurePeakBf16Gflops(int threads, TimeBase base) {
  if (base == TimeBase::kThreadCpu) threads = 1;
  const auto& f = ops::GetCpuFeatures();
  if (!f.avx512_bf16) return 0;
  const int64_t iters = 20'000'000;
  double best = 0;
  for (int r = 0; r < 3; ++r) {
    double s = TimeThreads(threads, base, [&](int) { g_sink = Bf16Loop(iters); });
    best = std::max(best, threads * iters * 12.0 * 64 / s / 1e9);
  }
  return best;
}

double MeasurePeakF32Gflops(int threads, TimeBase base) {
  if (base == TimeBase::kThreadCpu) threads = 1;
  const bool avx512 = ops::GetCpuFeatures().avx512f;
  const int64_t iters = 20'000'000;
  double best = 0;
  for (int r = 0; r < 3; ++r) {
    double s = TimeThreads(threads, base,
                           [&](int) { g_sink = avx512 ? F32Loop512(iters) : F32Loop256(iters); });
    best = std::max(best, threads * iters * 12.0 * (avx512 ? 32 : 16) / s / 1e9);
  }
  return best;
}

}  // namespace strata::bench
