#include "ops/cuda/lt_gemm.h"

#include <array>
#include <string>

#include "ops/cuda/cuda_check.h"

namespace strata::ops::cuda {

struct LtGemm::Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr;  // w
  cublasLtMatrixLayout_t b = nullptr;  // x
  cublasLtMatrixLayout_t c = nullptr;  // y
  cublasLtMatmulAlgo_t algo{};
  ~Plan() {
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

namespace {

cudaDataType_t CudaType(DType t) { return t == DType::kBF16 ? CUDA_R_16BF : CUDA_R_32F; }

Status SetBatch(cublasLtMatrixLayout_t layout, int batch, int64_t stride) {
  if (batch <= 1) return OkStatus();
  int32_t count = batch;
  STRATA_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutSetAttribute(
      layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
  STRATA_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutSetAttribute(
      layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
  return OkStatus();
}

constexpr int64_t kReferenceM = 256;
constexpr std::array<int64_t, 4> kProbeM = {1, 13, 256, 4099};

}  // namespace

LtGemm::LtGemm(cudaStream_t stream, bool deterministic)
    : stream_(stream), deterministic_(deterministic) {}

StatusOr<std::unique_ptr<LtGemm>> LtGemm::Create(cudaStream_t stream, bool deterministic,
                                                 size_t workspace_bytes) {
  std::unique_ptr<LtGemm> g(new LtGemm(stream, deterministic));
  STRATA_CUBLAS_RETURN_IF_ERROR(cublasLtCreate(&g->handle_));
  if (workspace_bytes > 0) {
    STRATA_CUDA_RETURN_IF_ERROR(cudaMalloc(&g->workspace_, workspace_bytes));
    g->workspace_bytes_ = workspace_bytes;
  }
  return g;
}

LtGemm::~LtGemm() {
  plans_.clear();
  if (workspace_) cudaFree(workspace_);
  if (handle_) cublasLtDestroy(handle_);
}

Status LtGemm::MakeDescs(const LtGemmShape& s, Plan* plan) {
  cudaDataType_t t = CudaType(s.dtype);
  STRATA_CUBLAS_RETURN_IF_ERROR(
      cublasLtMatmulDescCreate(&plan->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  cublasOperation_t trans_a = CUBLAS_OP_T;
  cublasOperation_t trans_b = CUBLAS_OP_N;
  STRATA_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
      plan->op, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof(trans_a)));
  STRATA_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
      plan->op, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b, sizeof(trans_b)));
  STRATA_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&plan->a, t, s.k, s.n, s.ldw));
  STRATA_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&plan->b, t, s.k, s.m, s.ldx));
  STRATA_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&plan->c, CUDA_R_32F, s.n, s.m, s.ldy));
  STRATA_RETURN_IF_ERROR(SetBatch(plan->a, s.batch, s.stride_w));
  STRATA_RETURN_IF_ERROR(SetBatch(plan->b, s.batch, s.stride_x));
  STRATA_RETURN_IF_ERROR(SetBatch(plan->c, s.batch, s.stride_y));
  return OkStatus();
}

