#include "expert_parallel/compute_gate.h"

#include "common/clock.h"

namespace strata::expert_parallel {

void ComputeGate::Account(int64_t now_ns) {
  if (last_ns_ != 0 && num_waiting_ > 0) {
    stats_.waiting_ns += now_ns - last_ns_;
    if (!held_) stats_.exposed_ns += now_ns - last_ns_;
  }
  last_ns_ = now_ns;
}

void ComputeGate::Acquire() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !held_; });
  Account(MonotonicNanos());
  held_ = true;
}

void ComputeGate::Release() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    Account(MonotonicNanos());
    held_ = false;
  }
  cv_.notify_one();
}

void ComputeGate::BeginWait() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    Account(MonotonicNanos());
    held_ = false;
    ++num_waiting_;
  }
  cv_.notify_one();
}

void ComputeGate::EndWait() {
  std::unique_lock<std::mutex> lock(mu_);
  Account(MonotonicNanos());
  --num_waiting_;
  cv_.wait(lock, [&] { return !held_; });
  Account(MonotonicNanos());
  held_ = true;
}

OverlapStats ComputeGate::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void ComputeGate::ResetStats() {
  std::lock_guard<std::mutex> lock(mu_);
  stats_ = {};
}

}  // namespace strata::expert_parallel
