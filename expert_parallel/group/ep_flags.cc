#include "expert_parallel/group/ep_flags.h"

#include "common/config.h"

namespace strata::expert_parallel {

void AddEpFlags(CLI::App& app, EpFlags* f) {
  AddFlag(app, "ep", &f->ep,
          "Expert-parallel ranks in this instance (0: off; 1: one rank through the EP dispatch "
          "path, the reference for comparing EP sizes)");
  AddFlag(app, "ep-transport", &f->transport,
          "ucx: one process per rank over UCX on 127.0.0.1; inproc: ranks as threads; nccl: one "
          "process per rank, exchanges as NCCL all-to-alls through the rank's GPU");
  AddFlag(app, "ep-ucx-tls", &f->ucx_tls, "UCX_TLS for the EP transport (e.g. sm,tcp or tcp)");
  AddFlag(app, "ep-dispatch-dtype", &f->dispatch,
          "Dispatch dtype: int8 (per-token scales) or bf16");
  AddFlag(app, "redundant-experts", &f->redundant_experts,
          "Extra expert slots for copies of hot experts");
  AddFlag(app, "ep-placement", &f->placement, "Initial expert placement (JSON file)");
  AddFlag(app, "ep-eplb-window", &f->eplb_window, "EPLB: re-plan every N steps (0: off)");
  AddFlag(app, "ep-max-tokens", &f->max_tokens, "Most tokens one rank passes to one MoE layer");
  AddFlag(app, "ep-timeout-ms", &f->timeout_ms, "Deadline of every wait for a peer rank");
  AddSwitch(app, "no-microbatch", &f->no_microbatch, "Turn microbatch pipelining off");
  AddFlag(app, "microbatch-min-tokens", &f->microbatch_min_tokens,
          "Microbatching is on when some rank's batch has at least this many tokens");
  AddFlag(app, "ep-stats-out", &f->stats_out, "Write the EP group's statistics (JSON) here");
  AddFlag(app, "ep-nccl-id", &f->nccl_id, "Rank 0's NCCL id (hex; rank 0 sets it for workers)")
      ->group("");  // internal: not listed in --help
}

StatusOr<EpGroupOptions> ToGroupOptions(const EpFlags& f) {
  EpGroupOptions g;
  g.size = f.ep;
  g.transport = f.transport;
  g.ucx_tls = f.ucx_tls;
  auto dtype = ParseWireDType(f.dispatch);
  if (!dtype.ok()) return FlagError("ep-dispatch-dtype", dtype.status().message());
  g.dispatch_dtype = *dtype;
  g.redundant_experts = f.redundant_experts;
  g.placement_file = f.placement;
  g.eplb_window_steps = f.eplb_window;
  g.max_tokens_per_rank = f.max_tokens;
  g.timeout_ms = f.timeout_ms;
  g.runner.microbatch = !f.no_microbatch;
  g.runner.microbatch_min_tokens = f.microbatch_min_tokens;
  g.nccl_id = f.nccl_id;
  STRATA_RETURN_IF_ERROR(ValidateGroupOptions(g));
  return g;
}

std::vector<std::string> EpFlagArgs(const EpFlags& f) {
  std::vector<std::string> a = {"--ep",
                                std::to_string(f.ep),
                                "--ep-transport",
                                f.transport,
                                "--ep-dispatch-dtype",
                                f.dispatch,
                                "--redundant-experts",
                                std::to_string(f.redundant_experts),
                                "--ep-eplb-window",
                                std::to_string(f.eplb_window),
                                "--ep-max-tokens",
                                std::to_string(f.max_tokens),
                                "--ep-timeout-ms",
                                std::to_string(f.timeout_ms),
                                "--microbatch-min-tokens",
                                std::to_string(f.microbatch_min_tokens)};
  if (!f.ucx_tls.empty()) a.insert(a.end(), {"--ep-ucx-tls", f.ucx_tls});
  if (!f.placement.empty()) a.insert(a.end(), {"--ep-placement", f.placement});
  if (f.no_microbatch) a.push_back("--no-microbatch");
  return a;
}

}  // namespace strata::expert_parallel
