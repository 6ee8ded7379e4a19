// AVX-512 attention unit: one token, a run of query heads sharing one kv head. Scores and
// outputs are reduced over keys in increasing order; softmax is exact (max, exp, sum).
// Compiled with -mavx512f -mavx512bw -mavx512vl -mfma.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "ops/cpu/kernels.h"

namespace strata::ops::cpu::avx512 {
namespace {

inline __m512 LoadBf16x16(const bf16* p) {
  __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
}

inline __m512 LoadBf16x16Masked(const bf16* p, __mmask16 mask) {
  __m256i raw = _mm256_maskz_loadu_epi16(mask, p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
}

// exp(x) for x <= 0 (softmax after subtracting the max), relative error ~1e-7.
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

// The 16 lane-sums of v[0..15] in one vector, in a fixed permuted order (a fixed add tree per
// vector: each sum only ever involves its own vector's lanes).
inline __m512 ReduceTree(const __m512* v) {
  __m512 a[8], b[4], c[2];
  for (int i = 0; i < 8; ++i) {
    a[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44),
                         _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xee));
  }
  for (int i = 0; i < 4; ++i) {
    b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x88),
                         _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xdd));
  }
  for (int i = 0; i < 2; ++i) {
    c[i] = _mm512_add_ps(_mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0x44),
                         _mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0xee));
  }
  return _mm512_add_ps(_mm512_shuffle_ps(c[0], c[1], 0x88), _mm512_shuffle_ps(c[0], c[1], 0xdd));
}

// Lane i of the result is the sum of the lanes of v[i].
inline __m512 Reduce16(const __m512* v) {
  static const __m512i order = [] {
    __m512 probe[16];
    for (int i = 0; i < 16; ++i) probe[i] = _mm512_set1_ps(static_cast<float>(i));
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, ReduceTree(probe));
    alignas(64) int idx[16];
    for (int l = 0; l < 16; ++l) idx[static_cast<int>(lanes[l] / 16.0f)] = l;
    return _mm512_load_si512(idx);
  }();
  return _mm512_permutexvar_ps(order, ReduceTree(v));
}

}  // namespace

void AttentionUnit(const AttentionArgs& a, int64_t t, int h0, int nh, float* s) {
  const KvLayerView& kv = a.kv;
  const int group = a.num_q_heads / kv.num_kv_heads;
  const int64_t kvh_offset = static_cast<int64_t>(h0 / group) * kv.head_stride;
  const int n = a.num_keys[t];
  const int32_t* table = a.block_tables[t].data();
  auto offset = [&](int j) {
    return static_cast<int64_t>(table[j / kv.block_size]) * kv.block_stride +
           static_cast<int64_t>(j % kv.block_size) * kv.token_stride + kvh_offset;
  };
  const float* q0 = a.q + t * a.q_token_stride + static_cast<int64_t>(h0) * a.q_head_stride;
  // Scores, 16 keys at a time: one accumulator per key, reduced together.
  const __m512 vscale = _mm512_set1_ps(a.scale);
  const int full = kv.k_dim / 16;
  const __mmask16 tail_mask = static_cast<__mmask16>((1u << (kv.k_dim % 16)) - 1);
  for (int j0 = 0; j0 < n; j0 += 16) {
    const int cnt = std::min(16, n - j0);
    const bf16* keys[16];
    for (int jj = 0; jj < cnt; ++jj) keys[jj] = kv.k + offset(j0 + jj);
    for (int h = 0; h < nh; ++h) {
      const float* q = q0 + h * a.q_head_stride;
      __m512 acc[16];
      for (int jj = 0; jj < 16; ++jj) acc[jj] = _mm512_setzero_ps();
      for (int c = 0; c < full; ++c) {
        __m512 qv = _mm512_loadu_ps(q + 16 * c);
        for (int jj = 0; jj < cnt; ++jj) {
          acc[jj] = _mm512_fmadd_ps(qv, LoadBf16x16(keys[jj] + 16 * c), acc[jj]);
        }
      }
      if (tail_mask != 0) {
        __m512 qv = _mm512_maskz_loadu_ps(tail_mask, q + 16 * full);
        for (int jj = 0; jj < cnt; ++jj) {
          acc[jj] =
              _mm512_fmadd_ps(qv, LoadBf16x16Masked(keys[jj] + 16 * full, tail_mask), acc[jj]);
        }
      }
      __m512 sums = _mm512_mul_ps(Reduce16(acc), vscale);
      _mm512_mask_storeu_ps(s + h * n + j0, static_cast<__mmask16>((1u << cnt) - 1), sums);
    }
  }
  for (int h = 0; h < nh; ++h) {
    float* sh = s + h * n;
    __m512 mx = _mm512_set1_ps(-INFINITY);
    int j = 0;
    for (; j + 16 <= n; j += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(sh + j));
    float max_score = _mm512_reduce_max_ps(mx);
    for (; j < n; ++j) max_score = std::max(max_score, sh[j]);
    __m512 vmax = _mm512_set1_ps(max_score);
    __m512 vsum = _mm512_setzero_ps();
    j = 0;
    for (; j + 16 <= n; j += 16) {
      __m512 e = Exp(_mm512_sub_ps(_mm512_loadu_ps(sh + j), vmax));
      _mm512_storeu_ps(sh + j, e);
      vsum = _mm512_add_ps(vsum, e);
    }
    if (j < n) {
      __mmask16 mask = static_cast<__mmask16>((1u << (n - j)) - 1);
      __m512 e = Exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, sh + j), vmax));
      e = _mm512_maskz_mov_ps(mask, e);
      _mm512_mask_storeu_ps(sh + j, mask, e);
      vsum = _mm512_add_ps(vsum, e);
    }
    const float inv_sum = 1.0f / _mm512_reduce_add_ps(vsum);
    float* o = a.out + t * a.out_token_stride + static_cast<int64_t>(h0 + h) * a.out_head_stride;
    for (int d = 0; d < kv.v_dim; d += 64) {
      const int width = std::min(64, kv.v_dim - d);
      __mmask16 masks[4];
      for (int c = 0; c < 4; ++c) {
        int w = std::clamp(width - 16 * c, 0, 16);
        masks[c] = static_cast<__mmask16>((1u << w) - 1);
      }
      __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                       _mm512_setzero_ps()};
      for (j = 0; j < n; ++j) {
        const bf16* v = kv.v + offset(j) + d;
        __m512 p = _mm512_set1_ps(sh[j]);
#pragma GCC unroll 4
        for (int c = 0; c < 4; ++c) {
          acc[c] = _mm512_fmadd_ps(p, LoadBf16x16Masked(v + 16 * c, masks[c]), acc[c]);
        }
      }
      __m512 scale = _mm512_set1_ps(inv_sum);
#pragma GCC unroll 4
      for (int c = 0; c < 4; ++c) {
        _mm512_mask_storeu_ps(o + d + 16 * c, masks[c], _mm512_mul_ps(acc[c], scale));
      }
    }
  }
}

}  // namespace strata::ops::cpu::avx512
