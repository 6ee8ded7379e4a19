// `strata serve --disaggregated`: every role of disaggregated serving (server, KV pools,
// prefill and decode instances) as its own process on this host, under one supervisor
// (supervisor/): SIGTERM or Ctrl-C stops them all; a role that dies is restarted.
#pragma once

#include <CLI/CLI.hpp>

#include "server/serve.h"

namespace strata::apps {

struct DisaggregatedFlags {
  bool enabled = false;
  int num_prefill = 1;
  int num_decode = 1;
  int num_kvcache = 1;
  int64_t kvcache_capacity_bytes = int64_t{1} << 30;
  int router_port = 0;  // 0: a free port
  int prefill_ep = 0;   // > 1: each prefill instance is an EP group of that many ranks
  int decode_ep = 0;
  // Compute threads of each prefill / decode instance (0: --threads, or when that is 0 too the
  // cores shared evenly among the instances).
  int prefill_threads = 0;
  int decode_threads = 0;
  // KV cache of each prefill / decode instance, each EP rank's (0: --kv-cache-bytes).
  int64_t prefill_kv_cache_bytes = 0;
  int64_t decode_kv_cache_bytes = 0;
  std::string ep_dispatch_dtype;  // passed to the EP groups ("" = their default, int8)
};

void AddDisaggregatedFlags(CLI::App& app, DisaggregatedFlags* flags);
// Exit codes: 0 stopped by a signal, 1 a role crash-looped or failed to start, 2 bad flags.
int RunDisaggregated(const server::ServeConfig& serve, const DisaggregatedFlags& flags);

}  // namespace strata::apps
