// A live progress display for a run, on its own thread, reading Runner::live(). On a terminal it
// redraws one line a few times a second (bar, done/total, req/s, tok/s, p50 TTFT so far);
// otherwise it prints a plain line every `plain_interval_s` seconds.
#pragma once

#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>

#include "bench/driver/runner.h"

namespace strata::bench {

class ProgressReporter {
 public:
  // total: requests expected (0 when the run is by duration; then duration_s shows progress).
  ProgressReporter(const LiveStats& live, int64_t total, double duration_s, bool tty,
                   double plain_interval_s, std::FILE* out);
  ~ProgressReporter();  // stops and, on a terminal, ends the line
  ProgressReporter(const ProgressReporter&) = delete;
  ProgressReporter& operator=(const ProgressReporter&) = delete;

  // The line as it would be drawn now (without '\r' or '\n').
  std::string Line() const;

 private:
  void Loop();

  const LiveStats& live_;
  int64_t total_;
  double duration_s_;
  bool tty_;
  double interval_s_;
  std::FILE* out_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// True when `f` is a terminal.
bool IsTerminal(std::FILE* f);

}  // namespace strata::bench
