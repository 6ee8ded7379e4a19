// StopSignalFd (declared in supervisor.h).
#include <pthread.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/fmt/fmt.h>

#include "supervisor/supervisor.h"

namespace strata::supervisor {

StatusOr<std::unique_ptr<StopSignalFd>> StopSignalFd::Create() {
  sigset_t stop_signals;
  ::sigemptyset(&stop_signals);
  ::sigaddset(&stop_signals, SIGINT);
  ::sigaddset(&stop_signals, SIGTERM);
  sigset_t old_mask;
  int err = ::pthread_sigmask(SIG_BLOCK, &stop_signals, &old_mask);
  if (err != 0) return InternalError(fmt::format("pthread_sigmask: {}", std::strerror(err)));
  int fd = ::signalfd(-1, &stop_signals, SFD_CLOEXEC | SFD_NONBLOCK);
  if (fd < 0) {
    err = errno;
    ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
    return InternalError(fmt::format("signalfd: {}", std::strerror(err)));
  }
  return std::unique_ptr<StopSignalFd>(new StopSignalFd(fd, old_mask));
}

int StopSignalFd::ReadSignal() {
  signalfd_siginfo info{};
  ssize_t n;
  do {
    n = ::read(fd_, &info, sizeof(info));
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(sizeof(info)) ? static_cast<int>(info.ssi_signo) : 0;
}

StopSignalFd::~StopSignalFd() {
  // Consume what is pending, so unblocking does not deliver it with its default action
  // (terminating the process after the stop it asked for has been handled).
  while (ReadSignal() != 0) {
  }
  ::close(fd_);
  ::pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
}

}  // namespace strata::supervisor
