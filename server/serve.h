// `strata serve` in embedded mode: the HTTP server, the OpenAI API and the generation engine
// in one process (DESIGN.md §3). With `router_listen` set it is instead the server role of
// disaggregated serving (`strata server`): the same HTTP API in front of a ClusterRouter that
// prefill and decode instances register with. The HTTP port opens first (/health answers 503 while
// the model loads); SIGTERM or SIGINT drains: stop accepting, let requests in flight finish (up to
// drain_timeout_s), abort the rest, exit 0.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace strata::server {

struct ServeConfig {
  std::string model_dir;
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string served_model_name;  // default: the model directory's last component
  int max_num_seqs = 64;
  int max_model_len = 0;  // 0: the model's max_position_embeddings
  int max_num_batched_tokens = 512;
  int max_waiting = 1024;
  int64_t kv_cache_bytes = int64_t{1} << 30;
  int block_size = 16;
  std::string device = "cpu";  // where the model runs: "cpu", "cuda" or "cuda:N"
  int threads = 0;             // model threads (CPU); 0: every core
  int http_threads = 2;        // I/O threads
  std::string api_key;
  double request_timeout_s = 0;  // 0: none
  int64_t max_body_bytes = 32 << 20;
  double drain_timeout_s = 30;
  bool enable_prefix_caching = true;
  // Server role: the transport address instances register at ("" = embedded mode), and the
  // UCX transports to use ("" = UCX_TLS or UCX's default).
  std::string router_listen;
  std::string ucx_tls;
  std::string routing_policy = "load";  // server role: ParseRoutingPolicy's names
};

// The model's name when none is given: the checkpoint directory's last component. Instances
// register under it and the router checks that it matches its own.
std::string DefaultModelName(const std::string& dir);

// Checks the settings (errors name the flag). Pure: --device is checked for its form only.
Status ValidateServeConfig(const ServeConfig& config);

// Checks that --device can run here: a CUDA device needs a build with CUDA and that GPU
// present. kInvalidArgument naming --device otherwise.
Status CheckServeDevice(const std::string& device);

// Runs until SIGTERM/SIGINT (returns 0) or a start-up failure (prints it, returns 1).
int RunServe(const ServeConfig& config);

}  // namespace strata::server
