// RoPE inverse frequencies as transformers' rope_init_fn computes them (default, "yarn",
// "llama3").
#include <algorithm>
#include <cmath>

#include "model/runner_impl.h"

namespace strata::model {

ops::RopeTable MakeRopeTable(const ModelConfig& c) {
  ops::RopeTable t;
  const int dim = static_cast<int>(c.RopeDim());
  const double base = c.rope_theta;
  t.rotary_dim = dim;
  t.interleaved = c.rope_interleave;
  t.attention_factor = static_cast<float>(c.RopeAttentionFactor());
  const int half = dim / 2;
  std::vector<double> inv(half);
  for (int i = 0; i < half; ++i) inv[i] = 1.0 / std::pow(base, (2.0 * i) / dim);
  const RopeScaling& s = c.rope_scaling;
  if (s.type == RopeScalingType::kYarn) {
    const double factor = s.factor;
    const double orig = s.original_max_position_embeddings > 0
                            ? static_cast<double>(s.original_max_position_embeddings)
                            : static_cast<double>(c.max_position_embeddings);
    auto correction_dim = [&](double rotations) {
      return (dim * std::log(orig / (rotations * 2 * M_PI))) / (2 * std::log(base));
    };
    double low = std::floor(correction_dim(s.beta_fast));
    double high = std::ceil(correction_dim(s.beta_slow));
    low = std::max(low, 0.0);
    high = std::min(high, static_cast<double>(dim - 1));
    if (low == high) high += 0.001;
    for (int i = 0; i < half; ++i) {
      double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
      double extrapolation_factor = 1.0 - ramp;
      double interp = inv[i] / factor;
      inv[i] = interp * (1.0 - extrapolation_factor) + inv[i] * extrapolation_factor;
    }
  } else if (s.type == RopeScalingType::kLlama3) {
    const double factor = s.factor;
    const double old_len = static_cast<double>(s.original_max_position_embeddings);
    const double low_wavelen = old_len / s.low_freq_factor;
    const double high_wavelen = old_len / s.high_freq_factor;
    for (int i = 0; i < half; ++i) {
      double wavelen = 2 * M_PI / inv[i];
      if (wavelen > low_wavelen) {
        inv[i] = inv[i] / factor;
      } else if (wavelen >= high_wavelen) {
        double smooth =
            (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        inv[i] = (1 - smooth) * inv[i] / factor + smooth * inv[i];
      }
    }
  }
  t.inv_freq.resize(half);
  for (int i = 0; i < half; ++i) t.inv_freq[i] = static_cast<float>(inv[i]);
  return t;
}

}  // namespace strata::model
