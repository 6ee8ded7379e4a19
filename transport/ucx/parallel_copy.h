// Copies of megabytes for the UCX transport's same-host transfers (ucx_bulk.cc), which are plain
// memory copies: one core writes fresh memory at a fraction of what the memory takes (on the
// development VM ~16 GB/s from one thread, ~29 GB/s from two), so a large copy is split across
// helper threads while the calling thread copies its own part.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace strata::transport::ucx {

// memcpy with non-temporal stores where the CPU has them (SSE2 on x86-64): the destination (KV
// blocks) is read much later, and writing it through the cache would first read every line.
void StreamingCopy(void* dst, const void* src, size_t n);

class ParallelCopier {
 public:
  // `helpers` threads beside the caller's (0: the caller copies alone). Copies shorter than two
  // parts of `min_part_bytes` are never split.
  explicit ParallelCopier(int helpers, size_t min_part_bytes = size_t{256} << 10);
  ~ParallelCopier();
  ParallelCopier(const ParallelCopier&) = delete;
  ParallelCopier& operator=(const ParallelCopier&) = delete;

  // Copies `n` bytes (streaming: StreamingCopy, else memcpy) and returns when all of it is done.
  // Thread-safe; a call that finds the helpers busy copies alone.
  void Copy(void* dst, const void* src, size_t n, bool streaming);

  int helpers() const { return static_cast<int>(threads_.size()); }

 private:
  struct Job {
    uint8_t* dst = nullptr;
    const uint8_t* src = nullptr;
    size_t part = 0;   // bytes per part; the last part takes the rest
    size_t total = 0;  // bytes in all
    int parts = 0;     // part 0 is the caller's
    bool streaming = false;
  };
  void Helper(int index);
  static void CopyPart(const Job& job, int part);

  const size_t min_part_bytes_;
  std::mutex use_mu_;  // one Copy at a time uses the helpers
  std::mutex mu_;
  std::condition_variable cv_;
  Job job_;                           // guarded by mu_
  std::atomic<uint64_t> job_seq_{0};  // bumped (under mu_) for each new job
  bool stop_ = false;                 // guarded by mu_
  std::atomic<int> parts_left_{0};
  std::vector<std::thread> threads_;
};

}  // namespace strata::transport::ucx
