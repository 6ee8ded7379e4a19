// Request arrival times, with vLLM's convention: at a finite request rate r with burstiness b,
// the gaps between arrivals are Gamma(shape = b, scale = 1 / (r * b)), so their mean is 1 / r
// whatever b is; b = 1 is a Poisson process, b < 1 is burstier, b > 1 is more regular. An
// infinite rate releases every request at once. Deterministic for a given seed.
#pragma once

#include <cstdint>
#include <random>

#include "common/status.h"

namespace strata::bench {

class ArrivalProcess {
 public:
  // rate: requests/s (> 0; +inf = all at once); burstiness > 0.
  static StatusOr<ArrivalProcess> Create(double rate, double burstiness, uint64_t seed);

  bool unlimited() const { return unlimited_; }
  // Seconds from the previous arrival to the next (0 when unlimited).
  double NextGapSeconds();

 private:
  ArrivalProcess(double rate, double burstiness, uint64_t seed);

  bool unlimited_;
  std::mt19937_64 rng_;
  std::gamma_distribution<double> gamma_;
};

}  // namespace strata::bench
