#include "common/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace strata {
namespace {

TEST(ThreadPoolTest, RunsEveryIndexOnce) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.num_threads(), threads);
    for (int64_t n : {0, 1, 7, 1000}) {
      std::vector<std::atomic<int>> hits(n);
      pool.ParallelFor(n, [&](int64_t i) { hits[i].fetch_add(1); });
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[i].load(), 1);
    }
  }
}

TEST(ThreadPoolTest, ConcurrentCallersAreSerialized) {
  ThreadPool pool(3);
  std::atomic<int64_t> sum{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&] {
      for (int rep = 0; rep < 50; ++rep) pool.ParallelFor(10, [&](int64_t i) { sum += i; });
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(sum.load(), 4 * 50 * 45);
}

// Back-to-back calls (workers still polling), calls after a pause (workers asleep) and slow
// items (the caller sleeps while a worker finishes): every index of every call runs once, and
// no item of one call runs after that call has returned.
TEST(ThreadPoolTest, CallsAfterSpinningAndSleepingWorkersRunEveryIndexOnce) {
  ThreadPool pool(3);
  std::atomic<bool> in_call{false};
  std::atomic<int> outside{0};
  for (int rep = 0; rep < 3000; ++rep) {
    const int64_t n = 1 + rep % 37;
    std::vector<std::atomic<int>> hits(n);
    in_call = true;
    pool.ParallelFor(n, [&](int64_t i) {
      if (!in_call.load()) outside.fetch_add(1);
      if (rep % 500 == 0 && i == n - 1) std::this_thread::sleep_for(std::chrono::milliseconds(3));
      hits[i].fetch_add(1);
    });
    in_call = false;
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(hits[i].load(), 1) << "call " << rep << " index " << i;
    if (rep % 300 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(outside.load(), 0);
}

}  // namespace
}  // namespace strata
