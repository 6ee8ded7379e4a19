// CudaBackend: creation, memory, GEMM (cuBLASLt) and the elementwise ops.
#include <algorithm>
#include <cstring>

#include "ops/cuda/cuda_backend_impl.h"

namespace strata::ops {
namespace cuda {

StatusOr<std::unique_ptr<CudaBackend>> CudaBackendImpl::Create(const CudaBackendOptions& options) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return UnavailableError(std::string("no CUDA device: ") + cudaGetErrorString(err));
  }
  if (options.device < 0 || options.device >= count) {
    return UnavailableError("CUDA device " + std::to_string(options.device) + " not present (" +
                            std::to_string(count) + " devices)");
  }
  std::unique_ptr<CudaBackendImpl> b(new CudaBackendImpl());
  b->device_ = options.device;
  STRATA_CUDA_RETURN_IF_ERROR(cudaSetDevice(options.device));
  cudaDeviceProp prop{};
  STRATA_CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&prop, options.device));
  if (prop.major < 8) {
    return UnavailableError(std::string("CUDA device ") + prop.name +
                            " is older than sm_80 (bf16 tensor cores needed)");
  }
  b->device_name_ = prop.name;
  b->name_ = std::string("cuda:") + std::to_string(options.device) +
             (options.deterministic ? "-deterministic" : "");
  STRATA_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&b->stream_, cudaStreamNonBlocking));
  // Keep freed memory in the pool: Allocate/Free in a forward pass never reach the driver.
  cudaMemPool_t pool;
  STRATA_CUDA_RETURN_IF_ERROR(cudaDeviceGetDefaultMemPool(&pool, options.device));
  uint64_t threshold = UINT64_MAX;
  STRATA_CUDA_RETURN_IF_ERROR(
      cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
  STRATA_ASSIGN_OR_RETURN(
      b->gemm_, LtGemm::Create(b->stream_, options.deterministic, options.gemm_workspace_bytes));
  return std::unique_ptr<CudaBackend>(std::move(b));
}

CudaBackendImpl::~CudaBackendImpl() {
  if (stream_ != nullptr) cudaStreamSynchronize(stream_);
  gemm_.reset();
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
}

bool CudaBackendImpl::Supports(Op op, DType activation, DType weight) const {
  if (activation != DType::kF32) return false;
  switch (op) {
    case Op::kEmbedding:
      return weight == DType::kBF16 || weight == DType::kF32 || weight == DType::kF16;
    case Op::kMatmul:
    case Op::kGroupedExpertMlp:
      return weight == DType::kBF16 || weight == DType::kF32;
    case Op::kAttention:
    case Op::kScatterToCache:
      return weight == DType::kBF16;
    case Op::kSampling:
      return false;  // sampling runs on the host (ops/sampling.h) over copied logits
    default:
      return weight == DType::kF32;
  }
}

Status CudaBackendImpl::Synchronize() {
  cudaError_t err = cudaStreamSynchronize(stream_);
  if (err != cudaSuccess) Record(CudaError(err, "cudaStreamSynchronize", __FILE__, __LINE__));
  Status s = error_;
  error_ = OkStatus();
  return s;
}

StatusOr<void*> CudaBackendImpl::Allocate(size_t bytes) {
  void* p = nullptr;
  cudaError_t err = cudaMallocAsync(&p, std::max<size_t>(bytes, 64), stream_);
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    return ResourceExhaustedError("CUDA device out of memory allocating " + std::to_string(bytes) +
                                  " bytes");
  }
  STRATA_CUDA_RETURN_IF_ERROR(err);
  return p;
}

void CudaBackendImpl::Free(void* ptr) {
  if (ptr != nullptr) Record(cudaFreeAsync(ptr, stream_), "cudaFreeAsync");
}

