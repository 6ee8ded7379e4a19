// GPU query through the CUDA runtime. Reports errors as text; never aborts when no driver or
// device is present.
#include <cuda_runtime.h>

#include "ops/gpu_info.h"

namespace strata::ops {

GpuInfo QueryGpus() {
  GpuInfo info;
  info.cuda_built = true;
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    info.error = cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky error
    return info;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    GpuDevice d;
    d.index = i;
    d.name = prop.name;
    d.compute_major = prop.major;
    d.compute_minor = prop.minor;
    d.memory_bytes = prop.totalGlobalMem;
    d.num_sms = prop.multiProcessorCount;
    info.devices.push_back(d);
  }
  return info;
}

}  // namespace strata::ops
