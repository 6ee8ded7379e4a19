// Monotonic clocks. Durations carry their unit in the name.
#pragma once

#include <chrono>
#include <cstdint>

namespace strata {

using MonoClock = std::chrono::steady_clock;

inline int64_t MonotonicNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             MonoClock::now().time_since_epoch())
      .count();
}
inline double MonotonicSeconds() { return static_cast<double>(MonotonicNanos()) * 1e-9; }
// Wall clock, seconds since the Unix epoch (for OpenAI's `created`).
inline int64_t UnixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class Stopwatch {
 public:
  Stopwatch() : start_ns_(MonotonicNanos()) {}
  void Reset() { start_ns_ = MonotonicNanos(); }
  int64_t ElapsedNanos() const { return MonotonicNanos() - start_ns_; }
  double ElapsedMillis() const { return static_cast<double>(ElapsedNanos()) * 1e-6; }
  double ElapsedSeconds() const { return static_cast<double>(ElapsedNanos()) * 1e-9; }

 private:
  int64_t start_ns_;
};

}  // namespace strata
