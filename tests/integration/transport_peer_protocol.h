// What transport_integration_test and its transport_peer process say to each other.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

namespace strata::integration {

enum PeerMessage : uint32_t {
  kDescribe = 1,  // -> strata.v1.RemoteMemory of the peer's region
  kEcho = 2,      // -> the same payload
  kChecksum = 3,  // -> decimal checksum of the peer's region
  kExit = 4,
};

inline constexpr uint32_t kPeerPatternTag = 7;

// Bytes that tell where they came from (xorshift, a 64-bit word at a time; tail bytes too).
inline std::vector<uint8_t> Pattern(uint64_t size, uint32_t tag) {
  std::vector<uint8_t> bytes(size);
  uint64_t x = tag * 0x9E3779B97F4A7C15ull + 1;
  for (uint64_t i = 0; i < size; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const uint64_t n = size - i < 8 ? size - i : 8;
    std::memcpy(bytes.data() + i, &x, n);
  }
  return bytes;
}

// Position-sensitive over 64-bit words, so swapped or shifted blocks change it.
inline uint64_t Checksum(const uint8_t* data, uint64_t size) {
  uint64_t hash = 1469598103934665603ull;
  uint64_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t word;
    std::memcpy(&word, data + i, 8);
    hash = (hash ^ word) * 1099511628211ull;
    hash ^= hash >> 29;
  }
  for (; i < size; ++i) hash = (hash ^ data[i]) * 1099511628211ull;
  return hash;
}

}  // namespace strata::integration
