// Building EP groups inside one instance (DESIGN.md §1): the options every rank shares, and the
// two ways to run the ranks -- threads of this process (in-process or UCX transport; tests and
// `--ep-transport inproc`) or one process per rank over UCX on 127.0.0.1 (`strata generate --ep
// N` spawns `strata ep-worker` processes). The prefill and decode services will build their
// groups with these same calls.
#pragma once

#include <sys/types.h>

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "expert_parallel/group/ep_runner.h"
#include "expert_parallel/wire.h"
#include "model/model_config.h"
#include "model/model_runner.h"
#include "transport/inproc/inproc_transport.h"
#include "transport/transport.h"

namespace strata::expert_parallel {

struct EpGroupOptions {
  int size = 1;
  // inproc | ucx | nccl (dispatch/combine as NCCL all-to-alls staged through the rank's GPU; a
  // CUDA build; ranks > 1 run as processes, each on its own GPU)
  std::string transport = "inproc";
  std::string nccl_id;  // nccl: rank 0's ncclUniqueId in hex (set for workers)
  std::string ucx_tls;  // UCX_TLS for ucx ("sm,tcp", "tcp", ...); empty: default
  WireDType dispatch_dtype = WireDType::kInt8;
  int redundant_experts = 0;
  std::string placement_file;  // initial placement (JSON); empty: uniform
  int eplb_window_steps = 0;
  int64_t max_tokens_per_rank = 512;
  int64_t timeout_ms = 30000;
  EpRunnerOptions runner;
};

// kInvalidArgument naming the flag (--ep, --ep-transport, ...) when an option is out of range.
Status ValidateGroupOptions(const EpGroupOptions& options);

// The endpoint options of `rank` for a model.
StatusOr<EpOptions> MakeEpOptions(const model::ModelConfig& config, const EpGroupOptions& options,
                                  int rank);

// The options a group runs with: microbatching is off at EP 1 (no exchange to hide: it only
// halves the batches) and over nccl (a collective serves one stream). Every rank applies the
// same rule, so they agree.
EpGroupOptions EffectiveGroupOptions(EpGroupOptions options);
// The runner options of `rank`: device "cuda" spreads the ranks over the visible GPUs (rank r on
// GPU r mod count); "cuda:N" keeps every rank on GPU N.
model::RunnerOptions RankRunnerOptions(model::RunnerOptions options, int rank);

// The rank's transport: UCX (with options.ucx_tls) or in-process on `fabric`.
StatusOr<std::unique_ptr<transport::Transport>> MakeTransport(
    const EpGroupOptions& options, std::shared_ptr<transport::InprocFabric> inproc_fabric);
// The rank's endpoint over that transport, or over NCCL on GPU `gpu` (transport nccl; for
// size > 1 every rank must call it at about the same time, with options.nccl_id set).
StatusOr<std::unique_ptr<EpEndpoint>> MakeEndpoint(
    const EpOptions& ep_options, const EpGroupOptions& options,
    std::shared_ptr<transport::InprocFabric> inproc_fabric, int gpu);

// Every rank of a group as threads of this process; [0] is rank 0. Models are loaded once per
// rank (weights are mmap'd, so shared).
StatusOr<std::vector<std::unique_ptr<EpRunner>>> CreateThreadGroup(
    const std::string& model_dir, const model::RunnerOptions& runner_options,
    const EpGroupOptions& options);

// Multi-process groups. The leader (rank 0) listens, spawns `argv_prefix + --ep-rank r
// --ep-leader ADDR` for r = 1..size-1, joins, and loads its runner; a worker joins the leader
// at `leader_address` and loads its runner.
struct LeaderGroup {
  std::unique_ptr<EpRunner> runner;
  std::vector<pid_t> workers;
};
StatusOr<LeaderGroup> StartLeader(const std::string& model_dir,
                                  const model::RunnerOptions& runner_options,
                                  const EpGroupOptions& options,
                                  const std::vector<std::string>& worker_argv_prefix);
StatusOr<std::unique_ptr<EpRunner>> JoinAsWorker(const std::string& model_dir,
                                                 const model::RunnerOptions& runner_options,
                                                 const EpGroupOptions& options, int rank,
                                                 const std::string& leader_address);
// Waits for the workers to exit (up to timeout_ms, then SIGKILL); kInternal naming a worker
// that failed.
Status WaitForWorkers(const std::vector<pid_t>& workers, int64_t timeout_ms);

// The largest over mean tokens received by a rank, in the worst MoE layer (1: even or none).
double WorstLoadRatio(const EpStats& stats, const EpOptions& options);

// The group's measurements as JSON: per-rank tokens received per layer, max/mean load ratio,
// dispatch/combine time, bytes, overlap.
nlohmann::json StatsJson(const EpRunnerStats& stats, const EpOptions& options);

}  // namespace strata::expert_parallel
