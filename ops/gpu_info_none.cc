// GPU query for builds without the CUDA backend (STRATA_CUDA=OFF or no nvcc).
#include "ops/gpu_info.h"

namespace strata::ops {

GpuInfo QueryGpus() {
  GpuInfo info;
  info.cuda_built = false;
  info.error = "built without CUDA (STRATA_CUDA=OFF or nvcc not found)";
  return info;
}

}  // namespace strata::ops
