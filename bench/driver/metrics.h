// Aggregate metrics of a run, defined as `vllm bench serve` defines them:
//   TTFT   first token chunk - send, per successful request
//   TPOT   (E2E - TTFT) / (output tokens - 1), per successful request with > 1 output token
//   ITL    every gap between consecutive token chunks, over all successful requests
//   E2EL   end - send, per successful request
//   throughputs: totals over successful requests / duration (first release to last end)
//   goodput: successful requests meeting every given SLO (ttft, tpot, e2el), per second
// Percentiles interpolate linearly between order statistics (numpy's default); std is the
// population standard deviation. Aborted requests (the driver's own fault injection) count as
// neither completed nor failed. SLO attainment is good / (completed + failed).
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "bench/driver/request.h"
#include "common/status.h"

namespace strata::bench {

// Service-level objectives in ms; 0 = not set.
struct Slo {
  double ttft_ms = 0;
  double tpot_ms = 0;
  double e2el_ms = 0;
  bool any() const { return ttft_ms > 0 || tpot_ms > 0 || e2el_ms > 0; }
  bool Met(const RequestRecord& r) const;
};

// Parses "ttft:MS", "tpot:MS", "e2el:MS" items (as `--goodput ttft:200 tpot:50`).
StatusOr<Slo> ParseSlo(const std::vector<std::string>& items);

struct Distribution {
  int64_t count = 0;
  double mean = 0, median = 0, std = 0, p90 = 0, p99 = 0, p999 = 0, min = 0, max = 0;
};

// Linear-interpolation percentile of sorted values, p in [0, 100]; 0 when empty.
double Percentile(const std::vector<double>& sorted, double p);
Distribution Summarize(std::vector<double> values);

struct Summary {
  int64_t completed = 0;
  int64_t failed = 0;
  int64_t aborted = 0;
  int64_t total_input_tokens = 0;   // spec input lengths of completed requests
  int64_t total_output_tokens = 0;  // output tokens of completed requests
  int64_t total_cached_tokens = 0;  // usage cached_tokens of completed requests that report it
  int64_t num_good = 0;             // completed requests meeting the SLO
  double duration_s = 0;
  double request_throughput = 0;
  double request_goodput = 0;
  double output_throughput = 0;
  double total_token_throughput = 0;
  double slo_attainment = 0;  // good / (completed + failed); no SLO: every completion is good
  double max_output_tokens_per_s = 0;   // busiest whole second (token chunks)
  int64_t max_concurrent_requests = 0;  // most requests in flight at once
  Distribution ttft_ms, tpot_ms, itl_ms, e2el_ms;
  std::vector<std::string> errors;  // distinct error messages (first 20)
};

Summary Summarize(const std::deque<RequestRecord>& records, double duration_s, const Slo& slo);

}  // namespace strata::bench
