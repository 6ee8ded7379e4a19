// Internal to the AVX-512 translation units (compiled with AVX-512 flags only).
#pragma once

#include <immintrin.h>

namespace strata::ops::cpu::avx512 {

// exp(x), relative error ~1e-7; 0 below -87, +inf above ~88.7 (as expf overflows).
inline __m512 Exp(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720.0f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// out[i] = column i of the 16 x 16 dword matrix r (rows r[0..15]).
inline void Transpose16x16(const __m512i* r, __m512i* out) {
  __m512i t[16], u[16];
  for (int k = 0; k < 8; ++k) {
    t[2 * k] = _mm512_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm512_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
  }
  // u[4g + c]: rows 4g..4g+3 of columns c, c + 4, c + 8, c + 12 (one per 128-bit lane).
  for (int g = 0; g < 4; ++g) {
    u[4 * g + 0] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
    u[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
    u[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
    u[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
  }
  for (int c = 0; c < 4; ++c) {
    __m512i v0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x88);       // c, c+8 of rows 0-7
    __m512i v1 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xdd);       // c+4, c+12 of rows 0-7
    __m512i v2 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x88);  // c, c+8 of rows 8-15
    __m512i v3 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xdd);  // c+4, c+12 of rows 8-15
    out[c] = _mm512_shuffle_i32x4(v0, v2, 0x88);
    out[c + 8] = _mm512_shuffle_i32x4(v0, v2, 0xdd);
    out[c + 4] = _mm512_shuffle_i32x4(v1, v3, 0x88);
    out[c + 12] = _mm512_shuffle_i32x4(v1, v3, 0xdd);
  }
}

}  // namespace strata::ops::cpu::avx512
