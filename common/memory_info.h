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

// The room left under the memory limit of this process's cgroup (a container's, a Kubernetes
// pod's): v2 memory.max - memory.current, v1 memory.limit_in_bytes - memory.usage_in_bytes, under
// `root` (the cgroup mount) at the path /proc/self/cgroup names. nullopt when there is no limit
// or it cannot be read.
std::optional<uint64_t> CgroupMemoryRoom(std::string_view proc_self_cgroup,
                                         const std::string& root = "/sys/fs/cgroup");

// What new allocations can get without swapping or hitting the cgroup's limit: the smaller of
// MemAvailable and the cgroup's room; nullopt where neither can be read.
std::optional<uint64_t> AvailableMemoryBytes();

// OK when `bytes` fit in `available` (nullopt: unknown, so OK); else the flag's error, naming
// both figures. `what` says what the bytes are for ("3 KV pools of 1073741824 bytes").
Status CheckFitsInMemory(std::string_view flag, uint64_t bytes, std::optional<uint64_t> available,
                         const std::string& what);

}  // namespace strata
