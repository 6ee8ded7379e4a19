#include "expert_parallel/group/ep_group.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <thread>

#include "common/clock.h"
#include "common/config.h"
#include "common/hex.h"
#include "expert_parallel/wire.h"
#ifdef STRATA_WITH_NCCL
#include "expert_parallel/nccl_collective.h"
#endif
#include "ops/gpu_info.h"
#include "transport/ucx/ucx_transport.h"

extern char** environ;

namespace strata::expert_parallel {

Status ValidateGroupOptions(const EpGroupOptions& o) {
  if (o.size < 1 || o.size > 64) return FlagError("ep", "must be in [1, 64]");
  if (o.transport != "inproc" && o.transport != "ucx" && o.transport != "nccl") {
    return FlagError("ep-transport", "must be inproc, ucx or nccl");
  }
#ifndef STRATA_WITH_NCCL
  if (o.transport == "nccl") {
    return FlagError("ep-transport", "nccl needs a build with CUDA and NCCL (this one has none)");
  }
#endif
  if (o.redundant_experts < 0) return FlagError("redundant-experts", "must be >= 0");
  if (o.eplb_window_steps < 0) return FlagError("ep-eplb-window", "must be >= 0 (0: off)");
  if (o.max_tokens_per_rank < 1) return FlagError("ep-max-tokens", "must be >= 1");
  if (o.timeout_ms < 1) return FlagError("ep-timeout-ms", "must be >= 1");
  if (o.runner.microbatch_min_tokens < 1) return FlagError("microbatch-min-tokens", "must be >= 1");
  return OkStatus();
}

StatusOr<EpOptions> MakeEpOptions(const model::ModelConfig& c, const EpGroupOptions& g, int rank) {
  STRATA_RETURN_IF_ERROR(ValidateGroupOptions(g));
  if (!c.IsMoe()) return InvalidArgumentError("--ep: the model has no MoE layers");
  EpOptions o;
  o.rank = rank;
  o.size = g.size;
  o.num_layers = static_cast<int>(c.NumLayers());
  o.num_experts = static_cast<int>(c.num_experts);
  o.top_k = static_cast<int>(c.num_experts_per_tok);
  o.hidden = c.hidden_size;
  o.max_tokens_per_rank = g.max_tokens_per_rank;
  o.dispatch_dtype = g.dispatch_dtype;
  o.num_streams = g.runner.microbatch ? 2 : 1;
  o.timeout_ms = g.timeout_ms;
  o.redundant_experts = g.redundant_experts;
  o.eplb_window_steps = g.eplb_window_steps;
  if ((o.num_experts + o.redundant_experts) % o.size != 0) {
    return FlagError("redundant-experts", std::to_string(o.num_experts) + " experts + " +
                                              std::to_string(o.redundant_experts) +
                                              " redundant slots must be a multiple of --ep " +
                                              std::to_string(o.size));
  }
  if (!g.placement_file.empty()) {
    STRATA_ASSIGN_OR_RETURN(Placement p, Placement::LoadFile(g.placement_file));
    o.placement = std::make_shared<const Placement>(std::move(p));
  }
  return o;
}

StatusOr<std::unique_ptr<transport::Transport>> MakeTransport(
    const EpGroupOptions& options, std::shared_ptr<transport::InprocFabric> fabric) {
  if (options.size == 1) return std::unique_ptr<transport::Transport>();
  if (options.transport == "inproc") return transport::NewInprocTransport(std::move(fabric));
  transport::UcxOptions uo;
  uo.tls = options.ucx_tls;
  STRATA_ASSIGN_OR_RETURN(auto t, transport::UcxTransport::Create(uo));
  return std::unique_ptr<transport::Transport>(std::move(t));
}

namespace {

std::string ListenAddress(const EpGroupOptions& o, int rank) {
  return o.transport == "inproc" ? "ep-rank" + std::to_string(rank) + ":0" : "127.0.0.1:0";
}

// The GPU a rank's NCCL communicator uses: its runner's (RankRunnerOptions turns "cuda" on
// several GPUs into "cuda:N"), else (a CPU rank) rank mod count.
int GpuOfRank(const model::RunnerOptions& rank_options, int rank) {
  if (auto gpu = model::ParseCudaDevice(rank_options.device); gpu.ok()) return *gpu;
  const int gpus = static_cast<int>(ops::QueryGpus().devices.size());
  return gpus > 0 ? rank % gpus : 0;
}

}  // namespace

StatusOr<std::unique_ptr<EpEndpoint>> MakeEndpoint(const EpOptions& eo, const EpGroupOptions& g,
                                                   std::shared_ptr<transport::InprocFabric> fabric,
                                                   int gpu) {
  if (g.transport != "nccl") {
    STRATA_ASSIGN_OR_RETURN(auto t, MakeTransport(g, std::move(fabric)));
    return EpEndpoint::Create(eo, std::move(t));
  }
#ifdef STRATA_WITH_NCCL
  NcclCollectiveOptions no;
  no.rank = eo.rank;
  no.size = eo.size;
  no.device = gpu;
  const WireShape shape{eo.size,  eo.num_experts,         eo.hidden,
                        eo.top_k, eo.max_tokens_per_rank, eo.dispatch_dtype};
  no.max_slot_bytes = std::max(shape.DispatchCapacity(), shape.CombineCapacity());
  no.timeout_ms = eo.timeout_ms;
  if (eo.size > 1) {
    if (g.nccl_id.empty()) return FlagError("ep-nccl-id", "rank 0's NCCL id is required");
    std::optional<std::string> id = HexDecode(g.nccl_id);
    if (!id) return FlagError("ep-nccl-id", "must be hexadecimal");
    no.unique_id = std::move(*id);
  }
  auto collective = CreateNcclCollective(no);
  if (!collective.ok()) {
    return collective.status().WithContext("--ep-transport nccl, rank " + std::to_string(eo.rank) +
                                           " on GPU " + std::to_string(gpu));
  }
  return EpEndpoint::CreateWithCollective(eo, std::move(*collective));
#else
  (void)gpu;
  return FlagError("ep-transport", "nccl needs a build with CUDA and NCCL (this one has none)");
#endif
}

EpGroupOptions EffectiveGroupOptions(EpGroupOptions options) {
  if (options.size == 1 || options.transport == "nccl") options.runner.microbatch = false;
  return options;
}

model::RunnerOptions RankRunnerOptions(model::RunnerOptions options, int rank) {
  if (options.device == "cuda") {
    const int gpus = static_cast<int>(ops::QueryGpus().devices.size());
    if (gpus > 1) options.device = "cuda:" + std::to_string(rank % gpus);
  }
  return options;
}

StatusOr<std::vector<std::unique_ptr<EpRunner>>> CreateThreadGroup(
    const std::string& model_dir, const model::RunnerOptions& runner_options,
    const EpGroupOptions& group_options) {
  const EpGroupOptions options = EffectiveGroupOptions(group_options);
  STRATA_ASSIGN_OR_RETURN(model::ModelConfig config, model::LoadModelConfig(model_dir));
  if (options.transport == "nccl" && options.size > 1) {
    return FlagError("ep-transport", "nccl ranks run as processes, one GPU each (not as threads)");
  }
  auto fabric = transport::NewInprocFabric();
  std::vector<std::unique_ptr<EpEndpoint>> eps;
  std::string leader;
  for (int r = 0; r < options.size; ++r) {
    STRATA_ASSIGN_OR_RETURN(EpOptions eo, MakeEpOptions(config, options, r));
    STRATA_ASSIGN_OR_RETURN(
        auto ep,
        MakeEndpoint(eo, options, fabric, GpuOfRank(RankRunnerOptions(runner_options, r), r)));
    if (options.size > 1) {
      STRATA_ASSIGN_OR_RETURN(std::string address, ep->Listen(ListenAddress(options, r)));
      if (r == 0) leader = address;
    }
    eps.push_back(std::move(ep));
  }
  std::vector<Status> st(options.size);
  std::vector<std::thread> threads;
  for (int r = 0; r < options.size; ++r) {
    threads.emplace_back([&, r] { st[r] = eps[r]->Join(leader); });
  }
  for (auto& t : threads) t.join();
  for (const Status& s : st) STRATA_RETURN_IF_ERROR(s);
  std::vector<std::unique_ptr<EpRunner>> runners;
  for (int r = 0; r < options.size; ++r) {
    STRATA_ASSIGN_OR_RETURN(auto runner,
                            EpRunner::Create(model_dir, RankRunnerOptions(runner_options, r),
                                             std::move(eps[r]), options.runner));
    runners.push_back(std::move(runner));
  }
  return runners;
}

StatusOr<LeaderGroup> StartLeader(const std::string& model_dir,
                                  const model::RunnerOptions& runner_options,
                                  const EpGroupOptions& group_options,
                                  const std::vector<std::string>& worker_argv_prefix) {
  const EpGroupOptions options = EffectiveGroupOptions(group_options);
  STRATA_ASSIGN_OR_RETURN(model::ModelConfig config, model::LoadModelConfig(model_dir));
  STRATA_ASSIGN_OR_RETURN(EpOptions eo, MakeEpOptions(config, options, 0));
  if (options.transport == "inproc") {
    return FlagError("ep-transport",
                     "worker processes need ucx or nccl (inproc runs ranks as "
                     "threads)");
  }
  const bool nccl = options.transport == "nccl";
  if (nccl) {
    const size_t gpus = ops::QueryGpus().devices.size();
    if (gpus < static_cast<size_t>(options.size)) {
      return FlagError("ep-transport", "nccl needs one GPU per rank: --ep " +
                                           std::to_string(options.size) + " on " +
                                           std::to_string(gpus) + " GPU(s) (ucx has no limit)");
    }
  }
  EpGroupOptions leader_options = options;
  std::unique_ptr<EpEndpoint> ep;
  LeaderGroup group;
  std::string leader = "nccl";  // over NCCL the workers need rank 0's id, not its address
  if (nccl) {
#ifdef STRATA_WITH_NCCL
    if (options.size > 1) {
      STRATA_ASSIGN_OR_RETURN(std::string id, NewNcclUniqueId());
      leader_options.nccl_id = HexEncode(id);
    }
#endif
  } else {
    STRATA_ASSIGN_OR_RETURN(ep, MakeEndpoint(eo, options, nullptr, 0));
    if (options.size > 1) {
      STRATA_ASSIGN_OR_RETURN(leader, ep->Listen(ListenAddress(options, 0)));
    }
  }
  for (int r = 1; r < options.size; ++r) {
    std::vector<std::string> args = worker_argv_prefix;
    args.insert(args.end(), {"--ep-rank", std::to_string(r), "--ep-leader", leader});
    if (nccl) args.insert(args.end(), {"--ep-nccl-id", leader_options.nccl_id});
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    // A worker's stdout is the leader's stderr: the leader's stdout may carry --json output.
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);
    pid_t pid = 0;
    int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      for (pid_t p : group.workers) kill(p, SIGKILL);
      (void)WaitForWorkers(group.workers, 1000);
      return InternalError("--ep: cannot start worker " + args[0] + ": " + std::strerror(rc));
    }
    group.workers.push_back(pid);
  }
  Status joined = OkStatus();
  if (nccl) {  // NCCL's init waits for every rank (up to the timeout)
    auto made = MakeEndpoint(eo, leader_options, nullptr,
                             GpuOfRank(RankRunnerOptions(runner_options, 0), 0));
    if (made.ok()) {
      ep = std::move(*made);
    } else {
      joined = made.status();
    }
  } else {
    joined = ep->Join(leader);
  }
  if (joined.ok()) {
    auto runner = EpRunner::Create(model_dir, RankRunnerOptions(runner_options, 0), std::move(ep),
                                   options.runner);
    if (runner.ok()) {
      group.runner = std::move(*runner);
      return group;
    }
    joined = runner.status();
  }
  for (pid_t p : group.workers) kill(p, SIGKILL);
  (void)WaitForWorkers(group.workers, 1000);
  return joined;
}

