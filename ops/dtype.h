// Element types of tensors that ops read or write.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace strata::ops {

enum class DType : uint8_t { kF32, kBF16, kF16, kI32 };

constexpr size_t DTypeSize(DType t) {
  switch (t) {
    case DType::kF32:
    case DType::kI32:
      return 4;
    case DType::kBF16:
    case DType::kF16:
      return 2;
  }
  return 0;
}

constexpr std::string_view DTypeName(DType t) {
  switch (t) {
    case DType::kF32:
      return "f32";
    case DType::kBF16:
      return "bf16";
    case DType::kF16:
      return "f16";
    case DType::kI32:
      return "i32";
  }
  return "?";
}

}  // namespace strata::ops
