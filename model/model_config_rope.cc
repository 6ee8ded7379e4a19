// RopeInvFreq: RoPE frequencies with YaRN and Llama 3 scaling, as transformers computes them
// (_compute_yarn_parameters, _compute_llama3_parameters) and DeepSeek's reference code does.
#include <algorithm>
#include <cmath>
#include <numbers>

#include "model/model_config.h"

namespace strata::model {
namespace {

// The dimension index whose wavelength makes `num_rotations` turns over `max_positions`.
double YarnCorrectionDim(double num_rotations, double dim, double base, double max_positions) {
  return dim * std::log(max_positions / (num_rotations * 2 * std::numbers::pi)) /
         (2 * std::log(base));
}

}  // namespace

std::vector<double> RopeInvFreq(const ModelConfig& c) {
  const int64_t dim = c.RopeDim();
  const double base = c.rope_theta;
  std::vector<double> inv(static_cast<size_t>(dim / 2));
  for (int64_t i = 0; i < dim / 2; ++i) {
    inv[i] = 1.0 / std::pow(base, static_cast<double>(2 * i) / static_cast<double>(dim));
  }
  const RopeScaling& s = c.rope_scaling;
  if (s.type == RopeScalingType::kYarn) {
    const double orig = static_cast<double>(s.original_max_position_embeddings);
    double low = std::floor(YarnCorrectionDim(s.beta_fast, dim, base, orig));
    double high = std::ceil(YarnCorrectionDim(s.beta_slow, dim, base, orig));
    low = std::max(low, 0.0);
    high = std::min(high, static_cast<double>(dim - 1));
    if (low == high) high += 0.001;
    for (int64_t i = 0; i < dim / 2; ++i) {
      const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
      const double extrapolation = 1.0 - ramp;  // weight of the unscaled frequency
      inv[i] = inv[i] / s.factor * (1.0 - extrapolation) + inv[i] * extrapolation;
    }
  } else if (s.type == RopeScalingType::kLlama3) {
    const double old_context = static_cast<double>(s.original_max_position_embeddings);
    const double low_freq_wavelen = old_context / s.low_freq_factor;
    const double high_freq_wavelen = old_context / s.high_freq_factor;
    for (double& f : inv) {
      const double wavelen = 2 * std::numbers::pi / f;
      if (wavelen > low_freq_wavelen) {
        f /= s.factor;
      } else if (wavelen >= high_freq_wavelen) {
        const double smooth =
            (old_context / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        f = (1 - smooth) * f / s.factor + smooth * f;
      }
    }
  }
  return inv;
}

}  // namespace strata::model
