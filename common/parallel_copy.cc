#include "common/parallel_copy.h"

#include "common/clock.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#if defined(__x86_64__)
#include <emmintrin.h>
#include <immintrin.h>
#endif

namespace strata {
namespace {

// How long a helper polls for the next job before it sleeps: the parts of one transfer's
// segments come back to back, and waking a sleeping thread costs more than a part takes.
constexpr auto kHelperSpin = std::chrono::microseconds(50);
// A copy that follows the previous one within this long is part of a stream of copies.
constexpr int64_t kStreamGapNs = 10'000;
// Smaller copies are shared only when min_split_bytes says so.
constexpr size_t kMinShareBytes = size_t{512} << 10;
// Parts of one copy at most (a part is at least min_part_bytes).
constexpr size_t kMaxParts = 64;

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

int DefaultCopyHelpers() {
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  return std::clamp(cores - 1, 0, 3);
}

ParallelCopier::ParallelCopier(int helpers, size_t min_part_bytes, size_t min_split_bytes)
    : min_part_bytes_(std::max<size_t>(min_part_bytes, 4096)), min_split_bytes_(min_split_bytes) {
  for (int i = 0; i < helpers; ++i) threads_.emplace_back([this] { Helper(); });
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
  size_t at = 0;  // bytes of the pieces before pieces[i]
  for (size_t i = 0; i < job.num_pieces && at < end; at += job.pieces[i].bytes, ++i) {
    const CopyPiece& piece = job.pieces[i];
    const size_t from = std::max(begin, at);
    const size_t to = std::min(end, at + piece.bytes);
    if (from >= to) continue;
    uint8_t* dst = static_cast<uint8_t*>(piece.dst) + (from - at);
    const uint8_t* src = static_cast<const uint8_t*>(piece.src) + (from - at);
    if (job.streaming) {
      StreamingCopy(dst, src, to - from);
    } else {
      std::memcpy(dst, src, to - from);
    }
  }
}

void ParallelCopier::Copy(void* dst, const void* src, size_t n, bool streaming) {
  const CopyPiece piece{dst, src, n};
  CopyMany(std::span<const CopyPiece>(&piece, 1), streaming);
}

void ParallelCopier::CopyMany(std::span<const CopyPiece> pieces, bool streaming) {
  size_t total = 0;
  for (const CopyPiece& piece : pieces) total += piece.bytes;
  Job job;
  job.pieces = pieces.data();
  job.num_pieces = pieces.size();
  job.total = total;
  job.streaming = streaming;
  // Parts of about min_part_bytes_, claimed one at a time by whichever thread is free: the
  // caller goes on alone when the helpers are slow to wake (on a busy machine they often are).
  const size_t parts = std::min<size_t>(kMaxParts, std::max<size_t>(1, total / min_part_bytes_));
  // Below min_split_bytes_, share only with helpers already awake, or when copies come back to
  // back (a stream of transfers keeps them awake): waking a sleeping one for a lone copy of 1
  // MiB cost more than it saved here. Copies too small to share never read the clock.
  const bool shareable =
      parts >= 2 && !threads_.empty() && total >= std::min(min_split_bytes_, kMinShareBytes);
  const bool worth_it =
      shareable &&
      (total >= min_split_bytes_ || awake_helpers_.load(std::memory_order_relaxed) > 0 ||
       MonotonicNanos() - last_copy_end_ns_.load(std::memory_order_relaxed) < kStreamGapNs);
  std::unique_lock use(use_mu_, std::defer_lock);
  if (!worth_it || !use.try_lock()) {
    job.parts = 1;
    job.part = total;
    CopyPart(job, 0);
    if (shareable) last_copy_end_ns_.store(MonotonicNanos(), std::memory_order_relaxed);
    return;
  }
  job.parts = static_cast<int>(parts);
  job.part = total / parts / 64 * 64;  // cache-line aligned parts
  uint64_t seq = 0;
  {
    std::lock_guard lock(mu_);
    seq = job_seq_.load() + 1;
    job_ = job;
    parts_done_.store(0);
    next_part_.store(seq << 32);
    job_seq_.store(seq);
  }
  cv_.notify_all();
  CopyParts(job, seq);
  while (parts_done_.load(std::memory_order_acquire) < job.parts) Relax();
  last_copy_end_ns_.store(MonotonicNanos(), std::memory_order_relaxed);
}

void ParallelCopier::CopyParts(const Job& job, uint64_t seq) {
  uint64_t claim = next_part_.load();
  while (claim >> 32 == seq && static_cast<int>(claim & 0xffffffffu) < job.parts) {
    if (!next_part_.compare_exchange_weak(claim, claim + 1)) continue;
    CopyPart(job, static_cast<int>(claim & 0xffffffffu));
    parts_done_.fetch_add(1, std::memory_order_release);
    claim = next_part_.load();
  }
}

void ParallelCopier::Helper() {
  uint64_t seen = 0;
  while (true) {
    // Poll a little before sleeping: the next segment's copy usually follows at once.
    const auto spin_until = std::chrono::steady_clock::now() + kHelperSpin;
    awake_helpers_.fetch_add(1, std::memory_order_relaxed);
    while (job_seq_.load(std::memory_order_acquire) == seen &&
           std::chrono::steady_clock::now() < spin_until) {
      Relax();
    }
    awake_helpers_.fetch_sub(1, std::memory_order_relaxed);
    Job job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || job_seq_.load() != seen; });
      if (stop_) return;
      seen = job_seq_.load();
      job = job_;
    }
    CopyParts(job, seen);  // claims nothing once that job is done and another began
  }
}

}  // namespace strata
