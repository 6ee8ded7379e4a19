// CUDA graphs keyed by batch-size bucket: the first Run for a bucket captures what `record`
// enqueues on the backend's stream and instantiates it; later Runs for that bucket replay it
// with one launch (decode steps: dozens of kernels per layer become one graph launch).
//
// What `record` may do: enqueue device work on the backend's stream only (the ops of
// CudaBackend whose metadata is already on the device: Embedding, Matmul, BatchedMatmul,
// RmsNorm, SiluMul, Add, ScatterToCache, MoeRoute, WeightedCombine, MoeForward, and the
// launchers of ops/cuda/kernels.h). Ops that upload host metadata (Attention, Rope,
// GroupedExpertMlp) copy from pageable host memory, which a capture refuses: Run then returns
// the error. Replays read and write the same device addresses as the capture, so the caller
// refills inputs in place (same buffers, same shapes) before each Run.
// Thread-safety: one thread at a time, like the backend.
#pragma once

#include <cstdint>
#include <functional>
#include <map>

#include "common/status.h"
#include "ops/cuda/cuda_backend.h"

namespace strata::ops::cuda {

class GraphCache {
 public:
  explicit GraphCache(CudaBackend& backend) : backend_(backend) {}
  ~GraphCache();
  GraphCache(const GraphCache&) = delete;
  GraphCache& operator=(const GraphCache&) = delete;

  // Captures (first time for `bucket`) then launches the graph. `record` returns the backend's
  // status of the recorded work (e.g. backend.Synchronize() is NOT allowed inside; return Ok).
  Status Run(int64_t bucket, const std::function<Status()>& record);
  bool Has(int64_t bucket) const { return graphs_.count(bucket) != 0; }
  size_t size() const { return graphs_.size(); }
  void Clear();

 private:
  CudaBackend& backend_;
  std::map<int64_t, void*> graphs_;  // cudaGraphExec_t
};

}  // namespace strata::ops::cuda
