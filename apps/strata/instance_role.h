// The prefill and decode roles of disaggregated serving as processes (`strata prefill`,
// `strata decode`): flags, model loading, UCX, and the life of the process (run until SIGTERM /
// SIGINT, then drain and stop).
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "expert_parallel/group/ep_flags.h"

namespace strata::apps {

struct InstanceRoleFlags {
  std::string model;
  std::string router;  // the server's --router-listen address
  std::string listen = "127.0.0.1:0";
  std::string instance_id;  // default: <role>-<host>-<pid>
  std::string device = "cpu";
  int threads = 0;
  int64_t kv_cache_bytes = int64_t{1} << 30;
  int block_size = 16;
  int max_num_seqs = 64;
  int max_num_batched_tokens = 512;
  int max_model_len = 0;
  bool enable_prefix_caching = true;
  std::string ucx_tls;
  std::string kvcache;        // prefill: comma-separated pool addresses
  int admission_threads = 4;  // prefill: requests admitted at once
  double drain_timeout_s = 30;
  expert_parallel::EpFlags ep;  // --ep N: this instance is an EP group of N ranks
  // Set on the rank processes (1..N-1) that rank 0 of a data-parallel EP group starts.
  int ep_rank = 0;
  std::string ep_leader;  // rank 0's EP address
};

// Declares the flags on `app`; `prefill` adds the prefill-only ones.
void AddInstanceRoleFlags(CLI::App& app, InstanceRoleFlags* flags, bool prefill);
// Runs the role until SIGTERM/SIGINT. Exit codes: 0 stopped cleanly, 1 failed, 2 bad flags.
int RunInstanceRole(const InstanceRoleFlags& flags, bool prefill);

}  // namespace strata::apps
