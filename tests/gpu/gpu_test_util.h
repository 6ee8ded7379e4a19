// Shared helpers of the GPU parity tests: a CUDA backend (or a clean skip), device buffers from
// host vectors, fresh random inputs (seeded from the clock, printed on failure), relative error.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include "common/half.h"
#include "ops/cpu/reference.h"
#include "ops/cuda/cuda_backend.h"

namespace strata::ops::testing {

class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override { SetUpBackend(false); }
  void TearDown() override {
    if (cuda_ == nullptr) return;
    for (void* p : allocations_) cuda_->Free(p);
    EXPECT_TRUE(cuda_->Synchronize().ok());
  }

  void SetUpBackend(bool deterministic) {
    CudaBackendOptions options;
    options.deterministic = deterministic;
    auto b = CreateCudaBackend(options);
    if (!b.ok()) GTEST_SKIP() << "no CUDA backend here: " << b.status().ToString();
    cuda_ = std::move(*b);
    seed_ = static_cast<uint32_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    rng_.seed(seed_);
  }

  // Uniform in +-[0.1, 1] * scale: never zero.
  float Rand(float scale = 1.0f) {
    std::uniform_real_distribution<float> mag(0.1f, 1.0f);
    return (rng_() & 1 ? mag(rng_) : -mag(rng_)) * scale;
  }
  std::vector<float> RandVec(size_t n, float scale = 1.0f) {
    std::vector<float> v(n);
    for (float& x : v) x = Rand(scale);
    return v;
  }
  std::vector<bf16> RandBf16(size_t n, float scale = 1.0f) {
    std::vector<bf16> v(n);
    for (bf16& x : v) x = FloatToBf16(Rand(scale));
    return v;
  }

  template <typename T>
  T* Upload(const std::vector<T>& host) {
    auto p = cuda_->Allocate(std::max<size_t>(host.size(), 1) * sizeof(T));
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    if (!p.ok()) return nullptr;
    allocations_.push_back(*p);
    if (!host.empty()) cuda_->CopyToDevice(*p, host.data(), host.size() * sizeof(T));
    return static_cast<T*>(*p);
  }
  // A device buffer of n floats filled with NaN, so unwritten outputs show.
  float* Poisoned(size_t n) {
    return Upload(std::vector<float>(n, std::numeric_limits<float>::quiet_NaN()));
  }
  template <typename T>
  std::vector<T> Download(const T* device, size_t n) {
    Status s = cuda_->Synchronize();
    EXPECT_TRUE(s.ok()) << s.ToString();
    std::vector<T> host(n);
    cuda_->CopyToHost(host.data(), device, n * sizeof(T));
    s = cuda_->Synchronize();
    EXPECT_TRUE(s.ok()) << s.ToString();
    return host;
  }

  std::unique_ptr<CudaBackend> cuda_;
  std::vector<void*> allocations_;
  uint32_t seed_ = 0;
  std::mt19937 rng_;
};

// ||out - ref|| / ||ref||; infinity when out has a NaN or Inf anywhere.
inline double RelError(const std::vector<float>& out, const std::vector<float>& ref) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(out[i])) return std::numeric_limits<double>::infinity();
    double d = static_cast<double>(out[i]) - ref[i];
    num += d * d;
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return den == 0.0 ? std::sqrt(num) : std::sqrt(num / den);
}

// Error bounds per dtype path (relative, whole tensor).
constexpr double kF32Bound = 2e-6;          // f32 arithmetic, different summation order
constexpr double kBf16Bound = 1e-2;         // activations rounded to bf16, f32 accumulation
constexpr double kBf16TwoRoundings = 2e-2;  // two bf16 roundings in a row (attention P, MLP h)

inline WeightView View(DType t, const void* data, int64_t rows, int64_t cols, int64_t stride = 0) {
  WeightView w;
  w.dtype = t;
  w.data = data;
  w.rows = rows;
  w.cols = cols;
  w.row_stride = stride;
  return w;
}

}  // namespace strata::ops::testing
