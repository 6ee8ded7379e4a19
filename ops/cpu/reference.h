// Plain single-threaded C++ versions of every op: the ground truth that optimized kernels are
// checked against (tests/unit/ops/op_parity_test.cc). Same contracts as ops::Backend.
#pragma once

#include <span>

#include "ops/backend.h"

namespace strata::ops::reference {

float LoadWeight(const WeightView& w, int64_t row, int64_t col);

void Embedding(const WeightView& table, const int32_t* ids, int64_t n, float* out, int64_t ldo);
void Matmul(const float* x, int64_t m, int64_t ldx, std::span<const MatmulOutput> outputs);
void BatchedMatmul(std::span<const MatmulProblem> problems);
void RmsNorm(const float* x, int64_t m, int64_t n, int64_t ldx, const float* weight, float eps,
             float* out, int64_t ldo);
void RmsNormRow(const float* x, int64_t n, const float* weight, float eps, float* out);
void Rope(float* x, int64_t num_tokens, int64_t token_stride, int num_heads, int64_t head_stride,
          const int32_t* positions, const RopeTable& table);
void RopeHead(float* x, int32_t position, const RopeTable& table);
void SiluMul(const float* gate, int64_t ldg, const float* up, int64_t ldu, int64_t m, int64_t n,
             float* out, int64_t ldo);
void Add(float* y, int64_t ldy, const float* x, int64_t ldx, int64_t m, int64_t n);
void ScatterToCache(const float* src, int64_t num_tokens, int64_t lds, int64_t width, bf16* dst,
                    const int64_t* dst_offsets);
void Attention(const AttentionArgs& args);
void MoeRoute(const float* logits, int64_t num_tokens, const RouterSpec& spec, int32_t* expert_ids,
              float* weights);
void MoeRouteToken(const float* logits, const RouterSpec& spec, int32_t* expert_ids,
                   float* weights);
void GroupedExpertMlp(const float* x, int64_t hidden, std::span<const ExpertGroup> groups,
                      std::span<const MlpWeights> experts, float* out);
void WeightedCombine(const float* rows, int64_t hidden, int64_t num_tokens, int top_k,
                     const int32_t* row_index, const float* weights, float* out);

}  // namespace strata::ops::reference
