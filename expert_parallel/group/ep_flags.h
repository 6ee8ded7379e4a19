// The EP flags shared by `strata generate --ep` and `strata ep-worker` (and later prefill/decode):
// declared once, parsed into EpGroupOptions, and re-serialized for spawned worker processes.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "expert_parallel/group/ep_group.h"

namespace strata::expert_parallel {

struct EpFlags {
  int ep = 0;  // 0: off (the plain runner); >= 1: an EP group of that many ranks
  std::string transport = "ucx";
  std::string ucx_tls;
  std::string dispatch = "int8";
  int redundant_experts = 0;
  std::string placement;
  int eplb_window = 0;
  int64_t max_tokens = 512;
  int64_t timeout_ms = 30000;
  bool no_microbatch = false;
  int64_t microbatch_min_tokens = 512;
  std::string stats_out;  // write the group's stats JSON here
  std::string nccl_id;    // set by rank 0 for its workers (--ep-transport nccl)
};

void AddEpFlags(CLI::App& app, EpFlags* flags);
// kInvalidArgument naming the flag.
StatusOr<EpGroupOptions> ToGroupOptions(const EpFlags& flags);
// The flags again, as arguments for a worker process.
std::vector<std::string> EpFlagArgs(const EpFlags& flags);

}  // namespace strata::expert_parallel
