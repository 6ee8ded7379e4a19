// AVX-512 GEMM over panel-packed bf16 weights (WeightLayout::kPanels64): a register tile of up
// to kPanelTileRows activation rows x one 64-row weight panel (4 zmm accumulators per row).
// Each step broadcasts one bf16 pair of an activation row and multiplies it with the panel's
// next 64 x 2 block (vdpbf16ps), so the weights stream linearly and no horizontal sum is needed.
// Output (r, c) is the sum over column pairs 0, 1, 2, ... in that order whatever the tile shape,
// the number of rows or the thread count (batch invariance, DESIGN.md §6).
// Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512bf16.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "ops/cpu/avx512_util.h"
#include "ops/cpu/kernels.h"

namespace strata::ops::cpu::avx512 {
namespace {

template <int R>
void PanelTile(const bf16* x, int64_t ldx, const bf16* panel, int64_t kp, float* y, int64_t ldy,
               int cols) {
  __m512 acc[R][4];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) acc[r][v] = _mm512_setzero_ps();
  }
  const __m512i* w = reinterpret_cast<const __m512i*>(panel);
  for (int64_t i = 0; i < kp; ++i) {
    __m512bh wv[4];
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v)
      wv[v] = reinterpret_cast<__m512bh>(_mm512_loadu_si512(w + 4 * i + v));
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      int32_t pair;
      std::memcpy(&pair, x + r * ldx + 2 * i, sizeof(pair));
      __m512bh xb = reinterpret_cast<__m512bh>(_mm512_set1_epi32(pair));
#pragma GCC unroll 4
      for (int v = 0; v < 4; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], xb, wv[v]);
    }
  }
  if (cols >= 64) {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
      for (int v = 0; v < 4; ++v) _mm512_storeu_ps(y + r * ldy + 16 * v, acc[r][v]);
    }
  } else {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
      for (int v = 0; v < 4; ++v) {
        int n = std::clamp(cols - 16 * v, 0, 16);
        _mm512_mask_storeu_ps(y + r * ldy + 16 * v, static_cast<__mmask16>((1u << n) - 1),
                              acc[r][v]);
      }
    }
  }
}

using PanelFn = void (*)(const bf16*, int64_t, const bf16*, int64_t, float*, int64_t, int);
constexpr PanelFn kPanelFns[kPanelTileRows] = {&PanelTile<1>, &PanelTile<2>, &PanelTile<3>,
                                               &PanelTile<4>, &PanelTile<5>, &PanelTile<6>};

}  // namespace

void PackPanelsAvx512(const WeightView& w, bf16* dst, int64_t panel_begin, int64_t panel_end) {
  const int64_t kp = (w.cols + 1) / 2, ld = w.stride();
  if (w.cols % 2 != 0 || ld % 2 != 0) return PackPanels(w, dst, panel_begin, panel_end);
  const bf16* src = static_cast<const bf16*>(w.data);
  for (int64_t p = panel_begin; p < panel_end; ++p) {
    const int64_t r0 = p * kPanelRows;
    const int64_t n = std::min(kPanelRows, w.rows - r0);
    if (n < kPanelRows || kp % 16 != 0) {
      PackPanels(w, dst, p, p + 1);
      continue;
    }
    // 16 rows x 16 column pairs at a time, transposed in registers: each output line is written
    // whole (streamed past the caches when aligned: the packed copy is read much later).
    uint32_t* o = reinterpret_cast<uint32_t*>(dst + p * kp * 2 * kPanelRows);
    const bool aligned = (reinterpret_cast<uintptr_t>(o) % 64) == 0;
    for (int64_t i0 = 0; i0 < kp; i0 += 16) {  // output written in order, 4 KiB per i0
      for (int64_t j0 = 0; j0 < kPanelRows; j0 += 16) {
        __m512i rows[16], cols[16];
        for (int j = 0; j < 16; ++j) {
          rows[j] = _mm512_loadu_si512(src + (r0 + j0 + j) * ld + 2 * i0);
        }
        Transpose16x16(rows, cols);
        for (int i = 0; i < 16; ++i) {
          uint32_t* line = o + (i0 + i) * kPanelRows + j0;
          if (aligned) {
            _mm512_stream_si512(reinterpret_cast<__m512i*>(line), cols[i]);
          } else {
            _mm512_storeu_si512(line, cols[i]);
          }
        }
      }
    }
  }
  _mm_sfence();
}

void PanelGemmBf16(const bf16* x, int64_t ldx, int rows, const bf16* panel, int64_t kp, float* y,
                   int64_t ldy, int cols) {
  kPanelFns[rows - 1](x, ldx, panel, kp, y, ldy, cols);
}

}  // namespace strata::ops::cpu::avx512
