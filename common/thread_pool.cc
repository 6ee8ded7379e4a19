#include "common/thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define STRATA_CPU_RELAX() _mm_pause()
#else
#define STRATA_CPU_RELAX() ((void)0)
#endif

namespace strata {
namespace {

// How long an idle worker (or a caller waiting for the last items) polls before it sleeps on a
// condition variable. A forward issues a ParallelFor every few tens of microseconds; waking a
// sleeping thread costs a futex call on each side plus the scheduler's latency, which on a
// virtual machine is comparable to a whole decode-sized work item.
constexpr auto kSpin = std::chrono::microseconds(50);

// Polls `ready` until it returns true or kSpin has passed; true when it became ready.
template <typename Ready>
bool SpinUntil(Ready&& ready) {
  const auto deadline = std::chrono::steady_clock::now() + kSpin;
  while (true) {
    for (int i = 0; i < 64; ++i) {
      if (ready()) return true;
      STRATA_CPU_RELAX();
    }
    if (std::chrono::steady_clock::now() >= deadline) return ready();
  }
}

}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  int extra = std::max(0, num_threads - 1);
  workers_.reserve(extra);
  for (int i = 0; i < extra; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mu_);
    stop_.store(true);
  }
  work_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::RunItems() {
  const auto& fn = *fn_;
  const int64_t n = n_;
  for (int64_t i = next_.fetch_add(1); i < n; i = next_.fetch_add(1)) {
    fn(i);
    if (remaining_.fetch_sub(1) == 1 && caller_sleeping_.load()) {
      std::lock_guard lock(mu_);
      done_cv_.notify_all();
    }
  }
}

void ThreadPool::WorkerLoop() {
  uint64_t seen = 0;
  auto has_work = [&] { return stop_.load() || generation_.load() != seen; };
  while (true) {
    SpinUntil(has_work);
    {
      std::unique_lock lock(mu_);
      ++sleepers_;
      work_cv_.wait(lock, has_work);
      --sleepers_;
      if (stop_.load()) return;
      seen = generation_.load();
      if (fn_ == nullptr) continue;  // that call is over already
      active_.fetch_add(1);          // under mu_: the caller cannot end the call meanwhile
    }
    RunItems();
    active_.fetch_sub(1);
  }
}

void ThreadPool::ParallelFor(int64_t n, const std::function<void(int64_t)>& fn) {
  if (n <= 0) return;
  if (workers_.empty() || n == 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::lock_guard call_lock(call_mu_);
  {
    std::lock_guard lock(mu_);
    fn_ = &fn;
    n_ = n;
    next_.store(0);
    remaining_.store(n);
    generation_.fetch_add(1);
    if (sleepers_ > 0) work_cv_.notify_all();
  }
  RunItems();
  // Every item is done and no worker still reads this call's state before it ends.
  auto done = [&] { return remaining_.load() == 0 && active_.load() == 0; };
  while (true) {
    if (!SpinUntil(done)) {
      std::unique_lock lock(mu_);
      caller_sleeping_.store(true);
      done_cv_.wait_for(lock, std::chrono::milliseconds(1), [&] { return remaining_.load() == 0; });
      caller_sleeping_.store(false);
    }
    std::lock_guard lock(mu_);  // workers join a call only under mu_
    if (done()) {
      fn_ = nullptr;
      return;
    }
  }
}

int DefaultThreadCount() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

}  // namespace strata
