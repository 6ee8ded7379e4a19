// One DeepSeek-V3 layer's decode step on the CUDA backend (MLA absorbed attention + MoE with
// the real layer sizes), and the expert weights it shares with the grouped-GEMM benchmark.
#pragma once

#include <cuda_runtime.h>

#include <nlohmann/json.hpp>
#include <span>
#include <vector>

#include "ops/backend.h"
#include "ops/cuda/cuda_backend.h"
#include "ops/cuda/kernels.h"

namespace strata::bench::gpu {

struct DeepSeekExperts {
  int num_experts = 0;
  int64_t hidden = 7168;
  int64_t inter = 2048;
  bf16* gate = nullptr;  // [num_experts, inter, hidden]
  bf16* up = nullptr;
  bf16* down = nullptr;                // [num_experts, hidden, inter]
  ops::cuda::ExpertWeightTable table;  // device pointer tables
  std::vector<ops::MlpWeights> views;
};

DeepSeekExperts MakeDeepSeekExperts(cudaStream_t s, int num_experts);

// One DeepSeek-V3 layer's weights besides the routed experts: attention block (q/kv LoRA,
// W_UK / W_UV absorption, o_proj), norms, the f32 routers (all 256 experts, and the 8 of an
// EP=32 share) and the shared expert.
struct DeepSeekLayerWeights {
  bf16 *q_a = nullptr, *kv_a = nullptr, *q_b = nullptr, *w_uk = nullptr, *w_uv = nullptr,
       *o_proj = nullptr;
  float *router = nullptr, *router_ep = nullptr, *bias = nullptr, *norm_w = nullptr;
  bf16 *sh_gate = nullptr, *sh_up = nullptr, *sh_down = nullptr;
  int64_t inter = 0;
  ops::RopeTable rope;
  float scale = 0;
};
DeepSeekLayerWeights MakeDeepSeekLayerWeights(cudaStream_t s, int64_t inter);

// A decode batch of `b` sequences with `context` cached keys each: its MLA cache, block tables
// (host), positions and cache slots (device) and activations (device). Free with FreeBatch.
struct DeepSeekBatch {
  int b = 0, context = 0;
  bf16* cache = nullptr;
  float *x = nullptr, *xn = nullptr, *qa = nullptr, *kva = nullptr, *q = nullptr, *q_abs = nullptr,
        *lat = nullptr, *attn = nullptr, *o = nullptr, *logits = nullptr, *moe = nullptr,
        *sg = nullptr, *su = nullptr, *so = nullptr;
  std::vector<std::vector<int32_t>> tables;
  std::vector<std::span<const int32_t>> spans;
  std::vector<int32_t> num_keys;
  int32_t* d_pos = nullptr;
  int64_t* d_slots = nullptr;
};
DeepSeekBatch MakeDeepSeekBatch(int b, int context, int64_t inter, uint64_t seed, cudaStream_t s);
void FreeBatch(DeepSeekBatch& batch);

// x += o_proj(MLA attention(norm(x))), the KV of the new token written, on be's stream.
void RunAttentionBlock(ops::CudaBackend& be, const DeepSeekLayerWeights& w, DeepSeekBatch& a);
// The MoE block's norm (xn = norm(x)) and its shared expert (so = shared(xn)).
void RunMoeNorm(ops::CudaBackend& be, const DeepSeekLayerWeights& w, DeepSeekBatch& a);
void RunSharedExpert(ops::CudaBackend& be, const DeepSeekLayerWeights& w, DeepSeekBatch& a);

// Times the layer at each batch with `context` keys per sequence; appends rows to `out`.
void BenchDeepSeekLayer(ops::CudaBackend& backend, const DeepSeekExperts& experts,
                        const std::vector<int>& batches, int context, double hbm_gbps,
                        nlohmann::json& out);

}  // namespace strata::bench::gpu
