// AVX-512 attention: a block of query rows (consecutive tokens of one sequence x a run of query
// heads sharing one kv head) against the keys, with bf16 dot products (vdpbf16ps) on f32
// accumulators. Queries and probabilities are split into two bf16 parts (hi + lo, ~16
// significant bits), so the result keeps close to f32 accuracy while the bf16 keys and values
// are multiplied as they are stored.
//
// Per (token, head) row the arithmetic is fixed whatever block it is computed in:
//   score j = (sum over d pairs 0, 1, ... of q_hi * k, then of q_lo * k, one chain) * scale;
//   m = max, e_j = exp(score_j - m), sum = 16-lane partial sums over keys in order, then lanes;
//   out[d] = (sum over key pairs (0,1), (2,3), ... of p_hi * v then p_lo * v) / sum,
// for keys j < num_keys of that token only. So a token gives the same bits alone (decode), in
// a prefill block, or beside other sequences (batch invariance, DESIGN.md §6).
// Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512bf16.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "ops/cpu/avx512_util.h"
#include "ops/cpu/kernels.h"

namespace strata::ops::cpu::avx512 {
namespace {

// Two bf16 pairs of a float pair each: hi = bf16(x), lo = bf16(x - hi).
inline void SplitBf16(const float* x, int n, int32_t* hi, int32_t* lo) {
  for (int i = 0; i < n; i += 32) {
    const int left = n - i;
    const __mmask16 m0 = static_cast<__mmask16>(left >= 16 ? 0xffff : (1u << left) - 1);
    const __mmask16 m1 =
        static_cast<__mmask16>(left >= 32 ? 0xffff : (left <= 16 ? 0 : (1u << (left - 16)) - 1));
    __m512 a = _mm512_maskz_loadu_ps(m0, x + i), b = _mm512_maskz_loadu_ps(m1, x + i + 16);
    __m512bh h = _mm512_cvtne2ps_pbh(b, a);  // elements i .. i + 31, pairs in order
    __m512 ha = _mm512_castsi512_ps(_mm512_slli_epi32(
        _mm512_cvtepu16_epi32(_mm512_castsi512_si256(reinterpret_cast<__m512i>(h))), 16));
    __m512 hb = _mm512_castsi512_ps(_mm512_slli_epi32(
        _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(reinterpret_cast<__m512i>(h), 1)), 16));
    __m512bh l = _mm512_cvtne2ps_pbh(_mm512_sub_ps(b, hb), _mm512_sub_ps(a, ha));
    _mm512_storeu_si512(hi + i / 2, reinterpret_cast<__m512i>(h));
    _mm512_storeu_si512(lo + i / 2, reinterpret_cast<__m512i>(l));
  }
}

// Loads 32 bf16 of `p` (the first `n` of them, zeros after; all zeros for a null p).
inline __m512i Load32(const bf16* p, int n) {
  if (p == nullptr || n <= 0) return _mm512_setzero_si512();
  if (n >= 32) return _mm512_loadu_si512(p);
  return _mm512_maskz_loadu_epi16(static_cast<__mmask32>((1ull << n) - 1), p);
}

inline __m512bh Bh(__m512i v) { return reinterpret_cast<__m512bh>(v); }
inline __m512i Bcast(int32_t v) { return _mm512_set1_epi32(v); }

struct Scratch {
  std::vector<int32_t> q_hi, q_lo;  // [rows][pairs] query pairs
  std::vector<__m512i> kt;          // one key tile, transposed: [pairs][16 keys]
  std::vector<float> s;             // [rows][keys] scores, then e
  std::vector<int32_t> p_hi, p_lo;  // [rows][key pairs]
  std::vector<int64_t> key;         // [keys] offset of each key's row
};

constexpr int kMaxRows = 16;

}  // namespace

