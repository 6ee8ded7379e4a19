// `strata bench`: load-tests an OpenAI-compatible server (Strata or any other) the way
// `vllm bench serve` does: streaming requests over HTTP/1.1 keep-alive, TTFT/TPOT/ITL/E2E
// percentiles, throughput and goodput, sweeps with a CSV and an SVG plot. See docs/bench.md.
// Exit codes: 0 ok (failed requests are reported, not fatal), 2 usage error naming the flag,
// 1 the run could not happen (server unreachable before the start, unreadable dataset, ...).
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "apps/strata/commands.h"
#include "bench/driver/bench.h"
#include "common/config.h"

namespace strata::apps {
namespace {

struct BenchFlags {
  bench::BenchConfig config;
  bool no_kernel_timestamps = false;
  CLI::Option* output_len = nullptr;
};

int RunBenchCommand(BenchFlags& flags) {
  bench::BenchConfig& c = flags.config;
  c.kernel_timestamps = !flags.no_kernel_timestamps;
  c.workload.output_len_fixed =
      flags.output_len->count() > 0 || std::getenv("STRATA_OUTPUT_LEN") != nullptr;
  std::signal(SIGPIPE, SIG_IGN);  // a server that hangs up must not kill the driver
  Status status = bench::RunBench(c, stdout);
  if (!status.ok()) {
    std::cerr << "strata bench: " << status.message() << "\n";
    return status.code() == StatusCode::kInvalidArgument ? 2 : 1;
  }
  return 0;
}

}  // namespace

Command BenchCommand() {
  return {
      "bench", "Load-test an OpenAI-compatible server (TTFT, TPOT, ITL, throughput, goodput)",
      [](CLI::App& app) -> std::function<int()> {
        auto f = std::make_shared<BenchFlags>();
        bench::BenchConfig& c = f->config;
        AddFlag(app, "base-url", &c.base_url,
                "Server URL, http://host:port (a /v1 suffix is fine)");
        AddFlag(app, "model", &c.model,
                "Model name to request (default: the first one /v1/models lists)");
        AddFlag(app, "endpoint", &c.endpoint, "chat (/v1/chat/completions) or completions")
            ->check(CLI::IsMember({"chat", "completions"}));
        AddFlag(app, "api-key", &c.api_key, "Sent as 'Authorization: Bearer KEY'");
        AddFlag(app, "tokenizer", &c.tokenizer,
                "Directory with the model's tokenizer.json (default: --model if a directory)");
        AddFlag(app, "dataset", &c.workload.dataset,
                "random, prefix, sharegpt:FILE (ShareGPT JSON) or trace:FILE (Mooncake JSONL)");
        AddFlag(app, "num-prompts", &c.num_prompts,
                "Requests to send (with --duration: prompts to cycle through)");
        AddFlag(app, "duration", &c.duration_s, "Run for this many seconds instead (0 = off)");
        AddFlag(app, "warmup", &c.warmup, "Requests sent first and left out of the metrics");
        AddFlag(app, "input-len", &c.workload.input_len,
                "Prompt tokens (random), suffix tokens (prefix)");
        f->output_len = AddFlag(app, "output-len", &c.workload.output_len,
                                "max_tokens per request (sharegpt: overrides the data set's)");
        AddFlag(app, "range-ratio", &c.workload.range_ratio,
                "Lengths uniform in [len*(1-r), len*(1+r)]");
        AddFlag(app, "prefix-groups", &c.workload.prefix_groups, "prefix: number of groups");
        AddFlag(app, "prefix-requests", &c.workload.prefix_requests, "prefix: requests per group");
        AddFlag(app, "prefix-len", &c.workload.prefix_len, "prefix: shared prefix tokens");
        AddFlag(app, "trace-block-size", &c.workload.trace_block_size,
                "trace: tokens per hash_ids block");
        AddFlag(app, "seed", &c.workload.seed, "Seed of prompts, lengths, arrivals and aborts");
        AddSwitch(app, "ignore-eos", &c.ignore_eos,
                  "Send ignore_eos: true so outputs have exactly max_tokens tokens");
        AddFlag(app, "extra-body", &c.extra_body,
                "JSON object merged into every request body, e.g. '{\"temperature\":0}'");
        AddFlag(app, "request-rate", &c.request_rate, "Requests per second, or inf");
        AddFlag(app, "burstiness", &c.burstiness,
                "Gamma shape of arrival gaps: 1 = Poisson, < 1 burstier, > 1 steadier");
        AddFlag(app, "max-concurrency", &c.max_concurrency,
                "Most requests in flight at once (0 = unlimited)");
        AddFlag(app, "sweep-rates", &c.sweep_rates, "Run one point per rate: r1,r2,...");
        AddFlag(app, "sweep-concurrency", &c.sweep_concurrency,
                "Run one point per max concurrency: c1,c2,...");
        AddFlag(app, "sweep-out", &c.sweep_out,
                "Sweep output folder (sweep.csv, sweep.svg, JSON per point)");
        AddFlag(app, "abort-fraction", &c.abort_fraction,
                "Fraction of requests that disconnect mid-stream (counted as aborted)");
        AddFlag(app, "timeout", &c.timeout_s, "Per-request timeout in seconds (0 = none)");
        AddFlag(app, "goodput", &c.goodput, "SLOs for goodput: ttft:MS tpot:MS e2el:MS");
        AddFlag(app, "result-json", &c.result_json, "Write the result JSON here");
        AddFlag(app, "requests-jsonl", &c.requests_jsonl, "Write one JSON line per request here");
        AddFlag(app, "num-io-threads", &c.num_io_threads, "Driver network threads");
        AddSwitch(app, "no-kernel-timestamps", &f->no_kernel_timestamps,
                  "Timestamp tokens when the read returns, not by the kernel's receive time");
        AddFlag(app, "progress", &c.progress, "auto, tty, plain or off")
            ->check(CLI::IsMember({"auto", "tty", "plain", "off"}));
        AddFlag(app, "progress-interval", &c.progress_interval_s,
                "Seconds between plain progress lines");
        return [f] { return RunBenchCommand(*f); };
      }};
}

}  // namespace strata::apps
