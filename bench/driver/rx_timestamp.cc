#include "bench/driver/rx_timestamp.h"

#include <linux/errqueue.h>
#include <linux/net_tstamp.h>
#include <sys/socket.h>
#include <time.h>

#include <cstring>

namespace strata::bench {

bool EnableRxTimestamps(int fd) {
  int flags = SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE;
  return ::setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPING, &flags, sizeof(flags)) == 0;
}

ssize_t RecvTimestamped(int fd, char* data, size_t len, int64_t now_ns, int64_t* rx_ns) {
  iovec iov{data, len};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(scm_timestamping)) + 64];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n = ::recvmsg(fd, &msg, MSG_DONTWAIT);
  *rx_ns = now_ns;
  if (n <= 0) return n;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_TIMESTAMPING) continue;
    scm_timestamping ts;
    std::memcpy(&ts, CMSG_DATA(c), sizeof(ts));
    int64_t rx_real = ts.ts[0].tv_sec * 1000000000LL + ts.ts[0].tv_nsec;
    if (rx_real == 0) break;
    timespec real_now;
    ::clock_gettime(CLOCK_REALTIME, &real_now);
    int64_t age = real_now.tv_sec * 1000000000LL + real_now.tv_nsec - rx_real;
    if (age > 0 && age < 10000000000LL) *rx_ns = now_ns - age;  // ignore clock steps
    break;
  }
  return n;
}

}  // namespace strata::bench
