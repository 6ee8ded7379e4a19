// `strata serve`: the OpenAI-compatible server with the generation engine in one process
// (embedded mode). Flags map to server::ServeConfig; each has a STRATA_* variable.
#include "apps/strata/commands.h"
#include "common/config.h"
#include "server/serve.h"

namespace strata::apps {

Command ServeCommand() {
  return {"serve", "Serve a model over the OpenAI API (server and engine in one process)",
          [](CLI::App& app) -> std::function<int()> {
            auto cfg = std::make_shared<server::ServeConfig>();
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
            AddFlag(app, "kv-cache-bytes", &cfg->kv_cache_bytes, "Memory for the KV cache");
            AddFlag(app, "block-size", &cfg->block_size, "Tokens per KV block");
            AddFlag(app, "device", &cfg->device,
                    "Where the model runs: cpu, cuda (GPU 0) or cuda:N (needs a CUDA build)");
            AddFlag(app, "threads", &cfg->threads, "Model compute threads (0: every core)");
            AddFlag(app, "http-threads", &cfg->http_threads, "HTTP I/O threads");
            AddFlag(app, "api-key", &cfg->api_key,
                    "Require 'Authorization: Bearer <key>' on /v1/* (empty: no key)");
            AddFlag(app, "request-timeout", &cfg->request_timeout_s,
                    "Seconds a request may take before it ends with an error (0: no limit)");
            AddFlag(app, "max-body-bytes", &cfg->max_body_bytes,
                    "Largest request body accepted (413 beyond)");
            AddFlag(app, "drain-timeout", &cfg->drain_timeout_s,
                    "Seconds SIGTERM waits for requests in flight before aborting them");
            AddFlag(app, "enable-prefix-caching", &cfg->enable_prefix_caching,
                    "Reuse the KV of cached prompt prefixes (true/false)");
            return [cfg] { return server::RunServe(*cfg); };
          }};
}

}  // namespace strata::apps
