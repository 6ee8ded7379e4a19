// `strata info`: what this build and machine offer (version, CPU features, GPUs).
#include <nlohmann/json.hpp>

#include <iostream>

#include "apps/strata/commands.h"
#include "common/config.h"
#include "common/version.h"
#include "ops/cpu/cpu_features.h"
#include "ops/gpu_info.h"

namespace strata::apps {
namespace {

struct InfoConfig {
  bool json = false;
};

int RunInfo(const InfoConfig& cfg) {
  const auto& cpu = ops::GetCpuFeatures();
  ops::GpuInfo gpus = ops::QueryGpus();
  if (cfg.json) {
    nlohmann::json j;
    j["version"] = kVersion;
    j["git_sha"] = kGitSha;
    j["cpu"] = {{"model", cpu.model_name}, {"cores", cpu.num_cores}, {"features", cpu.Describe()}};
    j["cuda_built"] = gpus.cuda_built;
    j["gpus"] = nlohmann::json::array();
    for (const auto& d : gpus.devices) {
      j["gpus"].push_back({{"index", d.index},
                           {"name", d.name},
                           {"compute_capability", std::to_string(d.compute_major) + "." +
                                                      std::to_string(d.compute_minor)},
                           {"memory_bytes", d.memory_bytes},
                           {"sms", d.num_sms}});
    }
    if (!gpus.error.empty()) j["gpu_error"] = gpus.error;
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << "strata " << kVersion << " (" << kGitSha << ")\n";
  std::cout << "cpu: " << cpu.model_name << ", " << cpu.num_cores << " threads, " << cpu.Describe()
            << "\n";
  std::cout << "cuda: " << (gpus.cuda_built ? "built" : "not built") << "\n";
  for (const auto& d : gpus.devices) {
    std::cout << "gpu " << d.index << ": " << d.name << " (sm_" << d.compute_major
              << d.compute_minor << ", " << (d.memory_bytes >> 20) << " MiB, " << d.num_sms
              << " SMs)\n";
  }
  if (gpus.devices.empty()) std::cout << "gpus: none (" << gpus.error << ")\n";
  return 0;
}

}  // namespace

Command InfoCommand() {
  return {"info", "Show the build, CPU features and GPUs this machine offers",
          [](CLI::App& app) -> std::function<int()> {
            auto cfg = std::make_shared<InfoConfig>();
            AddSwitch(app, "json", &cfg->json, "Print one JSON object");
            return [cfg] { return RunInfo(*cfg); };
          }};
}

}  // namespace strata::apps
