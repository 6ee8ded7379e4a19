// Test data shared by unit tests of different libraries.
#pragma once

#include <cstdint>
#include <vector>

namespace strata::testing {

// Bytes that tell where they came from: byte i of buffer `tag` is f(tag, i).
inline std::vector<uint8_t> Pattern(uint64_t size, uint32_t tag) {
  std::vector<uint8_t> bytes(size);
  uint32_t x = tag * 2654435761u + 12345u;
  for (uint64_t i = 0; i < size; ++i) {
    x = x * 1664525u + 1013904223u;
    bytes[i] = static_cast<uint8_t>(x >> 24);
  }
  return bytes;
}

}  // namespace strata::testing
