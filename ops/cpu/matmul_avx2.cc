// AVX2 + FMA matmul tiles (f32 activations; bf16 weights widened to f32). Compiled with
// -mavx2 -mfma.
#include <immintrin.h>

#include <utility>

#include "ops/cpu/kernels.h"

namespace strata::ops::cpu::avx2 {
namespace {

inline float HorizontalSum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v);
  __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  __m128 shuf = _mm_movehdup_ps(lo);
  __m128 sums = _mm_add_ps(lo, shuf);
  shuf = _mm_movehl_ps(shuf, sums);
  sums = _mm_add_ss(sums, shuf);
  return _mm_cvtss_f32(sums);
}

inline __m256 LoadBf16x8(const bf16* p) {
  __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
}

template <int R, int C>
void TileBf16(const float* x, int64_t ldx, const bf16* w, int64_t ldw, int64_t k, float* y,
              int64_t ldy) {
  __m256 acc[R][C];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  }
  int64_t kk = 0;
  for (; kk + 8 <= k; kk += 8) {
    __m256 xv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) xv[r] = _mm256_loadu_ps(x + r * ldx + kk);
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      __m256 wv = LoadBf16x8(w + c * ldw + kk);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r][c] = _mm256_fmadd_ps(xv[r], wv, acc[r][c]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      float tail = 0.0f;
      for (int64_t j = kk; j < k; ++j) tail += x[r * ldx + j] * Bf16ToFloat(w[c * ldw + j]);
      y[r * ldy + c] = HorizontalSum(acc[r][c]) + tail;
    }
  }
}

template <int R, int C>
void TileF32(const float* x, int64_t ldx, const float* w, int64_t ldw, int64_t k, float* y,
             int64_t ldy) {
  __m256 acc[R][C];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  }
  int64_t kk = 0;
  for (; kk + 8 <= k; kk += 8) {
    __m256 xv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) xv[r] = _mm256_loadu_ps(x + r * ldx + kk);
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      __m256 wv = _mm256_loadu_ps(w + c * ldw + kk);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r][c] = _mm256_fmadd_ps(xv[r], wv, acc[r][c]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      float tail = 0.0f;
      for (int64_t j = kk; j < k; ++j) tail += x[r * ldx + j] * w[c * ldw + j];
      y[r * ldy + c] = HorizontalSum(acc[r][c]) + tail;
    }
  }
}

constexpr int kMaxRows = 2;
constexpr int kMaxCols = 4;

using Bf16Fn = void (*)(const float*, int64_t, const bf16*, int64_t, int64_t, float*, int64_t);
using F32Fn = void (*)(const float*, int64_t, const float*, int64_t, int64_t, float*, int64_t);

template <int R, int... Cs>
void FillRow(Bf16Fn (&b)[kMaxRows][kMaxCols], F32Fn (&f)[kMaxRows][kMaxCols],
             std::integer_sequence<int, Cs...>) {
  ((b[R - 1][Cs] = &TileBf16<R, Cs + 1>), ...);
  ((f[R - 1][Cs] = &TileF32<R, Cs + 1>), ...);
}

struct Tables {
  Bf16Fn bf16[kMaxRows][kMaxCols];
  F32Fn f32[kMaxRows][kMaxCols];
  Tables() {
    auto cols = std::make_integer_sequence<int, kMaxCols>{};
    FillRow<1>(bf16, f32, cols);
    FillRow<2>(bf16, f32, cols);
  }
};

const Tables& GetTables() {
  static const Tables tables;
  return tables;
}

void TileBf16Dispatch(const void* x, int64_t ldx, int rows, const bf16* w, int64_t ldw, int cols,
                      int64_t k, float* y, int64_t ldy) {
  GetTables().bf16[rows - 1][cols - 1](static_cast<const float*>(x), ldx, w, ldw, k, y, ldy);
}

void TileF32Dispatch(const float* x, int64_t ldx, int rows, const float* w, int64_t ldw, int cols,
                     int64_t k, float* y, int64_t ldy) {
  GetTables().f32[rows - 1][cols - 1](x, ldx, w, ldw, k, y, ldy);
}

}  // namespace

MatmulKernelSet MatmulKernels() {
  MatmulKernelSet s;
  s.packs_bf16 = false;
  s.max_rows = kMaxRows;
  s.max_cols = kMaxCols;
  s.tile_bf16 = &TileBf16Dispatch;
  s.tile_f32 = &TileF32Dispatch;
  return s;
}

}  // namespace strata::ops::cpu::avx2
