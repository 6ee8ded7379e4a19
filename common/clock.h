// Monotonic clocks. Durations carry their unit in the name.
#pragma once

#include <chrono>
#include <cstdint>

namespace strata {

using MonoClock = std::chrono::steady_clock;

inline int64_t MonotonicNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(MonoClock::now().time_since_epoch())
      .count();
}
inline double MonotonicSeconds() { return static_cast<double>(MonotonicNanos()) * 1e-9; }
// Wall clock, seconds since the Unix epoch (for OpenAI's `created`).
inline int64_t UnixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Wall clock, milliseconds since the Unix epoch (deadlines that cross processes).
inline int64_t UnixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
// A MonotonicNanos() deadline for a UnixMillis() one (0 stays 0: none).
inline int64_t MonotonicDeadlineFromUnixMillis(int64_t unix_ms) {
  if (unix_ms <= 0) return 0;
  int64_t left_ms = unix_ms - UnixMillis();
  return MonotonicNanos() + (left_ms > 0 ? left_ms : 0) * 1000000;
}
// The UnixMillis() deadline for a MonotonicNanos() one (0 stays 0).
inline int64_t UnixMillisFromMonotonicDeadline(int64_t mono_ns) {
  if (mono_ns <= 0) return 0;
  return UnixMillis() + (mono_ns - MonotonicNanos()) / 1000000;
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
