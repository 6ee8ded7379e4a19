#include "supervisor/free_ports.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace strata::supervisor {

StatusOr<int> FreePorts::Pick() {
  for (int attempt = 0; attempt < 64; ++attempt) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return InternalError(std::string("socket: ") + std::strerror(errno));
    fds_.push_back(fd);  // held until Release(), whatever the port
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      return InternalError(std::string("cannot find a free port: ") + std::strerror(errno));
    }
    const int port = ntohs(a.sin_port);
    if (taken_.insert(port).second) return port;  // else a reserved one: try again
  }
  return InternalError("cannot find a free port that is not reserved");
}

void FreePorts::Release() {
  for (int fd : fds_) ::close(fd);
  fds_.clear();
}

}  // namespace strata::supervisor