void AttentionBlock(const AttentionArgs& a, int64_t t0, int nt, int h0, int nh) {
  thread_local Scratch sc;
  const KvLayerView& kv = a.kv;
  const int group = a.num_q_heads / kv.num_kv_heads;
  const int64_t kvh_offset = static_cast<int64_t>(h0 / group) * kv.head_stride;
  const int32_t* table = a.block_tables[t0].data();
  const int rows = nt * nh;
  const int kd = kv.k_dim, vd = kv.v_dim;
  const int ktiles = (kd + 31) / 32, qpairs = ktiles * 16;
  int n[kMaxRows], n_max = 0;
  for (int r = 0; r < rows; ++r) {
    n[r] = a.num_keys[t0 + r / nh];
    n_max = std::max(n_max, n[r]);
  }
  // Element offset of key j's row for this kv head, walked block by block (no division per key).
  sc.key.resize(n_max);
  for (int j = 0, b = 0, o = 0; j < n_max; ++j) {
    sc.key[j] = static_cast<int64_t>(table[b]) * kv.block_stride +
                static_cast<int64_t>(o) * kv.token_stride + kvh_offset;
    if (++o == kv.block_size) o = 0, ++b;
  }
  const int64_t* key_offset = sc.key.data();
  auto key = [key_offset](int j) { return key_offset[j]; };
  const int n_pad = (n_max + 15) / 16 * 16, kpairs_max = (n_max + 1) / 2;
  sc.q_hi.assign(static_cast<size_t>(rows) * qpairs, 0);
  sc.q_lo.assign(static_cast<size_t>(rows) * qpairs, 0);
  sc.kt.resize(qpairs);
  sc.s.resize(static_cast<size_t>(rows) * n_pad);
  const int ppairs = (n_pad + 31) / 32 * 16;  // SplitBf16 writes 16 pairs at a time
  sc.p_hi.resize(static_cast<size_t>(rows) * ppairs);
  sc.p_lo.resize(static_cast<size_t>(rows) * ppairs);
  auto q_row = [&](int r) {
    return a.q + (t0 + r / nh) * a.q_token_stride +
           static_cast<int64_t>(h0 + r % nh) * a.q_head_stride;
  };
  for (int r = 0; r < rows; ++r) {
    SplitBf16(q_row(r), kd, sc.q_hi.data() + r * qpairs, sc.q_lo.data() + r * qpairs);
  }

  // Scores, 16 keys at a time: the key tile is transposed once (pairs of d x 16 keys) and
  // shared by every row of the block.
  const __m512 vscale = _mm512_set1_ps(a.scale);
  for (int j0 = 0; j0 < n_max; j0 += 16) {
    const int cnt = std::min(16, n_max - j0);
    for (int kt = 0; kt < ktiles; ++kt) {
      __m512i k16[16];
      for (int jj = 0; jj < 16; ++jj) {
        k16[jj] =
            jj < cnt ? Load32(kv.k + key(j0 + jj) + 32 * kt, kd - 32 * kt) : _mm512_setzero_si512();
      }
      Transpose16x16(k16, sc.kt.data() + 16 * kt);
    }
    int r = 0;
    for (; r + 4 <= rows; r += 4) {
      __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                       _mm512_setzero_ps()};
      for (int i = 0; i < qpairs; ++i) {
        const __m512bh k = Bh(sc.kt[i]);
#pragma GCC unroll 4
        for (int g = 0; g < 4; ++g) {
          acc[g] = _mm512_dpbf16_ps(acc[g], Bh(Bcast(sc.q_hi[(r + g) * qpairs + i])), k);
        }
      }
      for (int i = 0; i < qpairs; ++i) {
        const __m512bh k = Bh(sc.kt[i]);
#pragma GCC unroll 4
        for (int g = 0; g < 4; ++g) {
          acc[g] = _mm512_dpbf16_ps(acc[g], Bh(Bcast(sc.q_lo[(r + g) * qpairs + i])), k);
        }
      }
      for (int g = 0; g < 4; ++g) {
        _mm512_storeu_ps(sc.s.data() + (r + g) * n_pad + j0, _mm512_mul_ps(acc[g], vscale));
      }
    }
    for (; r < rows; ++r) {
      __m512 acc = _mm512_setzero_ps();
      for (int i = 0; i < qpairs; ++i) {
        acc = _mm512_dpbf16_ps(acc, Bh(Bcast(sc.q_hi[r * qpairs + i])), Bh(sc.kt[i]));
      }
      for (int i = 0; i < qpairs; ++i) {
        acc = _mm512_dpbf16_ps(acc, Bh(Bcast(sc.q_lo[r * qpairs + i])), Bh(sc.kt[i]));
      }
      _mm512_storeu_ps(sc.s.data() + r * n_pad + j0, _mm512_mul_ps(acc, vscale));
    }
  }

  // Softmax numerators per row, split into bf16 pairs (zero past the row's keys).
  float inv_sum[kMaxRows];
  for (int r = 0; r < rows; ++r) {
    float* sr = sc.s.data() + r * n_pad;
    const int nr = n[r];
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int j = 0; j < nr; j += 16) {
      __mmask16 m = static_cast<__mmask16>(nr - j >= 16 ? 0xffff : (1u << (nr - j)) - 1);
      mx = _mm512_mask_max_ps(mx, m, mx, _mm512_loadu_ps(sr + j));
    }
    const __m512 vmax = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    __m512 vsum = _mm512_setzero_ps();
    for (int j = 0; j < nr; j += 16) {
      __mmask16 m = static_cast<__mmask16>(nr - j >= 16 ? 0xffff : (1u << (nr - j)) - 1);
      __m512 e = _mm512_maskz_mov_ps(m, Exp(_mm512_sub_ps(_mm512_loadu_ps(sr + j), vmax)));
      _mm512_storeu_ps(sr + j, e);
      vsum = _mm512_add_ps(vsum, e);
    }
    inv_sum[r] = 1.0f / _mm512_reduce_add_ps(vsum);
    SplitBf16(sr, (nr + 15) / 16 * 16, sc.p_hi.data() + r * ppairs, sc.p_lo.data() + r * ppairs);
  }

  // Outputs, 32 value dims at a time: each key pair's two rows are interleaved once (pairs of
  // keys per d, d permuted inside 128-bit lanes) and shared by a group of up to 8 rows.
  static const __m512i kFirst =
      _mm512_set_epi32(23, 22, 21, 20, 7, 6, 5, 4, 19, 18, 17, 16, 3, 2, 1, 0);
  static const __m512i kSecond =
      _mm512_set_epi32(31, 30, 29, 28, 15, 14, 13, 12, 27, 26, 25, 24, 11, 10, 9, 8);
  for (int d0 = 0; d0 < vd; d0 += 32) {
    for (int r0 = 0; r0 < rows; r0 += 8) {
      const int gr = std::min(8, rows - r0);
      // Pairs [0, common) are whole pairs of keys for every row of the group; past that each
      // row stops at its own last pair, whose second key is zero (not the next key's value)
      // when its key count is odd, as it is for that token alone.
      int np[8], common = kpairs_max, np_max = 0;
      for (int g = 0; g < gr; ++g) {
        np[g] = (n[r0 + g] + 1) / 2;
        common = std::min(common, n[r0 + g] / 2);
        np_max = std::max(np_max, np[g]);
      }
      __m512 lo_acc[8], hi_acc[8];
      for (int g = 0; g < 8; ++g) lo_acc[g] = hi_acc[g] = _mm512_setzero_ps();
      const int width = vd - d0;
      auto step = [&](int jp, int g_end, bool check) {
        const int j = 2 * jp;
        __m512i v0 = Load32(kv.v + key(j) + d0, width);
        __m512i v1 = j + 1 < n_max ? Load32(kv.v + key(j + 1) + d0, width) : _mm512_setzero_si512();
        __m512bh lo = Bh(_mm512_unpacklo_epi16(v0, v1));
        __m512bh hi = Bh(_mm512_unpackhi_epi16(v0, v1));
        for (int g = 0; g < g_end; ++g) {
          if (check && jp >= np[g]) continue;
          if (check && j + 1 == n[r0 + g]) {  // odd tail: this row's pair is (key j, zero)
            const __m512i z = _mm512_setzero_si512();
            lo = Bh(_mm512_unpacklo_epi16(v0, z));
            hi = Bh(_mm512_unpackhi_epi16(v0, z));
          } else if (check) {
            lo = Bh(_mm512_unpacklo_epi16(v0, v1));
            hi = Bh(_mm512_unpackhi_epi16(v0, v1));
          }
          const int32_t* ph = sc.p_hi.data() + (r0 + g) * ppairs;
          const int32_t* pl = sc.p_lo.data() + (r0 + g) * ppairs;
          lo_acc[g] = _mm512_dpbf16_ps(lo_acc[g], Bh(Bcast(ph[jp])), lo);
          hi_acc[g] = _mm512_dpbf16_ps(hi_acc[g], Bh(Bcast(ph[jp])), hi);
          lo_acc[g] = _mm512_dpbf16_ps(lo_acc[g], Bh(Bcast(pl[jp])), lo);
          hi_acc[g] = _mm512_dpbf16_ps(hi_acc[g], Bh(Bcast(pl[jp])), hi);
        }
      };
      if (gr == 8) {
        for (int jp = 0; jp < common; ++jp) step(jp, 8, false);
      } else {
        for (int jp = 0; jp < common; ++jp) step(jp, gr, false);
      }
      for (int jp = common; jp < np_max; ++jp) step(jp, gr, true);
      for (int g = 0; g < gr; ++g) {
        const int r = r0 + g;
        float* o = a.out + (t0 + r / nh) * a.out_token_stride +
                   static_cast<int64_t>(h0 + r % nh) * a.out_head_stride + d0;
        const __m512 scale = _mm512_set1_ps(inv_sum[r]);
        __m512 first = _mm512_mul_ps(_mm512_permutex2var_ps(lo_acc[g], kFirst, hi_acc[g]), scale);
        __m512 second = _mm512_mul_ps(_mm512_permutex2var_ps(lo_acc[g], kSecond, hi_acc[g]), scale);
        const int w0 = std::min(16, width), w1 = std::clamp(width - 16, 0, 16);
        _mm512_mask_storeu_ps(o, static_cast<__mmask16>((1u << w0) - 1), first);
        _mm512_mask_storeu_ps(o + 16, static_cast<__mmask16>((1u << w1) - 1), second);
      }
    }
  }
}

}  // namespace strata::ops::cpu::avx512
