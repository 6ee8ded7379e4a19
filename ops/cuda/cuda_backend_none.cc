// Builds without CUDA (STRATA_CUDA=OFF): the factory reports that the backend is not built.
#include "ops/cuda/cuda_backend.h"

namespace strata::ops {

StatusOr<std::unique_ptr<CudaBackend>> CreateCudaBackend(const CudaBackendOptions&) {
  return UnavailableError("CUDA backend not built (configure with -DSTRATA_CUDA=ON)");
}

StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(int device) {
  CudaBackendOptions options;
  options.device = device;
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<CudaBackend> b, CreateCudaBackend(options));
  return std::unique_ptr<Backend>(std::move(b));
}

}  // namespace strata::ops
