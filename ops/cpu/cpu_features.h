// What the CPU can do, detected at run time; kernels pick their ISA from this.
#pragma once

#include <string>

namespace strata::ops {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512_bf16 = false;
  bool avx512_vnni = false;
  bool amx_tile = false;
  std::string model_name;  // from /proc/cpuinfo, empty when unknown
  int num_cores = 1;       // online hardware threads

  std::string Describe() const;  // "avx2 fma avx512f ..."
};

const CpuFeatures& GetCpuFeatures();

}  // namespace strata::ops
