// One DeepSeek-V3 layer's decode step on the CUDA backend (MLA absorbed attention + MoE with
// the real layer sizes), and the expert weights it shares with the grouped-GEMM benchmark.
#pragma once

#include <cuda_runtime.h>

#include <nlohmann/json.hpp>
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

// Times the layer at each batch with `context` keys per sequence; appends rows to `out`.
void BenchDeepSeekLayer(ops::CudaBackend& backend, const DeepSeekExperts& experts,
                        const std::vector<int>& batches, int context, double hbm_gbps,
                        nlohmann::json& out);

}  // namespace strata::bench::gpu
