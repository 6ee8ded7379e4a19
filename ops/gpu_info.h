// Which GPUs this process can use. Works in every build: without the CUDA backend compiled in,
// it reports that CUDA is not built; with it, it asks the CUDA runtime (no GPU -> zero devices).
#pragma once

#include <string>
#include <vector>

namespace strata::ops {

struct GpuDevice {
  int index = 0;
  std::string name;
  int compute_major = 0;
  int compute_minor = 0;
  size_t memory_bytes = 0;
  int num_sms = 0;
};

struct GpuInfo {
  bool cuda_built = false;
  std::string error;  // why no device could be queried (empty when the query worked)
  std::vector<GpuDevice> devices;
};

GpuInfo QueryGpus();

}  // namespace strata::ops