StatusOr<cublasLtMatmulAlgo_t> LtGemm::PinnedAlgo(const LtGemmShape& shape) {
  Key key{static_cast<int>(shape.dtype),
          0,
          shape.n,
          shape.k,
          shape.ldx,
          shape.ldw,
          shape.ldy,
          shape.batch,
          shape.stride_x,
          shape.stride_w,
          shape.stride_y};
  auto it = pinned_.find(key);
  if (it != pinned_.end()) return it->second;

  LtGemmShape ref = shape;
  ref.m = kReferenceM;
  Plan ref_plan;
  STRATA_RETURN_IF_ERROR(MakeDescs(ref, &ref_plan));
  cublasLtMatmulPreference_t pref = nullptr;
  STRATA_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceCreate(&pref));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                       &workspace_bytes_, sizeof(workspace_bytes_));
  constexpr int kWanted = 16;
  cublasLtMatmulHeuristicResult_t results[kWanted];
  int found = 0;
  cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(handle_, ref_plan.op, ref_plan.a, ref_plan.b, ref_plan.c,
                                     ref_plan.c, pref, kWanted, results, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
    return InternalError("cuBLASLt found no algorithm for n=" + std::to_string(shape.n) +
                         " k=" + std::to_string(shape.k));
  }
  for (int i = 0; i < found; ++i) {
    cublasLtMatmulAlgo_t algo = results[i].algo;
    int32_t one = 1;
    uint32_t none = CUBLASLT_REDUCTION_SCHEME_NONE;
    cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &one, sizeof(one));
    cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &none,
                                         sizeof(none));
    bool ok = true;
    for (int64_t m : kProbeM) {
      LtGemmShape probe = shape;
      probe.m = m;
      Plan p;
      STRATA_RETURN_IF_ERROR(MakeDescs(probe, &p));
      cublasLtMatmulHeuristicResult_t check{};
      if (cublasLtMatmulAlgoCheck(handle_, p.op, p.a, p.b, p.c, p.c, &algo, &check) !=
              CUBLAS_STATUS_SUCCESS ||
          check.workspaceSize > workspace_bytes_) {
        ok = false;
        break;
      }
    }
    if (ok) {
      pinned_[key] = algo;
      return algo;
    }
  }
  return InternalError("cuBLASLt: no algorithm without split-K serves every m for n=" +
                       std::to_string(shape.n) + " k=" + std::to_string(shape.k));
}

StatusOr<LtGemm::Plan*> LtGemm::GetPlan(const LtGemmShape& s) {
  Key key{static_cast<int>(s.dtype),
          s.m,
          s.n,
          s.k,
          s.ldx,
          s.ldw,
          s.ldy,
          s.batch,
          s.stride_x,
          s.stride_w,
          s.stride_y};
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second.get();
  auto plan = std::make_unique<Plan>();
  STRATA_RETURN_IF_ERROR(MakeDescs(s, plan.get()));
  if (deterministic_) {
    STRATA_ASSIGN_OR_RETURN(plan->algo, PinnedAlgo(s));
    cublasLtMatmulHeuristicResult_t check{};
    STRATA_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulAlgoCheck(handle_, plan->op, plan->a, plan->b,
                                                          plan->c, plan->c, &plan->algo, &check));
  } else {
    cublasLtMatmulPreference_t pref = nullptr;
    STRATA_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceCreate(&pref));
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                         &workspace_bytes_, sizeof(workspace_bytes_));
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(handle_, plan->op, plan->a, plan->b, plan->c,
                                                       plan->c, pref, 1, &result, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
      return InternalError("cuBLASLt found no algorithm for m=" + std::to_string(s.m) +
                           " n=" + std::to_string(s.n) + " k=" + std::to_string(s.k));
    }
    plan->algo = result.algo;
  }
  Plan* raw = plan.get();
  plans_[key] = std::move(plan);
  return raw;
}

Status LtGemm::Run(const LtGemmShape& shape, const void* x, const void* w, float* y) {
  if (shape.m == 0 || shape.n == 0) return OkStatus();
  if (shape.dtype != DType::kBF16 && shape.dtype != DType::kF32) {
    return InvalidArgumentError("LtGemm: weights must be bf16 or f32");
  }
  STRATA_ASSIGN_OR_RETURN(Plan * plan, GetPlan(shape));
  float alpha = 1.0f;
  float beta = 0.0f;
  STRATA_CUBLAS_RETURN_IF_ERROR(cublasLtMatmul(handle_, plan->op, &alpha, w, plan->a, x, plan->b,
                                               &beta, y, plan->c, y, plan->c, &plan->algo,
                                               workspace_, workspace_bytes_, stream_));
  return OkStatus();
}

}  // namespace strata::ops::cuda
