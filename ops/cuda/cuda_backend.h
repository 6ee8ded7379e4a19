// The CUDA backend of ops::Backend (DESIGN.md §6): kernels in ops/cuda/*.cu, GEMM through
// cuBLASLt, memory from a stream-ordered pool, everything on one stream.
//
// Memory contract (differs from the CPU backend only in where pointers live):
// - Every tensor pointer an op takes (activations, weights, KV cache, ids, positions, offsets,
//   row indices, router bias) is device memory from Allocate or registered elsewhere on this
//   device.
// - Host-side descriptions stay on the host: RopeTable::inv_freq, the spans of ExpertGroup and
//   MlpWeights (whose WeightViews point to device memory), AttentionArgs::num_keys and
//   AttentionArgs::block_tables (an array of spans whose contents are host memory). The backend
//   uploads them to the device (ordered on its stream) for each call.
// Errors: ops::Backend's ops return void, so the backend records the first error of any CUDA
// call, launch or cuBLASLt call and Synchronize() returns it (kInternal with the call named),
// never aborting. Allocate returns kResourceExhausted when the device is full.
// Streams: all work is enqueued on stream(); ops return without waiting, except CopyToHost and
// CopyToDevice, which return when the copy is done (host buffers may be reused at once).
// Thread-safety: like every Backend, one thread at a time.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>

#include "common/status.h"
#include "ops/backend.h"

namespace strata::ops {

struct CudaBackendOptions {
  int device = 0;
  // Pin one cuBLASLt algorithm per (n, k) so rows are bit-identical whatever m (see
  // ops/cuda/lt_gemm.h). Every other CUDA op is batch-invariant in both modes.
  bool deterministic = false;
  size_t gemm_workspace_bytes = size_t{32} << 20;
};

// Expert weights as the device kernels read them: pointer and stride tables in device memory.
class DeviceExperts {
 public:
  virtual ~DeviceExperts() = default;
  virtual int num_experts() const = 0;
  virtual int64_t hidden() const = 0;
  virtual int64_t intermediate() const = 0;
};

class CudaBackend : public Backend {
 public:
  // Waits for the stream; returns (and clears) the first error recorded since the last call.
  virtual Status Synchronize() = 0;
  // The cudaStream_t all work runs on.
  virtual void* stream() const = 0;
  virtual bool deterministic() const = 0;
  virtual const std::string& device_name() const = 0;

  // Uploads the pointer tables of `experts` (bf16, all with the same intermediate size, dims
  // multiples of 8). kInvalidArgument otherwise.
  virtual StatusOr<std::unique_ptr<DeviceExperts>> UploadExperts(
      std::span<const MlpWeights> experts) = 0;
  // The whole routed MoE on the device without a host round trip (so it can be captured in a
  // CUDA graph): route router_logits [num_tokens, num_experts] per spec, permute tokens
  // (deterministically, in token order per expert), run every expert's SwiGLU MLP with the
  // grouped GEMM (one launch for gate/up + SiLU, one for down), and combine in top-k order:
  // out[t] = sum_j w[t, j] * MLP_e(t, j)(x[t]). Optionally returns the routing
  // (expert_ids/weights [num_tokens, top_k], device) when the pointers are not null.
  virtual void MoeForward(const float* x, int64_t num_tokens, const float* router_logits,
                          const RouterSpec& spec, const DeviceExperts& experts, float* out,
                          int32_t* expert_ids = nullptr, float* weights = nullptr) = 0;
};

// kUnavailable with the reason when the build has no CUDA, the driver or the device is missing.
StatusOr<std::unique_ptr<CudaBackend>> CreateCudaBackend(const CudaBackendOptions& options);
// The registered factory: a CUDA backend on `device` with default options.
StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(int device);

}  // namespace strata::ops
