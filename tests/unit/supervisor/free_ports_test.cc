#include "supervisor/free_ports.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>

#include <gtest/gtest.h>

namespace strata::supervisor {
namespace {

bool CanBind(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  ::close(fd);
  return ok;
}

// Probing one port at a time hands the same port out again within a few hundred probes (the
// kernel reuses a port once its probe socket closed); picks never repeat.
TEST(FreePortsTest, PicksAreAllDifferentAndFreeOnceReleased) {
  FreePorts ports;
  std::set<int> seen;
  for (int i = 0; i < 400; ++i) {
    auto port = ports.Pick();
    ASSERT_TRUE(port.ok()) << port.status().ToString();
    EXPECT_TRUE(seen.insert(*port).second) << "port " << *port << " picked twice";
  }
  EXPECT_FALSE(CanBind(*seen.begin())) << "held until Release()";
  ports.Release();
  EXPECT_TRUE(CanBind(*seen.begin()));
  EXPECT_TRUE(CanBind(*seen.rbegin()));
}

TEST(FreePortsTest, ReservedPortsAreNeverPicked) {
  FreePorts probe;
  auto first = probe.Pick();
  ASSERT_TRUE(first.ok());
  probe.Release();
  FreePorts ports;
  ports.Reserve(*first);
  for (int i = 0; i < 200; ++i) {
    auto port = ports.Pick();
    ASSERT_TRUE(port.ok());
    EXPECT_NE(*port, *first);
  }
}

}  // namespace
}  // namespace strata::supervisor
