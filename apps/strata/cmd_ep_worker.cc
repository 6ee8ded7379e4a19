// `strata ep-worker`: one rank (>= 1) of an expert-parallel group, started by the rank 0
// process of `strata generate --ep N`: joins it over UCX and serves its MoE layers until rank 0
// stops the group. (The ranks of `strata prefill|decode --ep N` are full instances instead.)
#include <iostream>

#include "apps/strata/commands.h"
#include "common/config.h"
#include "common/thread_pool.h"
#include "expert_parallel/group/ep_generate.h"

namespace strata::apps {
namespace {

struct EpWorkerFlags {
  std::string model;
  int rank = 0;
  std::string leader;
  std::string device = "cpu";
  int threads = 1;
  int kv_block_size = 16;
  expert_parallel::EpFlags ep;
};

int RunEpWorkerCommand(const EpWorkerFlags& f) {
  model::RunnerOptions ro;
  ro.device = f.device;
  ro.num_threads = f.threads == 0 ? DefaultThreadCount() : f.threads;
  ro.kv_block_size = f.kv_block_size;
  ro.num_kv_blocks = 1;  // the worker serves no sequence of its own
  Status st = expert_parallel::RunEpWorker(f.model, ro, f.ep, f.rank, f.leader);
  if (!st.ok()) {
    std::cerr << "strata ep-worker (rank " << f.rank << "): " << st.message() << "\n";
    return st.code() == StatusCode::kInvalidArgument ? 2 : 1;
  }
  return 0;
}

}  // namespace

Command EpWorkerCommand() {
  return {"ep-worker", "One rank of an expert-parallel group (started by rank 0)",
          [](CLI::App& app) -> std::function<int()> {
            auto f = std::make_shared<EpWorkerFlags>();
            AddFlag(app, "model", &f->model, "Checkpoint directory")->required();
            AddFlag(app, "ep-rank", &f->rank, "This rank, in [1, --ep)")->required();
            AddFlag(app, "ep-leader", &f->leader, "Rank 0's address (host:port)")->required();
            AddFlag(app, "device", &f->device, "Where the rank's forward runs: cpu, cuda, cuda:N");
            AddFlag(app, "threads", &f->threads, "Compute threads (0: all cores)");
            AddFlag(app, "kv-block-size", &f->kv_block_size, "Tokens per KV block");
            expert_parallel::AddEpFlags(app, &f->ep);
            return [f] { return RunEpWorkerCommand(*f); };
          }};
}

}  // namespace strata::apps
