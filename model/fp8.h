// float8_e4m3fn (the FP8 format of DeepSeek-V3 checkpoints): 1 sign, 4 exponent (bias 7) and
// 3 mantissa bits, no infinities, 0x7f/0xff are NaN, largest finite value 448.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

namespace strata::model {

namespace internal {
inline float DecodeFp8E4M3(uint8_t v) {
  const float sign = (v & 0x80) ? -1.0f : 1.0f;
  const int exp = (v >> 3) & 0xf;
  const int man = v & 0x7;
  if (exp == 0xf && man == 0x7) return NAN;
  if (exp == 0) return sign * std::ldexp(static_cast<float>(man), -9);  // man/8 * 2^-6
  return sign * std::ldexp(1.0f + static_cast<float>(man) / 8.0f, exp - 7);
}
inline const std::array<float, 256>& Fp8E4M3Table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int i = 0; i < 256; ++i) t[i] = DecodeFp8E4M3(static_cast<uint8_t>(i));
    return t;
  }();
  return table;
}
}  // namespace internal

inline constexpr float kFp8E4M3Max = 448.0f;

inline float Fp8E4M3ToFloat(uint8_t v) { return internal::Fp8E4M3Table()[v]; }

// Round to nearest even; values beyond ±448 saturate to ±448; NaN -> 0x7f.
inline uint8_t FloatToFp8E4M3(float f) {
  if (std::isnan(f)) return 0x7f;
  const uint8_t sign = std::signbit(f) ? 0x80 : 0x00;
  float a = std::fabs(f);
  if (a >= kFp8E4M3Max) return sign | 0x7e;
  // Quantization step: 2^(e-3) for normals (e = floor(log2 a) >= -6), 2^-9 for subnormals.
  int e;
  std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
  int exp_unbiased = e - 1;
  if (exp_unbiased < -6) exp_unbiased = -6;
  const float step = std::ldexp(1.0f, exp_unbiased - 3);
  float q = std::nearbyint(a / step) * step;  // ties to even under the default rounding mode
  if (q >= kFp8E4M3Max) return sign | 0x7e;
  if (q == 0.0f) return sign;
  int qe;
  float qm = std::frexp(q, &qe);  // q = qm * 2^qe
  int biased = qe - 1 + 7;
  if (biased <= 0) {  // subnormal: q = man * 2^-9
    return sign | static_cast<uint8_t>(std::lround(std::ldexp(q, 9)));
  }
  int man = static_cast<int>(std::lround((qm * 2.0f - 1.0f) * 8.0f));
  return sign | static_cast<uint8_t>((biased << 3) | man);
}

}  // namespace strata::model
