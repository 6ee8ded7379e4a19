#include "ops/cpu/reference.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "ops/cpu/kernels.h"

namespace strata::ops::reference {

float LoadWeight(const WeightView& w, int64_t row, int64_t col) {
  int64_t i = w.Index(row, col);
  switch (w.dtype) {
    case DType::kF32:
      return static_cast<const float*>(w.data)[i];
    case DType::kBF16:
      return Bf16ToFloat(static_cast<const bf16*>(w.data)[i]);
    case DType::kF16:
      return F16ToFloat(static_cast<const f16*>(w.data)[i]);
    case DType::kI32:
      return static_cast<float>(static_cast<const int32_t*>(w.data)[i]);
  }
  return 0.0f;
}

void Embedding(const WeightView& table, const int32_t* ids, int64_t n, float* out, int64_t ldo) {
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < table.cols; ++j) out[i * ldo + j] = LoadWeight(table, ids[i], j);
  }
}

void Matmul(const float* x, int64_t m, int64_t ldx, std::span<const MatmulOutput> outputs) {
  for (const MatmulOutput& o : outputs) {
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < o.w.rows; ++j) {
        double acc = 0.0;
        for (int64_t k = 0; k < o.w.cols; ++k) {
          acc += static_cast<double>(x[i * ldx + k]) * LoadWeight(o.w, j, k);
        }
        o.y[i * o.ldy + j] = static_cast<float>(acc);
      }
    }
  }
}

void BatchedMatmul(std::span<const MatmulProblem> problems) {
  for (const MatmulProblem& p : problems) {
    MatmulOutput o{p.w, p.y, p.ldy};
    Matmul(p.x, p.m, p.ldx, std::span<const MatmulOutput>(&o, 1));
  }
}

void RmsNormRow(const float* x, int64_t n, const float* weight, float eps, float* out) {
  float sum = 0.0f;
  for (int64_t j = 0; j < n; ++j) sum += x[j] * x[j];
  float inv = 1.0f / std::sqrt(sum / static_cast<float>(n) + eps);
  for (int64_t j = 0; j < n; ++j) out[j] = x[j] * inv * weight[j];
}

void RmsNorm(const float* x, int64_t m, int64_t n, int64_t ldx, const float* weight, float eps,
             float* out, int64_t ldo) {
  for (int64_t i = 0; i < m; ++i) RmsNormRow(x + i * ldx, n, weight, eps, out + i * ldo);
}

void RopeHead(float* x, int32_t position, const RopeTable& table) {
  int half = table.rotary_dim / 2;
  for (int i = 0; i < half; ++i) {
    float angle = static_cast<float>(position) * table.inv_freq[i];
    float c = std::cos(angle) * table.attention_factor;
    float s = std::sin(angle) * table.attention_factor;
    int a = table.interleaved ? 2 * i : i;
    int b = table.interleaved ? 2 * i + 1 : i + half;
    float xa = x[a];
    float xb = x[b];
    x[a] = xa * c - xb * s;
    x[b] = xb * c + xa * s;
  }
}

void Rope(float* x, int64_t num_tokens, int64_t token_stride, int num_heads, int64_t head_stride,
          const int32_t* positions, const RopeTable& table) {
  for (int64_t t = 0; t < num_tokens; ++t) {
    for (int h = 0; h < num_heads; ++h)
      RopeHead(x + t * token_stride + h * head_stride, positions[t], table);
  }
}

void SiluMul(const float* gate, int64_t ldg, const float* up, int64_t ldu, int64_t m, int64_t n,
             float* out, int64_t ldo) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      float g = gate[i * ldg + j];
      out[i * ldo + j] = g / (1.0f + std::exp(-g)) * up[i * ldu + j];
    }
  }
}

void Add(float* y, int64_t ldy, const float* x, int64_t ldx, int64_t m, int64_t n) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) y[i * ldy + j] += x[i * ldx + j];
  }
}

void ScatterToCache(const float* src, int64_t num_tokens, int64_t lds, int64_t width, bf16* dst,
                    const int64_t* dst_offsets) {
  for (int64_t t = 0; t < num_tokens; ++t) {
    for (int64_t j = 0; j < width; ++j) dst[dst_offsets[t] + j] = FloatToBf16(src[t * lds + j]);
  }
}

void Attention(const AttentionArgs& a) {
  const KvLayerView& kv = a.kv;
  int group = a.num_q_heads / kv.num_kv_heads;
  std::vector<float> scores;
  for (int64_t t = 0; t < a.num_tokens; ++t) {
    int n = a.num_keys[t];
    scores.assign(n, 0.0f);
    for (int h = 0; h < a.num_q_heads; ++h) {
      const float* q = a.q + t * a.q_token_stride + h * a.q_head_stride;
      int kvh = h / group;
      auto key_offset = [&](int j) {
        int64_t block = a.block_tables[t][j / kv.block_size];
        return block * kv.block_stride + (j % kv.block_size) * kv.token_stride +
               kvh * kv.head_stride;
      };
      float max_score = -INFINITY;
      for (int j = 0; j < n; ++j) {
        const bf16* k = kv.k + key_offset(j);
        double dot = 0.0;
        for (int d = 0; d < kv.k_dim; ++d) dot += static_cast<double>(q[d]) * Bf16ToFloat(k[d]);
        scores[j] = static_cast<float>(dot) * a.scale;
        max_score = std::max(max_score, scores[j]);
      }
      double sum = 0.0;
      for (int j = 0; j < n; ++j) {
        scores[j] = std::exp(scores[j] - max_score);
        sum += scores[j];
      }
      float* o = a.out + t * a.out_token_stride + h * a.out_head_stride;
      for (int d = 0; d < kv.v_dim; ++d) {
        double acc = 0.0;
        for (int j = 0; j < n; ++j) acc += scores[j] * Bf16ToFloat(kv.v[key_offset(j) + d]);
        o[d] = static_cast<float>(acc / sum);
      }
    }
  }
}

