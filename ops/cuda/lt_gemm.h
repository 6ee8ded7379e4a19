// GEMM through cuBLASLt: y[m, n] (f32, row stride ldy) = x[m, k] * w[n, k]^T, with x and w both
// bf16 (tensor cores, f32 accumulation) or both f32 (exact f32, no TF32: router logits).
// Strided batches run as one call.
//
// Algorithm choice: cublasLtMatmulAlgoGetHeuristic runs once per shape and the plan (layouts +
// algorithm) is cached. In the default mode the heuristic picks per (m, n, k), so it may choose
// split-K for a small m and a row's bits can change with the batch size. In deterministic mode
// one algorithm is pinned per (n, k, dtype, leading dims), chosen at a reference m with split-K
// and reductions forced off and checked against several m; every m then runs the same kernel
// configuration and each row's result is bit-identical whatever m is. Its cost (measured by
// bench/gpu): small-m shapes lose the split-K parallelism the heuristic would pick.
// Thread-safety: one thread at a time; all work goes to the stream given at creation.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <tuple>

#include "common/status.h"
#include "ops/dtype.h"

namespace strata::ops::cuda {

struct LtGemmShape {
  DType dtype = DType::kBF16;  // of x and w
  int64_t m = 0;
  int64_t n = 0;
  int64_t k = 0;
  int64_t ldx = 0;
  int64_t ldw = 0;
  int64_t ldy = 0;
  int batch = 1;
  int64_t stride_x = 0;  // elements between batch entries
  int64_t stride_w = 0;
  int64_t stride_y = 0;
};

class LtGemm {
 public:
  static StatusOr<std::unique_ptr<LtGemm>> Create(cudaStream_t stream, bool deterministic,
                                                  size_t workspace_bytes);
  ~LtGemm();
  LtGemm(const LtGemm&) = delete;
  LtGemm& operator=(const LtGemm&) = delete;

  Status Run(const LtGemmShape& shape, const void* x, const void* w, float* y);
  bool deterministic() const { return deterministic_; }
  size_t num_plans() const { return plans_.size(); }

 private:
  struct Plan;
  using Key = std::tuple<int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int, int64_t,
                         int64_t, int64_t>;
  LtGemm(cudaStream_t stream, bool deterministic);
  StatusOr<Plan*> GetPlan(const LtGemmShape& shape);
  Status MakeDescs(const LtGemmShape& shape, Plan* plan);
  StatusOr<cublasLtMatmulAlgo_t> PinnedAlgo(const LtGemmShape& shape);

  cudaStream_t stream_;
  bool deterministic_;
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  std::map<Key, std::unique_ptr<Plan>> plans_;
  std::map<Key, cublasLtMatmulAlgo_t> pinned_;  // key with m = 0
};

}  // namespace strata::ops::cuda
