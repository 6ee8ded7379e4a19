// Copies of megabytes: the UCX transport's same-host transfers (transport/ucx/ucx_bulk.cc) and
// the KV pool's same-host reads (kvcache/pool_direct_reads.h) are plain memory copies, and one
// core writes fresh memory at a fraction of what the memory takes (on the development VM ~16
// GB/s from one thread, ~29 GB/s from two), so a large copy is split across helper threads while
// the calling thread copies its own part.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

namespace strata {

// memcpy with non-temporal stores where the CPU has them (SSE2 on x86-64): the destination (KV
// blocks) is read much later, and writing it through the cache would first read every line.
void StreamingCopy(void* dst, const void* src, size_t n);

// One piece of a copy: `bytes` from `src` to `dst`.
struct CopyPiece {
  void* dst = nullptr;
  const void* src = nullptr;
  size_t bytes = 0;
};

// Helper threads for a ParallelCopier by default: one per core beyond the first, at most 3.
int DefaultCopyHelpers();

class ParallelCopier {
 public:
  // `helpers` threads beside the caller's (0: the caller copies alone). A copy of at least
  // `min_split_bytes` is cut into parts of at least `min_part_bytes`, which the caller and the
  // helpers claim one at a time; copies of 512 KiB and more are shared too when a helper is
  // still awake or copies come back to back, others the caller copies alone. Measured on the
  // 2-vCPU development VM: waking a sleeping helper for a lone KV pool Put of 1 MiB over sm was
  // slower than one thread (5 vs 8 GB/s: it wakes late and competes with the threads that wait),
  // while 4 and 16 MiB ran faster (15-28 vs 9-19 GB/s), and so did back-to-back 1 MiB transfers.
  explicit ParallelCopier(int helpers, size_t min_part_bytes = size_t{256} << 10,
                          size_t min_split_bytes = size_t{2} << 20);
  ~ParallelCopier();
  ParallelCopier(const ParallelCopier&) = delete;
  ParallelCopier& operator=(const ParallelCopier&) = delete;

  // Copies `n` bytes (streaming: StreamingCopy, else memcpy) and returns when all of it is done.
  // Thread-safe; a call that finds the helpers busy copies alone.
  void Copy(void* dst, const void* src, size_t n, bool streaming);
  // Copies every piece, as Copy does, splitting their bytes in all (not each piece) across the
  // helpers: a transfer of many segments of a few KiB each is shared out as well as one of
  // megabytes.
  void CopyMany(std::span<const CopyPiece> pieces, bool streaming);

  int helpers() const { return static_cast<int>(threads_.size()); }

 private:
  struct Job {
    const CopyPiece* pieces = nullptr;  // the caller's, valid until every part is done
    size_t num_pieces = 0;
    size_t part = 0;   // bytes per part (of the pieces' bytes in a row); the last takes the rest
    size_t total = 0;  // bytes in all
    int parts = 0;     // part 0 is the caller's
    bool streaming = false;
  };
  void Helper();
  // Claims and copies parts of the job numbered `seq` until none is left.
  void CopyParts(const Job& job, uint64_t seq);
  static void CopyPart(const Job& job, int part);

  const size_t min_part_bytes_;
  const size_t min_split_bytes_;
  std::mutex use_mu_;  // one Copy at a time uses the helpers
  std::mutex mu_;
  std::condition_variable cv_;
  Job job_;                             // guarded by mu_
  std::atomic<uint64_t> job_seq_{0};    // bumped (under mu_) for each new job
  bool stop_ = false;                   // guarded by mu_
  std::atomic<uint64_t> next_part_{0};  // job_seq_ << 32 | the next part to claim
  std::atomic<int> parts_done_{0};
  std::atomic<int> awake_helpers_{0};         // helpers polling for the next job
  std::atomic<int64_t> last_copy_end_ns_{0};  // MonotonicNanos when the last copy finished
  std::vector<std::thread> threads_;
};

}  // namespace strata
