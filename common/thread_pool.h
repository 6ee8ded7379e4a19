// A small fixed-size thread pool.
//
// ParallelFor(n, fn) runs fn(i) for every i in [0, n) on the pool's threads and the calling
// thread, and returns when all are done. Work items are indices, so a kernel that gives each
// output row to exactly one index stays deterministic whatever the thread count (DESIGN.md §6).
// ParallelFor may be called from several threads at once (calls are serialized); it must not be
// called from inside a work item of the same pool.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace strata {

class ThreadPool {
 public:
  // num_threads counts the caller: 1 means "run everything on the calling thread".
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  void ParallelFor(int64_t n, const std::function<void(int64_t)>& fn);

 private:
  void WorkerLoop();
  void RunItems();  // claims and runs items of the current call until none is left

  std::vector<std::thread> workers_;
  std::mutex call_mu_;  // serializes ParallelFor calls
  // A call's state (fn_, n_) is written under mu_ while no worker is active; a worker joins a
  // call (active_ + 1) under mu_ and then claims items with next_ without it. Idle threads poll
  // the atomics for a while before they sleep on the condition variables.
  std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  const std::function<void(int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  std::atomic<int64_t> next_{0};
  std::atomic<int64_t> remaining_{0};
  std::atomic<int> active_{0};  // workers inside the current call
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  std::atomic<bool> caller_sleeping_{false};
  int sleepers_ = 0;  // workers waiting on work_cv_ (under mu_)
};

// Threads to use by default: the machine's hardware concurrency (at least 1).
int DefaultThreadCount();

}  // namespace strata
