// Runs a workload against a server: releases requests by the arrival process (or the trace's
// timestamps), keeps at most max_concurrency in flight, sends each on a keep-alive connection of
// one of a few io threads, and collects one RequestRecord per request.
//
// A Runner keeps its io threads and idle connections across Run() calls, so a warmup pass warms
// the connections of the measured pass. Not thread-safe: one Run() at a time, from one thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bench/driver/api_target.h"
#include "bench/driver/request.h"
#include "common/status.h"

namespace strata::bench {

struct RunPlan {
  // Requests are specs[i % specs.size()] for i = 0, 1, ...
  const std::vector<RequestSpec>* specs = nullptr;
  size_t first_spec = 0;     // offset into specs (the warmup uses the first ones)
  int64_t num_requests = 0;  // how many to send; with duration_s > 0, an upper bound (0 = none)
  double duration_s = 0;     // > 0: stop releasing requests after this long
  double request_rate = 0;   // requests/s; +inf = as fast as the concurrency allows
  double burstiness = 1.0;
  int max_concurrency = 0;    // 0 = unlimited
  double timeout_s = 0;       // per request, 0 = none
  double abort_fraction = 0;  // this fraction of requests disconnects after 1+ token chunks
  uint64_t seed = 0;
  bool use_spec_arrivals = false;            // follow RequestSpec::arrival_s (traces)
  std::string request_id_prefix = "bench-";  // X-Request-Id is this + the request index
};

// Counters a progress display may read from another thread while Run() is going.
struct LiveStats {
  std::atomic<int64_t> released{0};
  std::atomic<int64_t> finished{0};
  std::atomic<int64_t> succeeded{0};
  std::atomic<int64_t> failed{0};
  std::atomic<int64_t> aborted{0};
  std::atomic<int64_t> output_tokens{0};
  std::atomic<int64_t> start_ns{0};
  // TTFTs of the finished successful requests, in ms.
  std::vector<double> TtftSnapshot() const;
  void AddTtft(double ms);
  void Reset();

 private:
  mutable std::mutex mu_;
  std::vector<double> ttfts_ms_;
};

struct RunResult {
  std::deque<RequestRecord> records;  // in release order
  int64_t start_ns = 0;               // first release
  int64_t end_ns = 0;                 // last request ended
  double DurationSeconds() const { return (end_ns - start_ns) * 1e-9; }
};

class Runner {
 public:
  // Resolves the server address and starts `num_io_threads` io threads. kernel_timestamps: see
  // StreamConnection.
  static StatusOr<std::unique_ptr<Runner>> Create(ApiTarget target, int num_io_threads,
                                                  bool kernel_timestamps = true);
  ~Runner();

  // Runs the plan to the end: every released request finished, failed, timed out or aborted.
  StatusOr<RunResult> Run(const RunPlan& plan);

  LiveStats& live();

  class Impl;

 private:
  explicit Runner(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata::bench
