// This machine's limits that benchmark figures are reported against: read bandwidth and peak
// multiply-add rates, measured per thread count.
#pragma once

#include <cstddef>

namespace strata::bench {

// Which clock a measurement uses. kThreadCpu counts only the time the calling thread ran
// (single-threaded measurements on a shared, oversubscribed machine); kWall is elapsed time.
enum class TimeBase { kWall, kThreadCpu };

// Seconds on `base` (an arbitrary origin).
double Now(TimeBase base);

// Best of `repeats` passes reading `bytes` with `threads` threads; GB/s (1e9 bytes/s).
double MeasureReadBandwidthGBs(int threads, size_t bytes, int repeats,
                               TimeBase base = TimeBase::kWall);
// Peak GFLOPS of vdpbf16ps (bf16 dot products, 2 flops per multiply-add) with `threads`
// threads; 0 when the CPU lacks AVX-512 BF16.
double MeasurePeakBf16Gflops(int threads, TimeBase base = TimeBase::kWall);
// Peak GFLOPS of f32 FMA (AVX-512, else AVX2).
double MeasurePeakF32Gflops(int threads, TimeBase base = TimeBase::kWall);

}  // namespace strata::bench
