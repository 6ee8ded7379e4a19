// ComputeGate: lets two microbatches of one rank take turns on the CPU (DESIGN.md §1,
// microbatch pipelining). A microbatch holds the gate while it computes and gives it up while
// its dispatch/combine waits for peers, so the other microbatch computes meanwhile.
//
// It also measures how much of the communication wait was hidden: `waiting` time is wall time
// during which at least one holder-to-be was waiting for peers; `exposed` the part of it during
// which nobody computed. overlap = 1 - exposed / waiting. Thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace strata::expert_parallel {

struct OverlapStats {
  int64_t waiting_ns = 0;  // some microbatch waited on peers
  int64_t exposed_ns = 0;  // ... and none computed
  double overlap() const {
    return waiting_ns > 0 ? 1.0 - static_cast<double>(exposed_ns) / waiting_ns : 0.0;
  }
};

class ComputeGate {
 public:
  void Acquire();
  void Release();
  // Around a wait for peers: Release + mark waiting, then unmark + Acquire.
  void BeginWait();
  void EndWait();
  OverlapStats stats() const;
  void ResetStats();

 private:
  void Account(int64_t now_ns);  // with mu_ held: charge the time since the last transition
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false;
  int num_waiting_ = 0;
  int64_t last_ns_ = 0;
  OverlapStats stats_;
};

}  // namespace strata::expert_parallel
