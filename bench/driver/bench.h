// `strata bench`: the whole load test behind the command line. The command parses flags into a
// BenchConfig and calls RunBench(); everything else (workload, warmup, runs, sweeps, reports)
// happens here.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/driver/workload.h"
#include "common/status.h"

namespace strata::bench {

struct BenchConfig {
  // Target.
  std::string base_url = "http://127.0.0.1:8000";
  std::string model;  // "" = the first model the server's /v1/models lists
  std::string endpoint = "chat";
  std::string api_key;
  std::string tokenizer;  // directory; "" = --model when that is a directory
  // Workload (dataset, lengths, prefix/trace settings, seed). num_requests is set from below.
  WorkloadOptions workload;
  int num_prompts = 1000;
  double duration_s = 0;  // > 0: run for this long, cycling through num_prompts prompts
  int warmup = 0;
  bool ignore_eos = false;
  std::string extra_body;  // JSON object merged into every request body
  // Load.
  std::string request_rate = "inf";  // requests/s or "inf"
  double burstiness = 1.0;
  int max_concurrency = 0;
  std::string sweep_rates;        // "1,2,4"
  std::string sweep_concurrency;  // "1,8,32"
  std::string sweep_out = "bench-sweep";
  // Faults.
  double abort_fraction = 0;
  double timeout_s = 0;
  // Metrics and output.
  std::vector<std::string> goodput;  // "ttft:MS" "tpot:MS" "e2el:MS"
  std::string result_json;
  std::string requests_jsonl;
  int num_io_threads = 1;
  bool kernel_timestamps = true;
  std::string progress = "auto";  // auto | tty | plain | off
  double progress_interval_s = 5;
};

// Runs it. Prints progress to stderr and the summary table(s) to `out`. Errors name the flag.
Status RunBench(const BenchConfig& config, std::FILE* out);

// "1,2.5,inf" -> {1, 2.5, inf}; each > 0.
StatusOr<std::vector<double>> ParseRateList(const std::string& text);

}  // namespace strata::bench
