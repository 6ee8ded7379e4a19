#include "ops/cuda/cuda_graph.h"

#include <cuda_runtime.h>

#include "ops/cuda/cuda_check.h"

namespace strata::ops::cuda {

GraphCache::~GraphCache() { Clear(); }

void GraphCache::Clear() {
  for (auto& [bucket, exec] : graphs_) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec));
  graphs_.clear();
}

Status GraphCache::Run(int64_t bucket, const std::function<Status()>& record) {
  cudaStream_t stream = static_cast<cudaStream_t>(backend_.stream());
  auto it = graphs_.find(bucket);
  if (it == graphs_.end()) {
    STRATA_CUDA_RETURN_IF_ERROR(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed));
    Status recorded = record();
    cudaGraph_t graph = nullptr;
    cudaError_t end = cudaStreamEndCapture(stream, &graph);
    // Errors recorded by the backend during capture (launches refused in capture mode).
    Status backend_status = backend_.Synchronize();
    if (!recorded.ok() || !backend_status.ok() || end != cudaSuccess) {
      if (graph != nullptr) cudaGraphDestroy(graph);
      cudaGetLastError();
      if (!recorded.ok()) return recorded;
      if (!backend_status.ok()) return backend_status;
      return CudaError(end, "cudaStreamEndCapture", __FILE__, __LINE__);
    }
    cudaGraphExec_t exec = nullptr;
    cudaError_t inst = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    STRATA_CUDA_RETURN_IF_ERROR(inst);
    it = graphs_.emplace(bucket, exec).first;
  }
  STRATA_CUDA_RETURN_IF_ERROR(cudaGraphLaunch(static_cast<cudaGraphExec_t>(it->second), stream));
  return OkStatus();
}

}  // namespace strata::ops::cuda
