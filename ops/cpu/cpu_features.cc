#include "ops/cpu/cpu_features.h"

#include <fstream>
#include <thread>

namespace strata::ops {
namespace {

CpuFeatures Detect() {
  CpuFeatures f;
#if defined(__x86_64__)
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512_vnni = __builtin_cpu_supports("avx512vnni");
#endif
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (f.model_name.empty() && line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) f.model_name = line.substr(colon + 2);
    }
    if (line.rfind("flags", 0) == 0) {
      f.avx512_bf16 = line.find(" avx512_bf16") != std::string::npos;
      f.amx_tile = line.find(" amx_tile") != std::string::npos;
    }
  }
  unsigned n = std::thread::hardware_concurrency();
  f.num_cores = n == 0 ? 1 : static_cast<int>(n);
  return f;
}

}  // namespace

std::string CpuFeatures::Describe() const {
  std::string out;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!out.empty()) out += ' ';
    out += name;
  };
  add(avx2, "avx2");
  add(fma, "fma");
  add(avx512f, "avx512f");
  add(avx512bw, "avx512bw");
  add(avx512vl, "avx512vl");
  add(avx512_bf16, "avx512_bf16");
  add(avx512_vnni, "avx512_vnni");
  add(amx_tile, "amx_tile");
  return out.empty() ? "baseline" : out;
}

const CpuFeatures& GetCpuFeatures() {
  static const CpuFeatures features = Detect();
  return features;
}

}  // namespace strata::ops
