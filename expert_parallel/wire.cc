#include "expert_parallel/wire.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace strata::expert_parallel {
namespace {

size_t Align8(size_t n) { return (n + 7) & ~size_t{7}; }

}  // namespace

std::string_view WireDTypeName(WireDType t) { return t == WireDType::kInt8 ? "int8" : "bf16"; }

StatusOr<WireDType> ParseWireDType(std::string_view name) {
  if (name == "int8") return WireDType::kInt8;
  if (name == "bf16") return WireDType::kBf16;
  return InvalidArgumentError("dispatch dtype must be int8 or bf16, not '" + std::string(name) +
                              "'");
}

size_t WireShape::DispatchBytes(int64_t rows, int64_t entries) const {
  size_t n = Align8(sizeof(DispatchHeader));
  n += Align8(sizeof(int32_t) * num_ranks);
  n += Align8(sizeof(int32_t) * num_experts);
  n += Align8(sizeof(int32_t) * 2 * entries);
  if (dtype == WireDType::kInt8) n += Align8(sizeof(float) * rows);
  n += Align8(RowBytes() * rows);
  return n;
}

size_t WireShape::CombineBytes(int64_t entries) const {
  return Align8(sizeof(CombineHeader)) + sizeof(bf16) * hidden * entries;
}

DispatchView LayoutDispatch(const WireShape& shape, uint8_t* base, int64_t rows, int64_t entries) {
  DispatchView v;
  uint8_t* p = base;
  v.header = reinterpret_cast<DispatchHeader*>(p);
  p += Align8(sizeof(DispatchHeader));
  v.rank_entries = reinterpret_cast<int32_t*>(p);
  p += Align8(sizeof(int32_t) * shape.num_ranks);
  v.expert_counts = reinterpret_cast<int32_t*>(p);
  p += Align8(sizeof(int32_t) * shape.num_experts);
  v.entries = reinterpret_cast<int32_t*>(p);
  p += Align8(sizeof(int32_t) * 2 * entries);
  v.scales = nullptr;
  if (shape.dtype == WireDType::kInt8) {
    v.scales = reinterpret_cast<float*>(p);
    p += Align8(sizeof(float) * rows);
  }
  v.rows = p;
  return v;
}

StatusOr<DispatchView> ParseDispatch(const WireShape& shape, uint8_t* base, size_t bytes) {
  if (bytes < sizeof(DispatchHeader)) return DataLossError("EP dispatch message too short");
  const auto* h = reinterpret_cast<const DispatchHeader*>(base);
  if (h->magic != kDispatchMagic) return DataLossError("EP dispatch message: bad magic");
  if (h->dtype != static_cast<uint32_t>(shape.dtype)) {
    return DataLossError("EP dispatch message: dtype " + std::to_string(h->dtype) +
                         " differs from this rank's " + std::string(WireDTypeName(shape.dtype)));
  }
  if (h->num_rows > shape.max_tokens || h->num_entries > shape.max_tokens * shape.top_k ||
      h->num_entries < h->num_rows) {
    return DataLossError("EP dispatch message: " + std::to_string(h->num_rows) + " rows / " +
                         std::to_string(h->num_entries) + " entries beyond the capacity");
  }
  if (shape.DispatchBytes(h->num_rows, h->num_entries) != bytes) {
    return DataLossError("EP dispatch message: " + std::to_string(bytes) +
                         " bytes do not match its counts");
  }
  DispatchView v = LayoutDispatch(shape, base, h->num_rows, h->num_entries);
  for (uint32_t i = 0; i < h->num_entries; ++i) {
    int32_t row = v.entries[2 * i], expert = v.entries[2 * i + 1];
    if (row < 0 || static_cast<uint32_t>(row) >= h->num_rows || expert < 0 ||
        expert >= shape.num_experts) {
      return DataLossError("EP dispatch message: entry " + std::to_string(i) + " (row " +
                           std::to_string(row) + ", expert " + std::to_string(expert) +
                           ") out of range");
    }
  }
  return v;
}

StatusOr<const CombineHeader*> ParseCombine(const WireShape& shape, const uint8_t* base,
                                            size_t bytes) {
  if (bytes < sizeof(CombineHeader)) return DataLossError("EP combine message too short");
  const auto* h = reinterpret_cast<const CombineHeader*>(base);
  if (h->magic != kCombineMagic) return DataLossError("EP combine message: bad magic");
  if (h->num_entries > shape.max_tokens * shape.top_k ||
      shape.CombineBytes(h->num_entries) != bytes) {
    return DataLossError("EP combine message: " + std::to_string(h->num_entries) + " entries in " +
                         std::to_string(bytes) + " bytes");
  }
  return h;
}

void EncodeRow(WireDType dtype, const float* x, int64_t n, uint8_t* out, float* scale) {
  if (dtype == WireDType::kBf16) {
    bf16* o = reinterpret_cast<bf16*>(out);
    for (int64_t i = 0; i < n; ++i) o[i] = FloatToBf16(x[i]);
    return;
  }
  // |x| compared as the integers of its bits (sign cleared: same order as the floats), which
  // the compiler vectorizes; a NaN counts as the largest value.
  int32_t absmax_bits = 0;
  for (int64_t i = 0; i < n; ++i) {
    int32_t bits;
    std::memcpy(&bits, &x[i], sizeof(bits));
    absmax_bits = std::max(absmax_bits, bits & 0x7fffffff);
  }
  float absmax;
  std::memcpy(&absmax, &absmax_bits, sizeof(absmax));
  const float s = absmax / 127.0f;
  *scale = s;
  int8_t* o = reinterpret_cast<int8_t*>(out);
  if (s == 0.0f || !std::isfinite(s)) {  // all zero, or a NaN / inf the scale carries over
    std::fill(o, o + n, int8_t{0});
    return;
  }
  const float inv = 127.0f / absmax;
  // Round to nearest, ties to even, as nearbyint does in the default rounding mode: adding and
  // subtracting 1.5 * 2^23 leaves an integer for |q| <= 2^22 (here |q| <= 127), and vectorizes.
  constexpr float kRound = 12582912.0f;
  for (int64_t i = 0; i < n; ++i) {
    const float q = (x[i] * inv + kRound) - kRound;
    o[i] = static_cast<int8_t>(std::clamp(q, -127.0f, 127.0f));
  }
}

void DecodeRow(WireDType dtype, const uint8_t* in, float scale, int64_t n, float* out) {
  if (dtype == WireDType::kBf16) {
    const bf16* r = reinterpret_cast<const bf16*>(in);
    for (int64_t i = 0; i < n; ++i) out[i] = Bf16ToFloat(r[i]);
    return;
  }
  const int8_t* r = reinterpret_cast<const int8_t*>(in);
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(r[i]) * scale;
}

}  // namespace strata::expert_parallel
