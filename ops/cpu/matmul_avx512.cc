// AVX-512 matmul tiles: bf16 weights x activations rounded to bf16 with vdpbf16ps (f32
// accumulation), and f32 x f32 with FMA. Compiled with -mavx512f -mavx512bw -mavx512vl
// -mavx512bf16 -mfma.
#include <immintrin.h>

#include <utility>

#include "ops/cpu/kernels.h"

namespace strata::ops::cpu::avx512 {
namespace {

void PackBf16(const float* x, int64_t m, int64_t k, int64_t ldx, bf16* out, int64_t ldo) {
  for (int64_t i = 0; i < m; ++i) {
    const float* src = x + i * ldx;
    bf16* dst = out + i * ldo;
    int64_t j = 0;
    for (; j + 16 <= k; j += 16) {
      __m256bh v = _mm512_cvtneps_pbh(_mm512_loadu_ps(src + j));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + j), reinterpret_cast<__m256i&>(v));
    }
    if (j < k) {
      __mmask16 mask = static_cast<__mmask16>((1u << (k - j)) - 1);
      __m256bh v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, src + j));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + j), reinterpret_cast<__m256i&>(v));
      j += 16;
    }
    for (; j < ldo; ++j) dst[j] = bf16{0};
  }
}

template <int R, int C>
void TileBf16(const bf16* x, int64_t ldx, const bf16* w, int64_t ldw, int64_t k, float* y,
              int64_t ldy) {
  __m512 acc[R][C];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
  }
  int64_t kk = 0;
  for (; kk + 32 <= k; kk += 32) {
    __m512bh xv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      xv[r] = reinterpret_cast<__m512bh>(_mm512_loadu_si512(x + r * ldx + kk));
    }
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      __m512bh wv = reinterpret_cast<__m512bh>(_mm512_loadu_si512(w + c * ldw + kk));
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], xv[r], wv);
    }
    if constexpr (R <= 2) {  // memory-bound (decode): fetch the next tile's rows early
#pragma GCC unroll 8
      for (int c = 0; c < C; ++c) {
        _mm_prefetch(reinterpret_cast<const char*>(w + (c + C) * ldw + kk), _MM_HINT_T0);
      }
    }
  }
  if (kk < k) {
    __mmask32 mask = _cvtu32_mask32(static_cast<uint32_t>((1ull << (k - kk)) - 1));
    __m512bh xv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      xv[r] = reinterpret_cast<__m512bh>(_mm512_maskz_loadu_epi16(mask, x + r * ldx + kk));
    }
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      __m512bh wv = reinterpret_cast<__m512bh>(_mm512_maskz_loadu_epi16(mask, w + c * ldw + kk));
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], xv[r], wv);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) y[r * ldy + c] = _mm512_reduce_add_ps(acc[r][c]);
  }
}

template <int R, int C>
void TileF32(const float* x, int64_t ldx, const float* w, int64_t ldw, int64_t k, float* y,
             int64_t ldy) {
  __m512 acc[R][C];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
  }
  int64_t kk = 0;
  for (; kk + 16 <= k; kk += 16) {
    __m512 xv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) xv[r] = _mm512_loadu_ps(x + r * ldx + kk);
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      __m512 wv = _mm512_loadu_ps(w + c * ldw + kk);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r][c] = _mm512_fmadd_ps(xv[r], wv, acc[r][c]);
    }
  }
  if (kk < k) {
    __mmask16 mask = static_cast<__mmask16>((1u << (k - kk)) - 1);
    __m512 xv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) xv[r] = _mm512_maskz_loadu_ps(mask, x + r * ldx + kk);
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      __m512 wv = _mm512_maskz_loadu_ps(mask, w + c * ldw + kk);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r][c] = _mm512_fmadd_ps(xv[r], wv, acc[r][c]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) y[r * ldy + c] = _mm512_reduce_add_ps(acc[r][c]);
  }
}

constexpr int kMaxRows = 4;
constexpr int kMaxCols = 6;

using Bf16Fn = void (*)(const bf16*, int64_t, const bf16*, int64_t, int64_t, float*, int64_t);
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
    FillRow<3>(bf16, f32, cols);
    FillRow<4>(bf16, f32, cols);
  }
};

const Tables& GetTables() {
  static const Tables tables;
  return tables;
}

void TileBf16Dispatch(const void* x, int64_t ldx, int rows, const bf16* w, int64_t ldw, int cols,
                      int64_t k, float* y, int64_t ldy) {
  GetTables().bf16[rows - 1][cols - 1](static_cast<const bf16*>(x), ldx, w, ldw, k, y, ldy);
}

void TileF32Dispatch(const float* x, int64_t ldx, int rows, const float* w, int64_t ldw, int cols,
                     int64_t k, float* y, int64_t ldy) {
  GetTables().f32[rows - 1][cols - 1](x, ldx, w, ldw, k, y, ldy);
}

}  // namespace

MatmulKernelSet MatmulKernels() {
  MatmulKernelSet s;
  s.packs_bf16 = true;
  s.max_rows = kMaxRows;
  s.max_cols = kMaxCols;
  s.pack_bf16 = &PackBf16;
  s.panel_bf16 = &PanelGemmBf16;
  s.pack_panels = &PackPanelsAvx512;
  s.tile_bf16 = &TileBf16Dispatch;
  s.tile_f32 = &TileF32Dispatch;
  return s;
}

}  // namespace strata::ops::cpu::avx512