void CudaBackendImpl::CopyToDevice(void* dst, const void* src, size_t bytes) {
  Record(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync H2D");
  Record(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
}

void CudaBackendImpl::CopyToHost(void* dst, const void* src, size_t bytes) {
  Record(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync D2H");
  Record(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
}

void CudaBackendImpl::Copy(void* dst, const void* src, size_t bytes) {
  Record(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_),
         "cudaMemcpyAsync D2D");
}

void CudaBackendImpl::Embedding(const WeightView& table, const int32_t* ids, int64_t n, float* out,
                                int64_t ldo) {
  Record(LaunchEmbedding(table.data, table.dtype, table.cols, table.stride(), ids, n, out, ldo,
                         stream_),
         "Embedding");
}

void CudaBackendImpl::GemmOne(const float* x, const bf16* xb, int64_t m, int64_t ldx,
                              const MatmulOutput& o) {
  LtGemmShape s;
  s.dtype = o.w.dtype;
  s.m = m;
  s.n = o.w.rows;
  s.k = o.w.cols;
  s.ldw = o.w.stride();
  s.ldy = o.ldy;
  if (o.w.dtype == DType::kBF16) {
    s.ldx = o.w.cols;
    Record(gemm_->Run(s, xb, o.w.data, o.y));
  } else if (o.w.dtype == DType::kF32) {
    s.ldx = ldx;
    Record(gemm_->Run(s, x, o.w.data, o.y));
  } else {
    Record(InvalidArgumentError("CUDA Matmul: weights must be bf16 or f32, not " +
                                std::string(DTypeName(o.w.dtype))));
  }
}

void CudaBackendImpl::Matmul(const float* x, int64_t m, int64_t ldx,
                             std::span<const MatmulOutput> outputs) {
  if (outputs.empty() || m == 0) return;
  Scratch scratch(this);
  bf16* xb = nullptr;
  int64_t k = outputs[0].w.cols;
  bool any_bf16 = std::any_of(outputs.begin(), outputs.end(),
                              [](const MatmulOutput& o) { return o.w.dtype == DType::kBF16; });
  if (any_bf16) {
    xb = scratch.Get<bf16>(static_cast<size_t>(m * k));
    if (xb == nullptr) return;
    Record(LaunchConvertToBf16(x, m, k, ldx, xb, k, stream_), "ConvertToBf16");
  }
  for (const MatmulOutput& o : outputs) GemmOne(x, xb, m, ldx, o);
}

void CudaBackendImpl::BatchedMatmul(std::span<const MatmulProblem> problems) {
  if (problems.empty()) return;
  const MatmulProblem& p0 = problems[0];
  // One strided-batched call when the problems are equally shaped and equally spaced.
  bool uniform = problems.size() > 1;
  int64_t dx = 0, dw = 0, dy = 0;
  size_t wsize = DTypeSize(p0.w.dtype);
  if (uniform) {
    dx = problems[1].x - p0.x;
    dy = problems[1].y - p0.y;
    dw = (static_cast<const char*>(problems[1].w.data) - static_cast<const char*>(p0.w.data));
    uniform = dw % static_cast<int64_t>(wsize) == 0;
    dw /= static_cast<int64_t>(wsize);
  }
  for (size_t i = 1; uniform && i < problems.size(); ++i) {
    const MatmulProblem& p = problems[i];
    uniform = p.m == p0.m && p.ldx == p0.ldx && p.ldy == p0.ldy && p.w.dtype == p0.w.dtype &&
              p.w.rows == p0.w.rows && p.w.cols == p0.w.cols && p.w.stride() == p0.w.stride() &&
              p.x - p0.x == dx * static_cast<int64_t>(i) &&
              p.y - p0.y == dy * static_cast<int64_t>(i) &&
              static_cast<const char*>(p.w.data) - static_cast<const char*>(p0.w.data) ==
                  dw * static_cast<int64_t>(wsize) * static_cast<int64_t>(i);
  }
  if (!uniform || (p0.w.dtype != DType::kBF16 && p0.w.dtype != DType::kF32)) {
    for (const MatmulProblem& p : problems) {
      MatmulOutput o{p.w, p.y, p.ldy};
      Matmul(p.x, p.m, p.ldx, std::span<const MatmulOutput>(&o, 1));
    }
    return;
  }
  if (p0.m == 0) return;
  int batch = static_cast<int>(problems.size());
  LtGemmShape s;
  s.dtype = p0.w.dtype;
  s.m = p0.m;
  s.n = p0.w.rows;
  s.k = p0.w.cols;
  s.ldw = p0.w.stride();
  s.ldy = p0.ldy;
  s.batch = batch;
  s.stride_w = dw;
  s.stride_y = dy;
  if (p0.w.dtype == DType::kF32) {
    s.ldx = p0.ldx;
    s.stride_x = dx;
    Record(gemm_->Run(s, p0.x, p0.w.data, p0.y));
    return;
  }
  Scratch scratch(this);
  bf16* xb = scratch.Get<bf16>(static_cast<size_t>(batch * p0.m * s.k));
  if (xb == nullptr) return;
  Record(LaunchConvertToBf16(p0.x, p0.m, s.k, p0.ldx, xb, s.k, stream_, batch, dx, p0.m * s.k),
         "ConvertToBf16 (batched)");
  s.ldx = s.k;
  s.stride_x = p0.m * s.k;
  Record(gemm_->Run(s, xb, p0.w.data, p0.y));
}

void CudaBackendImpl::RmsNorm(const float* x, int64_t m, int64_t n, int64_t ldx,
                              const float* weight, float eps, float* out, int64_t ldo) {
  Record(LaunchRmsNorm(x, m, n, ldx, weight, eps, out, ldo, stream_), "RmsNorm");
}

void CudaBackendImpl::Rope(float* x, int64_t num_tokens, int64_t token_stride, int num_heads,
                           int64_t head_stride, const int32_t* positions, const RopeTable& table) {
  if (num_tokens == 0) return;
  Scratch scratch(this);
  float* inv_freq = scratch.Upload(table.inv_freq);
  if (inv_freq == nullptr) return;
  Record(LaunchRope(x, num_tokens, token_stride, num_heads, head_stride, positions, inv_freq,
                    table.rotary_dim, table.interleaved, table.attention_factor, stream_),
         "Rope");
}

void CudaBackendImpl::SiluMul(const float* gate, int64_t ldg, const float* up, int64_t ldu,
                              int64_t m, int64_t n, float* out, int64_t ldo) {
  Record(LaunchSiluMul(gate, ldg, up, ldu, m, n, out, ldo, stream_), "SiluMul");
}

void CudaBackendImpl::Add(float* y, int64_t ldy, const float* x, int64_t ldx, int64_t m,
                          int64_t n) {
  Record(LaunchAdd(y, ldy, x, ldx, m, n, stream_), "Add");
}

void CudaBackendImpl::ScatterToCache(const float* src, int64_t num_tokens, int64_t lds,
                                     int64_t width, bf16* dst, const int64_t* dst_offsets) {
  Record(LaunchScatterToCache(src, num_tokens, lds, width, dst, dst_offsets, stream_),
         "ScatterToCache");
}

void CudaBackendImpl::MoeRoute(const float* logits, int64_t num_tokens, const RouterSpec& spec,
                               int32_t* expert_ids, float* weights) {
  RouterParams p;
  p.sigmoid = spec.scoring == RouterScoring::kSigmoid;
  p.num_experts = spec.num_experts;
  p.top_k = spec.top_k;
  p.norm_topk_prob = spec.norm_topk_prob;
  p.num_groups = spec.num_groups;
  p.topk_groups = spec.topk_groups;
  p.routed_scaling_factor = spec.routed_scaling_factor;
  p.correction_bias = spec.correction_bias;
  Record(LaunchMoeRoute(logits, num_tokens, p, expert_ids, weights, stream_), "MoeRoute");
}

void CudaBackendImpl::WeightedCombine(const float* rows, int64_t hidden, int64_t num_tokens,
                                      int top_k, const int32_t* row_index, const float* weights,
                                      float* out) {
  Record(LaunchWeightedCombine(rows, hidden, num_tokens, top_k, row_index, weights, out, stream_),
         "WeightedCombine");
}

}  // namespace cuda

StatusOr<std::unique_ptr<CudaBackend>> CreateCudaBackend(const CudaBackendOptions& options) {
  return cuda::CudaBackendImpl::Create(options);
}

StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(int device) {
  CudaBackendOptions options;
  options.device = device;
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<CudaBackend> b, CreateCudaBackend(options));
  return std::unique_ptr<Backend>(std::move(b));
}

}  // namespace strata::ops
