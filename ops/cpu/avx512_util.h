// Internal to the AVX-512 translation units (compiled with AVX-512 flags only).
#pragma once

#include <immintrin.h>

namespace strata::ops::cpu::avx512 {

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