namespace {

// Indices of the k largest values, best first; ties go to the lower index.
std::vector<int> TopK(const std::vector<float>& v, int k) {
  std::vector<int> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return v[a] > v[b]; });
  idx.resize(k);
  return idx;
}

}  // namespace

void MoeRouteToken(const float* logits, const RouterSpec& spec, int32_t* expert_ids,
                   float* weights) {
  int e = spec.num_experts;
  std::vector<float> scores(e);
  if (spec.scoring == RouterScoring::kSoftmax) {
    float mx = *std::max_element(logits, logits + e);
    float sum = 0.0f;
    for (int i = 0; i < e; ++i) {
      scores[i] = std::exp(logits[i] - mx);
      sum += scores[i];
    }
    for (int i = 0; i < e; ++i) scores[i] /= sum;
    std::vector<int> top = TopK(scores, spec.top_k);
    float total = 0.0f;
    for (int j = 0; j < spec.top_k; ++j) total += scores[top[j]];
    for (int j = 0; j < spec.top_k; ++j) {
      expert_ids[j] = top[j];
      weights[j] = spec.norm_topk_prob ? scores[top[j]] / total : scores[top[j]];
    }
    return;
  }
  for (int i = 0; i < e; ++i) scores[i] = 1.0f / (1.0f + std::exp(-logits[i]));
  std::vector<float> choice(e);
  for (int i = 0; i < e; ++i) {
    choice[i] = scores[i] + (spec.correction_bias ? spec.correction_bias[i] : 0.0f);
  }
  int per_group = e / spec.num_groups;
  std::vector<float> group_scores(spec.num_groups);
  for (int g = 0; g < spec.num_groups; ++g) {
    std::vector<float> members(choice.begin() + g * per_group,
                               choice.begin() + (g + 1) * per_group);
    std::vector<int> best = TopK(members, std::min(2, per_group));
    float s = 0.0f;
    for (int b : best) s += members[b];
    group_scores[g] = s;
  }
  std::vector<int> kept = TopK(group_scores, spec.topk_groups);
  std::vector<bool> keep(spec.num_groups, false);
  for (int g : kept) keep[g] = true;
  for (int i = 0; i < e; ++i) {
    if (!keep[i / per_group]) choice[i] = 0.0f;
  }
  std::vector<int> top = TopK(choice, spec.top_k);
  float total = 0.0f;
  for (int j = 0; j < spec.top_k; ++j) total += scores[top[j]];
  for (int j = 0; j < spec.top_k; ++j) {
    expert_ids[j] = top[j];
    float w = scores[top[j]];
    if (spec.norm_topk_prob) w /= (total + 1e-20f);
    weights[j] = w * spec.routed_scaling_factor;
  }
}

void MoeRoute(const float* logits, int64_t num_tokens, const RouterSpec& spec, int32_t* expert_ids,
              float* weights) {
  for (int64_t t = 0; t < num_tokens; ++t) {
    MoeRouteToken(logits + t * spec.num_experts, spec, expert_ids + t * spec.top_k,
                  weights + t * spec.top_k);
  }
}

void GroupedExpertMlp(const float* x, int64_t hidden, std::span<const ExpertGroup> groups,
                      std::span<const MlpWeights> experts, float* out) {
  for (const ExpertGroup& g : groups) {
    const MlpWeights& w = experts[g.expert];
    int64_t inter = w.gate.rows;
    std::vector<float> gate(g.num_rows * inter), up(g.num_rows * inter);
    const float* xg = x + g.row_begin * hidden;
    MatmulOutput gu[2] = {{w.gate, gate.data(), inter}, {w.up, up.data(), inter}};
    Matmul(xg, g.num_rows, hidden, gu);
    SiluMul(gate.data(), inter, up.data(), inter, g.num_rows, inter, gate.data(), inter);
    MatmulOutput down[1] = {{w.down, out + g.row_begin * hidden, hidden}};
    Matmul(gate.data(), g.num_rows, inter, down);
  }
}

void WeightedCombine(const float* rows, int64_t hidden, int64_t num_tokens, int top_k,
                     const int32_t* row_index, const float* weights, float* out) {
  for (int64_t t = 0; t < num_tokens; ++t) {
    float* o = out + t * hidden;
    std::fill(o, o + hidden, 0.0f);
    for (int j = 0; j < top_k; ++j) {
      const float* r = rows + static_cast<int64_t>(row_index[t * top_k + j]) * hidden;
      float w = weights[t * top_k + j];
      for (int64_t d = 0; d < hidden; ++d) o[d] += w * r[d];
    }
  }
}

}  // namespace strata::ops::reference

namespace strata::ops::cpu {

RowKernelSet PortableRowKernels() {
  RowKernelSet k;
  k.silu_mul = [](const float* gate, const float* up, int64_t n, float* out) {
    reference::SiluMul(gate, n, up, n, 1, n, out, n);
  };
  k.rms_norm = &reference::RmsNormRow;
  k.weighted_combine = [](const float* rows, int64_t hidden, int top_k, const int32_t* row_index,
                          const float* weights, float* out) {
    reference::WeightedCombine(rows, hidden, 1, top_k, row_index, weights, out);
  };
  return k;
}

}  // namespace strata::ops::cpu
