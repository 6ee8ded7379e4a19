// WaitForTcpPort / TcpPortReady (declared in supervisor.h).
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <thread>

#include <spdlog/fmt/fmt.h>

#include "supervisor/supervisor.h"

namespace strata::supervisor {
namespace {

using std::chrono::milliseconds;

constexpr int64_t kAttemptTimeoutMs = 200;  // one connect attempt waits at most this long
constexpr int64_t kRetryPauseMs = 20;       // between attempts that were refused

// One non-blocking connect to `ai`, waiting until `deadline`. Empty on success, else the reason.
std::string TryConnect(const addrinfo& ai, MonoClock::time_point deadline) {
  int fd = ::socket(ai.ai_family, ai.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai.ai_protocol);
  if (fd < 0) return fmt::format("socket: {}", std::strerror(errno));
  std::string error;
  if (::connect(fd, ai.ai_addr, ai.ai_addrlen) != 0) {
    if (errno != EINPROGRESS) {
      error = std::strerror(errno);
    } else {
      pollfd pfd{fd, POLLOUT, 0};
      int64_t wait_ms = std::max<int64_t>(
          0, std::chrono::ceil<milliseconds>(deadline - MonoClock::now()).count());
      int r;
      do {
        r = ::poll(&pfd, 1, static_cast<int>(wait_ms));
      } while (r < 0 && errno == EINTR);
      if (r == 0) {
        error = "connect timed out";
      } else if (r < 0) {
        error = fmt::format("poll: {}", std::strerror(errno));
      } else {
        int so_error = 0;
        socklen_t len = sizeof(so_error);
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0) so_error = errno;
        if (so_error != 0) error = std::strerror(so_error);
      }
    }
  }
  ::close(fd);
  return error;
}

}  // namespace

Status WaitForTcpPort(const std::string& host, int port, MonoClock::time_point deadline) {
  if (port < 1 || port > 65535) {
    return InvalidArgumentError(fmt::format("TCP port {} is outside 1..65535", port));
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* resolved = nullptr;
  int gai = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &resolved);
  if (gai != 0) {
    return InvalidArgumentError(
        fmt::format("cannot resolve host '{}': {}", host, ::gai_strerror(gai)));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(resolved, &::freeaddrinfo);

  std::string last_error = "no attempt before the deadline";
  while (true) {
    for (const addrinfo* ai = addresses.get(); ai != nullptr; ai = ai->ai_next) {
      auto attempt_deadline =
          std::min(deadline, MonoClock::now() + milliseconds(kAttemptTimeoutMs));
      std::string error = TryConnect(*ai, attempt_deadline);
      if (error.empty()) return OkStatus();
      last_error = std::move(error);
    }
    auto now = MonoClock::now();
    if (now >= deadline) {
      return DeadlineExceededError(fmt::format(
          "nothing accepted a TCP connection on {}:{} before the deadline (last error: {})", host,
          port, last_error));
    }
    std::this_thread::sleep_for(
        std::min<MonoClock::duration>(deadline - now, milliseconds(kRetryPauseMs)));
  }
}

std::function<bool()> TcpPortReady(std::string host, int port) {
  return [host = std::move(host), port] {
    return WaitForTcpPort(host, port, MonoClock::now() + milliseconds(kAttemptTimeoutMs)).ok();
  };
}

}  // namespace strata::supervisor
