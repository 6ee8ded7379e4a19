// How much memory this machine can still give: for start-up checks of sizes a user asks for
// (a KV pool larger than the memory would be killed by the kernel once it fills).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace strata {

// MemAvailable of a /proc/meminfo text, in bytes; nullopt when it has none.
std::optional<uint64_t> ParseMemAvailable(std::string_view meminfo);

// This machine's MemAvailable (what new allocations can get without swapping), or nullopt where
// /proc/meminfo cannot be read.
std::optional<uint64_t> AvailableMemoryBytes();

// OK when `bytes` fit in `available` (nullopt: unknown, so OK); else the flag's error, naming
// both figures. `what` says what the bytes are for ("3 KV pools of 1073741824 bytes").
Status CheckFitsInMemory(std::string_view flag, uint64_t bytes, std::optional<uint64_t> available,
                         const std::string& what);

}  // namespace strata
