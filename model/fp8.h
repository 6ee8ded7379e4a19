// float8_e4m3fn (the FP8 format of DeepSeek-V3 checkpoints): 1 sign, 4 exponent (bias 7) and
// 3 mantissa bits, no infinities, 0x7f/0xff are NaN, largest finite value 448.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>

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
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint8_t sign = static_cast<uint8_t>((u >> 24) & 0x80);
  u &= 0x7fffffffu;
  if (u > 0x7f800000u) return 0x7f;          // NaN
  if (u >= 0x43e00000u) return sign | 0x7e;  // |f| >= 448: saturate
  if (u < 0x3c800000u) {                     // |f| < 2^-6: subnormal steps of 2^-9
    float a;
    std::memcpy(&a, &u, 4);
    return sign | static_cast<uint8_t>(std::nearbyint(a * 512.0f));  // 8 is 2^-6, exact
  }
  u += 0x7ffffu + ((u >> 20) & 1u);      // round the 23-bit mantissa to 3 bits, ties to even
  const uint32_t exp = (u >> 23) - 120;  // rebias 127 -> 7
  return sign | static_cast<uint8_t>((exp << 3) | ((u >> 20) & 7u));
}

}  // namespace strata::model
