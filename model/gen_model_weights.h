// The weights half of gen-model: which tensors a random checkpoint holds, how each element is
// drawn, and filling their bytes (BF16, F32 or FP8 E4M3 with 128x128 block scales) in
// parallel. Internal to model/ (gen_model.cc and tests).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"
#include "common/thread_pool.h"
#include "model/gen_model.h"
#include "model/model_config.h"
#include "model/safetensors_writer.h"

namespace strata::model::gen {

// A standard normal draw that is a pure function of (key, index): a splitmix64 hash of the
// counter gives four 16-bit uniforms, each mapped through a 65,536-entry inverse normal CDF
// table (quantiles at the bin midpoints, |z| <= 4.2).
float NormalAt(uint64_t key, uint64_t index);
// The per-tensor key of `name` under `seed`.
uint64_t TensorKey(uint64_t seed, std::string_view name);

// How the elements of one tensor are drawn: value = mean + std * N(0,1) + row_add[row] at
// column 0 (the router-skew terms; empty for none).
struct TensorInit {
  uint64_t key = 0;
  float mean = 0.0f;
  float std = 0.0f;
  std::vector<float> row_add;
  // FP8: this spec is the F8_E4M3 weight (quantized_from < 0) or the F32 scale_inv of the
  // weight spec `scale_of`; both regenerate the weight's floats block by block.
  bool fp8 = false;
  int64_t scale_of = -1;
  int64_t rows = 0;  // 2-D view of the (weight) tensor: rows x cols (1-D: rows = n, cols = 1)
  int64_t cols = 0;
};

struct WeightPlan {
  std::vector<TensorSpec> specs;
  std::vector<TensorInit> inits;  // one per spec
  uint64_t TotalBytes() const;
};

// Every tensor of ExpectedTensors(config) (+ scale_inv for fp8 weights), with its init.
// `output_dtype` is BF16 or F32 for the unquantized float tensors (the router bias is F32).
WeightPlan PlanWeights(const ModelConfig& config, const InitScales& scales, uint64_t seed,
                       double router_skew, TensorDtype output_dtype = TensorDtype::kBF16);

// Fills spec `index` of `plan` into `out` (its Bytes() long), using `pool`.
Status FillTensor(const WeightPlan& plan, size_t index, std::span<uint8_t> out, ThreadPool& pool);

// The expert hotness profile of --router-skew: 1 - e / max(1, E/4) for the first quarter of
// experts, 0 after.
float ExpertHotness(int64_t expert, int64_t num_experts);

}  // namespace strata::model::gen
