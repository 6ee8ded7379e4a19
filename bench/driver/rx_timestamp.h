// Kernel receive timestamps for load generators: when bytes reached this host's socket, not when
// the reading thread got around to reading them (a busy client would otherwise add its own
// queueing to every latency it reports).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace strata::bench {

// Asks the kernel for software receive timestamps on `fd` (SO_TIMESTAMPING); false when it
// refuses (reads then report the time they returned).
bool EnableRxTimestamps(int fd);

// recvmsg(MSG_DONTWAIT) that also returns the kernel's software receive timestamp of the last
// segment read, converted to MonotonicNanos(); `now_ns` when the kernel gave none.
ssize_t RecvTimestamped(int fd, char* data, size_t len, int64_t now_ns, int64_t* rx_ns);

}  // namespace strata::bench
