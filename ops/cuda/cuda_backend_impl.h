// Internal: the CudaBackend implementation class, shared by cuda_backend.cc (memory, GEMM,
// elementwise ops) and cuda_backend_attention_moe.cc (ops whose metadata comes from the host).
#pragma once

#include <cuda_runtime.h>

#include <memory>
#include <string>
#include <vector>

#include "ops/cuda/cuda_backend.h"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/kernels.h"
#include "ops/cuda/lt_gemm.h"

namespace strata::ops::cuda {

class CudaBackendImpl final : public CudaBackend {
 public:
  static StatusOr<std::unique_ptr<CudaBackend>> Create(const CudaBackendOptions& options);
  ~CudaBackendImpl() override;

  std::string_view name() const override { return name_; }
  bool Supports(Op op, DType activation, DType weight) const override;

  StatusOr<void*> Allocate(size_t bytes) override;
  void Free(void* ptr) override;
  void CopyToDevice(void* dst, const void* host_src, size_t bytes) override;
  void CopyToHost(void* host_dst, const void* src, size_t bytes) override;
  void Copy(void* dst, const void* src, size_t bytes) override;

  void Embedding(const WeightView& table, const int32_t* ids, int64_t n, float* out,
                 int64_t ldo) override;
  void Matmul(const float* x, int64_t m, int64_t ldx,
              std::span<const MatmulOutput> outputs) override;
  void BatchedMatmul(std::span<const MatmulProblem> problems) override;
  void RmsNorm(const float* x, int64_t m, int64_t n, int64_t ldx, const float* weight, float eps,
               float* out, int64_t ldo) override;
  void Rope(float* x, int64_t num_tokens, int64_t token_stride, int num_heads, int64_t head_stride,
            const int32_t* positions, const RopeTable& table) override;
  void SiluMul(const float* gate, int64_t ldg, const float* up, int64_t ldu, int64_t m, int64_t n,
               float* out, int64_t ldo) override;
  void Add(float* y, int64_t ldy, const float* x, int64_t ldx, int64_t m, int64_t n) override;
  void ScatterToCache(const float* src, int64_t num_tokens, int64_t lds, int64_t width, bf16* dst,
                      const int64_t* dst_offsets) override;
  void Attention(const AttentionArgs& args) override;
  void MoeRoute(const float* logits, int64_t num_tokens, const RouterSpec& spec,
                int32_t* expert_ids, float* weights) override;
  void GroupedExpertMlp(const float* x, int64_t hidden, std::span<const ExpertGroup> groups,
                        std::span<const MlpWeights> experts, float* out) override;
  void WeightedCombine(const float* rows, int64_t hidden, int64_t num_tokens, int top_k,
                       const int32_t* row_index, const float* weights, float* out) override;

  Status Synchronize() override;
  void* stream() const override { return stream_; }
  bool deterministic() const override { return gemm_->deterministic(); }
  const std::string& device_name() const override { return device_name_; }
  StatusOr<std::unique_ptr<DeviceExperts>> UploadExperts(
      std::span<const MlpWeights> experts) override;
  void MoeForward(const float* x, int64_t num_tokens, const float* router_logits,
                  const RouterSpec& spec, const DeviceExperts& experts, float* out,
                  int32_t* expert_ids, float* weights) override;

 private:
  CudaBackendImpl() = default;

  // Keeps the first error until Synchronize().
  void Record(const Status& s) {
    if (!s.ok() && error_.ok()) error_ = s;
  }
  void Record(cudaError_t err, const char* what) {
    if (err != cudaSuccess) Record(CudaError(err, what, __FILE__, __LINE__));
  }
  // Stream-ordered scratch: freed (in stream order) when the Scratch goes out of scope.
  class Scratch {
   public:
    explicit Scratch(CudaBackendImpl* b) : b_(b) {}
    ~Scratch() {
      for (void* p : ptrs_) cudaFreeAsync(p, b_->stream_);
    }
    // nullptr (and an error recorded) on failure.
    template <typename T>
    T* Get(size_t count) {
      void* p = nullptr;
      cudaError_t err = cudaMallocAsync(&p, std::max<size_t>(count * sizeof(T), 16), b_->stream_);
      if (err != cudaSuccess) {
        b_->Record(err, "cudaMallocAsync (scratch)");
        return nullptr;
      }
      ptrs_.push_back(p);
      return static_cast<T*>(p);
    }
    // Device copy of host data.
    template <typename T>
    T* Upload(const std::vector<T>& host) {
      T* d = Get<T>(host.size());
      if (d != nullptr && !host.empty()) {
        b_->Record(cudaMemcpyAsync(d, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice,
                                   b_->stream_),
                   "cudaMemcpyAsync (metadata)");
      }
      return d;
    }

   private:
    CudaBackendImpl* b_;
    std::vector<void*> ptrs_;
  };

  // y = x * w^T for one output, x already converted (bf16 [m, w.cols], ld = w.cols) when w is
  // bf16.
  void GemmOne(const float* x, const bf16* xb, int64_t m, int64_t ldx, const MatmulOutput& o);
  void GroupedExpertMlpFallback(const float* x, int64_t hidden, std::span<const ExpertGroup> groups,
                                std::span<const MlpWeights> experts, float* out);
  void RunGroupedMlp(const bf16* xb, int64_t hidden, int64_t inter, int64_t total_rows,
                     const GroupedGemmGroups& groups, const ExpertWeightTable& table, int tile_rows,
                     float* out, Scratch& scratch);

  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<LtGemm> gemm_;
  std::string name_ = "cuda";
  std::string device_name_;
  Status error_;
};

}  // namespace strata::ops::cuda
