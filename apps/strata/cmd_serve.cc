// `strata serve`: the OpenAI-compatible server with the generation engine in one process
// (embedded mode), or with --disaggregated every role as its own process under a supervisor.
// `strata server`: the server role alone (instances register with it).
// Flags map to server::ServeConfig; each has a STRATA_* variable.
#include <iostream>

#include "apps/strata/commands.h"
#include "apps/strata/disaggregated.h"
#include "common/config.h"
#include "common/log.h"
#include "server/serve.h"

namespace strata::apps {
namespace {

void AddServeFlags(CLI::App& app, server::ServeConfig* cfg) {
  AddFlag(app, "model", &cfg->model_dir,
          "Model directory (config.json, *.safetensors, tokenizer.json)")
      ->required();
  AddFlag(app, "host", &cfg->host, "Address to listen on");
  AddFlag(app, "port", &cfg->port, "Port to listen on (0: any free port)");
  AddFlag(app, "served-model-name", &cfg->served_model_name,
          "Model id clients use (default: the model directory's name)");
  AddFlag(app, "max-num-seqs", &cfg->max_num_seqs, "Sequences in a batch at most");
  AddFlag(app, "max-model-len", &cfg->max_model_len,
          "Context length: prompt + output tokens (0: the model's)");
  AddFlag(app, "max-num-batched-tokens", &cfg->max_num_batched_tokens,
          "Tokens per engine step (decode tokens + prefill chunks)");
  AddFlag(app, "max-waiting", &cfg->max_waiting,
          "Requests that may wait for admission; beyond that 429");
  AddByteSizeFlag(app, "kv-cache-bytes", &cfg->kv_cache_bytes, "Memory for the KV cache");
  AddFlag(app, "block-size", &cfg->block_size, "Tokens per KV block");
  AddFlag(app, "device", &cfg->device,
          "Where the model runs: cpu, cuda (GPU 0) or cuda:N (needs a CUDA build)");
  AddFlag(app, "threads", &cfg->threads, "Model compute threads (0: every core)");
  AddFlag(app, "http-threads", &cfg->http_threads, "HTTP I/O threads");
  AddFlag(app, "api-key", &cfg->api_key,
          "Require 'Authorization: Bearer <key>' on /v1/* (empty: no key)");
  AddFlag(app, "request-timeout", &cfg->request_timeout_s,
          "Seconds a request may take before it ends with an error (0: no limit)");
  AddByteSizeFlag(app, "max-body-bytes", &cfg->max_body_bytes,
                  "Largest request body accepted (413 beyond)");
  AddFlag(app, "drain-timeout", &cfg->drain_timeout_s,
          "Seconds SIGTERM waits for requests in flight before aborting them");
  AddFlag(app, "enable-prefix-caching", &cfg->enable_prefix_caching,
          "Reuse the KV of cached prompt prefixes (true/false)");
  AddFlag(app, "ucx-tls", &cfg->ucx_tls,
          "Disaggregated: UCX transports between roles, as UCX_TLS (e.g. tcp or sm,tcp)");
  AddFlag(app, "routing-policy", &cfg->routing_policy,
          "Disaggregated: how the router picks instances: load (least loaded, cache-aware "
          "ties), round-robin or random");
}

}  // namespace

Command ServeCommand() {
  return {"serve",
          "Serve a model over the OpenAI API (embedded; --disaggregated: every role a process)",
          [](CLI::App& app) -> std::function<int()> {
            auto cfg = std::make_shared<server::ServeConfig>();
            auto d = std::make_shared<DisaggregatedFlags>();
            AddServeFlags(app, cfg.get());
            AddDisaggregatedFlags(app, d.get());
            return [cfg, d] {
              if (d->enabled && cfg->device != "cpu") {
                // The prefill/decode roles run on the CPU backend for now.
                std::cerr << "strata serve: --device: " << cfg->device
                          << " is for embedded mode; --disaggregated roles run on cpu\n";
                return 2;
              }
              return d->enabled ? RunDisaggregated(*cfg, *d) : server::RunServe(*cfg);
            };
          }};
}

Command ServerCommand() {
  return {"server",
          "Run the server role: the OpenAI API and the router prefill/decode instances join",
          [](CLI::App& app) -> std::function<int()> {
            auto cfg = std::make_shared<server::ServeConfig>();
            cfg->router_listen = "127.0.0.1:7100";
            AddServeFlags(app, cfg.get());
            AddFlag(app, "router-listen", &cfg->router_listen,
                    "Transport address prefill and decode instances register at");
            return [cfg] {
              log::SetIdentity("server", 0);
              return server::RunServe(*cfg);
            };
          }};
}

}  // namespace strata::apps
