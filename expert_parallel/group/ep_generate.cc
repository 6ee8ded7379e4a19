#include "expert_parallel/group/ep_generate.h"

#include <fstream>
#include <thread>

#include "common/clock.h"

namespace strata::expert_parallel {
namespace {

Status WriteStats(const EpFlags& flags, const nlohmann::json& j) {
  if (flags.stats_out.empty()) return OkStatus();
  std::ofstream out(flags.stats_out);
  out << j.dump(2) << "\n";
  return out ? OkStatus() : NotFoundError("--ep-stats-out: cannot write " + flags.stats_out);
}

}  // namespace

StatusOr<EpGenerateResult> GenerateWithEp(const std::string& model_dir,
                                          const std::vector<int32_t>& prompt,
                                          const model::RunnerOptions& runner_options,
                                          const model::GenerateOptions& generate_options,
                                          const EpFlags& flags, const std::string& self_exe) {
  STRATA_ASSIGN_OR_RETURN(EpGroupOptions g, ToGroupOptions(flags));
  EpGenerateResult result;
  Stopwatch load;
  if (g.transport == "inproc" || g.size == 1) {
    STRATA_ASSIGN_OR_RETURN(auto runners, CreateThreadGroup(model_dir, runner_options, g));
    result.load_ms = load.ElapsedMillis();
    std::vector<Status> st(g.size);
    std::vector<std::thread> workers;
    for (int r = 1; r < g.size; ++r) {
      workers.emplace_back([&, r] { st[r] = runners[r]->ServeUntilStop(); });
    }
    auto out = model::GenerateOne(*runners[0], prompt, generate_options);
    Status stop = runners[0]->Stop();
    if (!out.ok()) runners[0]->endpoint().Abort(out.status());  // free the workers at once
    for (auto& w : workers) w.join();
    STRATA_RETURN_IF_ERROR(out.status());
    STRATA_RETURN_IF_ERROR(stop);
    for (int r = 1; r < g.size; ++r) STRATA_RETURN_IF_ERROR(st[r]);
    result.output = std::move(*out);
    result.stats = StatsJson(runners[0]->stats(), runners[0]->endpoint().options());
  } else {
    std::vector<std::string> prefix = {
        self_exe,          "ep-worker",
        "--model",         model_dir,
        "--device",        runner_options.device,
        "--threads",       std::to_string(runner_options.num_threads),
        "--kv-block-size", std::to_string(runner_options.kv_block_size)};
    for (auto& a : EpFlagArgs(flags)) prefix.push_back(a);
    STRATA_ASSIGN_OR_RETURN(LeaderGroup group, StartLeader(model_dir, runner_options, g, prefix));
    result.load_ms = load.ElapsedMillis();
    auto out = model::GenerateOne(*group.runner, prompt, generate_options);
    Status stop = group.runner->Stop();
    if (!out.ok()) group.runner->endpoint().Abort(out.status());
    result.stats = StatsJson(group.runner->stats(), group.runner->endpoint().options());
    Status waited = WaitForWorkers(group.workers, g.timeout_ms);
    STRATA_RETURN_IF_ERROR(out.status());
    STRATA_RETURN_IF_ERROR(stop);
    STRATA_RETURN_IF_ERROR(waited);
    result.output = std::move(*out);
  }
  STRATA_RETURN_IF_ERROR(WriteStats(flags, result.stats));
  return result;
}

Status RunEpWorker(const std::string& model_dir, const model::RunnerOptions& runner_options,
                   const EpFlags& flags, int rank, const std::string& leader_address) {
  STRATA_ASSIGN_OR_RETURN(EpGroupOptions g, ToGroupOptions(flags));
  STRATA_ASSIGN_OR_RETURN(auto runner,
                          JoinAsWorker(model_dir, runner_options, g, rank, leader_address));
  return runner->ServeUntilStop();
}

}  // namespace strata::expert_parallel
