// `strata generate --ep N`: one prompt through an EP group inside this instance. Rank 0 runs the
// request (model::GenerateOne on its EpRunner); the other ranks join every step with no tokens,
// as threads (--ep-transport inproc) or as `strata ep-worker` processes over UCX.
#pragma once

#include <nlohmann/json.hpp>

#include "expert_parallel/group/ep_flags.h"
#include "model/generate_loop.h"

namespace strata::expert_parallel {

struct EpGenerateResult {
  model::GenerateOutput output;
  double load_ms = 0;
  nlohmann::json stats;  // StatsJson of rank 0
};

// `self_exe`: this binary (the workers run `self_exe ep-worker ...`).
StatusOr<EpGenerateResult> GenerateWithEp(const std::string& model_dir,
                                          const std::vector<int32_t>& prompt,
                                          const model::RunnerOptions& runner_options,
                                          const model::GenerateOptions& generate_options,
                                          const EpFlags& flags, const std::string& self_exe);

// `strata ep-worker`: joins the leader and serves until it stops.
Status RunEpWorker(const std::string& model_dir, const model::RunnerOptions& runner_options,
                   const EpFlags& flags, int rank, const std::string& leader_address);

}  // namespace strata::expert_parallel
