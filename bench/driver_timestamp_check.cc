// Measures the driver's own timestamping error: an in-process fake server writes every token at
// a known time and records it (MonotonicNanos() just before the write); the driver's time for
// the same token (first_token_ns + the ITL gaps) minus the server's write time is the error.
// It includes the loopback network path and, without kernel timestamps, the driver thread's
// wake-up latency. Prints one JSON object: error percentiles in microseconds per mode.
//
// Usage: driver_timestamp_check [--requests N] [--concurrency C] [--tokens T] [--gap-us G]
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "bench/driver/fake_server.h"
#include "bench/driver/metrics.h"
#include "bench/driver/runner.h"

namespace strata::bench {
namespace {

StatusOr<nlohmann::json> Measure(bool kernel_timestamps, int requests, int concurrency, int tokens,
                                 int64_t gap_us) {
  FakeServerOptions opt;
  opt.tokens_per_response = tokens;
  opt.first_token_delay_us = gap_us;
  opt.inter_token_delays_us = {gap_us};
  opt.record_send_times = true;
  STRATA_ASSIGN_OR_RETURN(auto server, FakeOpenAiServer::Start(opt));
  ApiTarget target;
  STRATA_RETURN_IF_ERROR(ParseBaseUrl(server->base_url(), &target));
  target.model = "fake";
  std::vector<RequestSpec> specs(1);
  specs[0].prompt = "a b c d";
  specs[0].input_len = 4;
  specs[0].output_len = tokens;
  STRATA_ASSIGN_OR_RETURN(auto runner, Runner::Create(target, 1, kernel_timestamps));
  RunPlan plan;
  plan.specs = &specs;
  plan.num_requests = requests;
  plan.request_rate = INFINITY;
  plan.max_concurrency = concurrency;
  STRATA_ASSIGN_OR_RETURN(RunResult result, runner->Run(plan));
  std::vector<double> errors_us;
  int64_t failed = 0;
  for (const auto& r : result.records) {
    if (!r.success) {
      ++failed;
      continue;
    }
    std::vector<int64_t> sent = server->SendTimes("bench-" + std::to_string(r.index));
    if (sent.size() != r.itl_ns.size() + 1) {
      ++failed;
      continue;
    }
    int64_t t = r.first_token_ns;
    for (size_t k = 0; k < sent.size(); ++k) {
      if (k > 0) t += r.itl_ns[k - 1];
      errors_us.push_back((t - sent[k]) * 1e-3);
    }
  }
  Distribution d = Summarize(errors_us);
  return nlohmann::json{{"kernel_timestamps", kernel_timestamps},
                        {"requests", requests},
                        {"failed", failed},
                        {"concurrency", concurrency},
                        {"tokens_per_request", tokens},
                        {"token_gap_us", gap_us},
                        {"events", d.count},
                        {"error_us_mean", d.mean},
                        {"error_us_median", d.median},
                        {"error_us_p90", d.p90},
                        {"error_us_p99", d.p99},
                        {"error_us_max", d.max},
                        {"error_us_min", d.min}};
}

}  // namespace
}  // namespace strata::bench

int main(int argc, char** argv) {
  CLI::App app{"Timestamping error of the strata bench driver", "driver_timestamp_check"};
  int requests = 400, concurrency = 32, tokens = 32;
  int64_t gap_us = 2000;
  app.add_option("--requests", requests);
  app.add_option("--concurrency", concurrency);
  app.add_option("--tokens", tokens);
  app.add_option("--gap-us", gap_us);
  CLI11_PARSE(app, argc, argv);
  nlohmann::json out = nlohmann::json::array();
  for (bool kernel : {true, false}) {
    auto m = strata::bench::Measure(kernel, requests, concurrency, tokens, gap_us);
    if (!m.ok()) {
      std::fprintf(stderr, "driver_timestamp_check: %s\n", m.status().ToString().c_str());
      return 1;
    }
    out.push_back(*m);
  }
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}