StatusOr<std::unique_ptr<EpRunner>> JoinAsWorker(const std::string& model_dir,
                                                 const model::RunnerOptions& runner_options,
                                                 const EpGroupOptions& group_options, int rank,
                                                 const std::string& leader_address) {
  const EpGroupOptions options = EffectiveGroupOptions(group_options);
  if (rank < 1 || rank >= options.size) return FlagError("ep-rank", "must be in [1, --ep)");
  STRATA_ASSIGN_OR_RETURN(model::ModelConfig config, model::LoadModelConfig(model_dir));
  STRATA_ASSIGN_OR_RETURN(EpOptions eo, MakeEpOptions(config, options, rank));
  const model::RunnerOptions rank_options = RankRunnerOptions(runner_options, rank);
  STRATA_ASSIGN_OR_RETURN(auto ep,
                          MakeEndpoint(eo, options, nullptr, GpuOfRank(rank_options, rank)));
  if (options.transport != "nccl") {
    STRATA_RETURN_IF_ERROR(ep->Listen(ListenAddress(options, rank)).status());
    STRATA_RETURN_IF_ERROR(ep->Join(leader_address));
  }
  return EpRunner::Create(model_dir, rank_options, std::move(ep), options.runner);
}

Status WaitForWorkers(const std::vector<pid_t>& workers, int64_t timeout_ms) {
  const auto deadline = MonoClock::now() + std::chrono::milliseconds(timeout_ms);
  std::string failed;
  for (pid_t pid : workers) {
    int status = 0;
    while (true) {
      pid_t r = waitpid(pid, &status, WNOHANG);
      if (r == pid) break;
      if (r < 0) {
        status = -1;
        break;
      }
      if (MonoClock::now() > deadline) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        failed += " " + std::to_string(pid) + " (killed after the timeout)";
        status = 0;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (status != 0)
      failed += " " + std::to_string(pid) + " (status " + std::to_string(status) + ")";
  }
  return failed.empty() ? OkStatus() : InternalError("EP worker(s) failed:" + failed);
}

namespace {

// Tokens each rank received in `layer`; empty when the layer received none.
std::vector<double> LayerLoads(const EpStats& s, const EpOptions& o, int layer) {
  std::vector<double> loads(o.size);
  int64_t sum = 0;
  for (int r = 0; r < o.size; ++r) {
    loads[r] = static_cast<double>(s.Received(layer, r, o.size));
    sum += s.Received(layer, r, o.size);
  }
  if (sum == 0) loads.clear();
  return loads;
}

}  // namespace

double WorstLoadRatio(const EpStats& s, const EpOptions& o) {
  double worst = 1.0;
  for (int l = 0; l < o.num_layers; ++l) {
    const std::vector<double> loads = LayerLoads(s, o, l);
    if (!loads.empty()) worst = std::max(worst, MaxMeanRatio(loads));
  }
  return worst;
}

nlohmann::json StatsJson(const EpRunnerStats& s, const EpOptions& o) {
  nlohmann::json layers = nlohmann::json::array();
  double worst = 1.0;
  for (int l = 0; l < o.num_layers; ++l) {
    const std::vector<double> loads = LayerLoads(s.ep, o, l);
    if (loads.empty()) continue;
    double ratio = MaxMeanRatio(loads);
    worst = std::max(worst, ratio);
    layers.push_back({{"layer", l}, {"received_per_rank", loads}, {"max_mean_ratio", ratio}});
  }
  const double rounds = std::max<int64_t>(1, s.ep.rounds);
  return {{"ep", o.size},
          {"dispatch_dtype", std::string(WireDTypeName(o.dispatch_dtype))},
          {"steps", s.steps},
          {"microbatched_steps", s.microbatched_steps},
          {"moe_rounds", s.ep.rounds},
          {"dispatch_us_per_round", s.ep.dispatch_ns / rounds / 1e3},
          {"combine_us_per_round", s.ep.combine_ns / rounds / 1e3},
          {"wait_us_per_round", s.ep.wait_ns / rounds / 1e3},
          {"dispatch_bytes", s.ep.dispatch_bytes},
          {"combine_bytes", s.ep.combine_bytes},
          {"local_bytes", s.ep.local_bytes},
          {"max_mean_load_ratio", worst},
          {"overlap_fraction", s.overlap.overlap()},
          {"comm_wait_ms", s.overlap.waiting_ns / 1e6},
          {"exposed_wait_ms", s.overlap.exposed_ns / 1e6},
          {"layers", layers}};
}

}  // namespace strata::expert_parallel
