// libFuzzer target: the safetensors header parser on arbitrary file images. Every accepted
// header must describe tensors that lie inside the buffer; converting them must stay in bounds
// (AddressSanitizer checks every read).
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata::model;
  auto header = ParseSafetensors(std::span<const uint8_t>(data, size), "fuzz");
  if (!header.ok()) return 0;
  for (const TensorView& t : header->tensors) {
    if (t.bytes > 0 && (t.data < data || t.data + t.bytes > data + size)) __builtin_trap();
    if (t.bytes != static_cast<size_t>(t.NumElements()) * TensorDtypeSize(t.dtype)) {
      __builtin_trap();
    }
    if (t.NumElements() > (1 << 16)) continue;
    std::vector<float> out(static_cast<size_t>(t.NumElements()));
    // Non-float dtypes and F8 without a usable scale are errors, never reads out of bounds.
    const TensorView* scale = nullptr;
    for (const TensorView& s : header->tensors) {
      if (s.name == ScaleInvName(t.name)) scale = &s;
    }
    (void)ConvertToFloat(t, scale, out);
    (void)ConvertToFloat(t, scale, out, 1, 3);
  }
  return 0;
}
