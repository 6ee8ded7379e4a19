// AVX-512 row kernels: SiLU-and-multiply, RMSNorm and the MoE weighted combine, 16 floats at a
// time. Each row's arithmetic is fixed by its length alone (batch invariance, DESIGN.md §6):
//   SiluMul: out = g / (1 + exp(-g)) * u with the vector Exp of avx512_util.h;
//   RmsNorm: 16 lane partial sums of x*x in order of the row, then the lanes summed (fixed
//     tree), a masked tail; out = x * inv * w;
//   WeightedCombine: out = sum over choices j in top-k order of w_j * row_j, a multiply then an
//     add per element, exactly the reference's order (and the EP combine's), so its bits match.
// Compiled with the AVX-512 flags; called only after run-time detection.
#include <immintrin.h>

#include <cmath>

#include "ops/cpu/avx512_util.h"
#include "ops/cpu/kernels.h"

namespace strata::ops::cpu::avx512 {
namespace {

inline __mmask16 Tail(int64_t left) {
  return static_cast<__mmask16>(left >= 16 ? 0xffff : (1u << left) - 1);
}

void SiluMulRow(const float* gate, const float* up, int64_t n, float* out) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = Tail(n - j);
    const __m512 g = _mm512_maskz_loadu_ps(m, gate + j);
    const __m512 u = _mm512_maskz_loadu_ps(m, up + j);
    const __m512 e = Exp(_mm512_sub_ps(_mm512_setzero_ps(), g));
    const __m512 s = _mm512_div_ps(g, _mm512_add_ps(one, e));
    _mm512_mask_storeu_ps(out + j, m, _mm512_mul_ps(s, u));
  }
}

void RmsNormRow(const float* x, int64_t n, const float* weight, float eps, float* out) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t j = 0; j < n; j += 16) {
    const __m512 v = _mm512_maskz_loadu_ps(Tail(n - j), x + j);
    acc = _mm512_add_ps(acc, _mm512_mul_ps(v, v));
  }
  const float sum = _mm512_reduce_add_ps(acc);
  const __m512 inv = _mm512_set1_ps(1.0f / std::sqrt(sum / static_cast<float>(n) + eps));
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = Tail(n - j);
    const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + j), inv);
    _mm512_mask_storeu_ps(out + j, m, _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, weight + j)));
  }
}

void WeightedCombineToken(const float* rows, int64_t hidden, int top_k, const int32_t* row_index,
                          const float* weights, float* out) {
  for (int64_t d = 0; d < hidden; d += 16) {
    const __mmask16 m = Tail(hidden - d);
    __m512 acc = _mm512_setzero_ps();
    for (int j = 0; j < top_k; ++j) {
      const float* r = rows + static_cast<int64_t>(row_index[j]) * hidden + d;
      acc = _mm512_add_ps(acc,
                          _mm512_mul_ps(_mm512_set1_ps(weights[j]), _mm512_maskz_loadu_ps(m, r)));
    }
    _mm512_mask_storeu_ps(out + d, m, acc);
  }
}

}  // namespace

RowKernelSet RowKernels() {
  RowKernelSet k;
  k.silu_mul = &SiluMulRow;
  k.rms_norm = &RmsNormRow;
  k.weighted_combine = &WeightedCombineToken;
  return k;
}

}  // namespace strata::ops::cpu::avx512
