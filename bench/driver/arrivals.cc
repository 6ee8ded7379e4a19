#include "bench/driver/arrivals.h"

#include <cmath>
#include <string>

namespace strata::bench {

StatusOr<ArrivalProcess> ArrivalProcess::Create(double rate, double burstiness, uint64_t seed) {
  if (std::isnan(rate) || rate <= 0) {
    return InvalidArgumentError("request rate must be > 0 or inf, not " + std::to_string(rate));
  }
  if (!std::isfinite(burstiness) || burstiness <= 0) {
    return InvalidArgumentError("burstiness must be a finite number > 0, not " +
                                std::to_string(burstiness));
  }
  return ArrivalProcess(rate, burstiness, seed);
}

ArrivalProcess::ArrivalProcess(double rate, double burstiness, uint64_t seed)
    : unlimited_(std::isinf(rate)),
      rng_(seed),
      gamma_(burstiness, unlimited_ ? 1.0 : 1.0 / (rate * burstiness)) {}

double ArrivalProcess::NextGapSeconds() { return unlimited_ ? 0.0 : gamma_(rng_); }

}  // namespace strata::bench
