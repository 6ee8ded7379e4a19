// Portable attention unit (same algorithm as the AVX-512 one, plain C++).
#include <algorithm>
#include <cmath>

#include "ops/cpu/kernels.h"

namespace strata::ops::cpu {

void AttentionUnitPortable(const AttentionArgs& a, int64_t t, int h0, int nh, float* s) {
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
  for (int j = 0; j < n; ++j) {
    const bf16* k = kv.k + offset(j);
    for (int h = 0; h < nh; ++h) {
      const float* q = q0 + h * a.q_head_stride;
      float dot = 0.0f;
      for (int d = 0; d < kv.k_dim; ++d) dot += q[d] * Bf16ToFloat(k[d]);
      s[h * n + j] = dot * a.scale;
    }
  }
  for (int h = 0; h < nh; ++h) {
    float* sh = s + h * n;
    float max_score = *std::max_element(sh, sh + n);
    float sum = 0.0f;
    for (int j = 0; j < n; ++j) {
      sh[j] = std::exp(sh[j] - max_score);
      sum += sh[j];
    }
    const float inv_sum = 1.0f / sum;
    float* o = a.out + t * a.out_token_stride + static_cast<int64_t>(h0 + h) * a.out_head_stride;
    std::fill(o, o + kv.v_dim, 0.0f);
    for (int j = 0; j < n; ++j) {
      const bf16* v = kv.v + offset(j);
      for (int d = 0; d < kv.v_dim; ++d) o[d] += sh[j] * Bf16ToFloat(v[d]);
    }
    for (int d = 0; d < kv.v_dim; ++d) o[d] *= inv_sum;
  }
}

}  // namespace strata::ops::cpu
