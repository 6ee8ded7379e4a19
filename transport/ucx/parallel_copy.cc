#include "transport/ucx/parallel_copy.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#if defined(__x86_64__)
#include <emmintrin.h>
#include <immintrin.h>
#endif

namespace strata::transport::ucx {
namespace {

// How long a helper polls for the next job before it sleeps: the parts of one transfer's
// segments come back to back, and waking a sleeping thread costs more than a part takes.
constexpr auto kHelperSpin = std::chrono::microseconds(50);

void Relax() {
#if defined(__x86_64__)
  _mm_pause();
#endif
}

}  // namespace

void StreamingCopy(void* dst, const void* src, size_t n) {
#if defined(__x86_64__)
  auto* d = static_cast<uint8_t*>(dst);
  auto* s = static_cast<const uint8_t*>(src);
  const size_t head = std::min(n, (16 - reinterpret_cast<uintptr_t>(d) % 16) % 16);
  std::memcpy(d, s, head);
  d += head;
  s += head;
  n -= head;
  const size_t blocks = n / 64;
  for (size_t i = 0; i < blocks; ++i, d += 64, s += 64) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 16));
    const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 32));
    const __m128i e = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 48));
    _mm_stream_si128(reinterpret_cast<__m128i*>(d), a);
    _mm_stream_si128(reinterpret_cast<__m128i*>(d + 16), b);
    _mm_stream_si128(reinterpret_cast<__m128i*>(d + 32), c);
    _mm_stream_si128(reinterpret_cast<__m128i*>(d + 48), e);
  }
  std::memcpy(d, s, n % 64);
  _mm_sfence();  // the stores are visible before the copy is reported done
#else
  std::memcpy(dst, src, n);
#endif
}

ParallelCopier::ParallelCopier(int helpers, size_t min_part_bytes)
    : min_part_bytes_(std::max<size_t>(min_part_bytes, 4096)) {
  for (int i = 0; i < helpers; ++i) threads_.emplace_back([this, i] { Helper(i); });
}

ParallelCopier::~ParallelCopier() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void ParallelCopier::CopyPart(const Job& job, int part) {
  const size_t begin = static_cast<size_t>(part) * job.part;
  const size_t end = part == job.parts - 1 ? job.total : begin + job.part;
  if (job.streaming) {
    StreamingCopy(job.dst + begin, job.src + begin, end - begin);
  } else {
    std::memcpy(job.dst + begin, job.src + begin, end - begin);
  }
}

void ParallelCopier::Copy(void* dst, const void* src, size_t n, bool streaming) {
  const int max_parts =
      static_cast<int>(std::min<size_t>(threads_.size() + 1, n / min_part_bytes_));
  std::unique_lock use(use_mu_, std::try_to_lock);
  if (max_parts < 2 || !use.owns_lock()) {
    streaming ? StreamingCopy(dst, src, n) : (void)std::memcpy(dst, src, n);
    return;
  }
  Job job;
  job.dst = static_cast<uint8_t*>(dst);
  job.src = static_cast<const uint8_t*>(src);
  job.parts = max_parts;
  job.part = n / static_cast<size_t>(max_parts) / 64 * 64;  // cache-line aligned parts
  job.total = n;
  job.streaming = streaming;
  parts_left_.store(max_parts - 1);
  {
    std::lock_guard lock(mu_);
    job_ = job;
    job_seq_.fetch_add(1);
  }
  cv_.notify_all();
  CopyPart(job, 0);
  while (parts_left_.load(std::memory_order_acquire) > 0) Relax();
}

void ParallelCopier::Helper(int index) {
  const int part = index + 1;
  uint64_t seen = 0;
  while (true) {
    // Poll a little before sleeping: the next segment's copy usually follows at once.
    const auto spin_until = std::chrono::steady_clock::now() + kHelperSpin;
    while (job_seq_.load(std::memory_order_acquire) == seen &&
           std::chrono::steady_clock::now() < spin_until) {
      Relax();
    }
    Job job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || job_seq_.load() != seen; });
      if (stop_) return;
      seen = job_seq_.load();
      job = job_;
    }
    if (part < job.parts) {
      CopyPart(job, part);
      parts_left_.fetch_sub(1, std::memory_order_release);
    }
  }
}

}  // namespace strata::transport::ucx
