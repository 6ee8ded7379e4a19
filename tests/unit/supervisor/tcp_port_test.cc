// WaitForTcpPort / TcpPortReady against real loopback sockets.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "supervisor/supervisor.h"

namespace strata::supervisor {
namespace {

using std::chrono::milliseconds;

// A bound (and, when `listen`, listening) IPv4 loopback socket on `port` (0: any free port).
class LoopbackSocket {
 public:
  explicit LoopbackSocket(int port, bool listen) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    ok_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
          (!listen || ::listen(fd_, 16) == 0);
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~LoopbackSocket() { ::close(fd_); }
  bool ok() const { return ok_; }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  bool ok_ = false;
  int port_ = 0;
};

// A port nothing listens on: bound, then released.
int FreePort() {
  LoopbackSocket socket(0, /*listen=*/false);
  return socket.port();
}

TEST(WaitForTcpPortTest, TimesOutCleanlyWhenNothingListens) {
  int port = FreePort();
  Stopwatch watch;
  Status status = WaitForTcpPort("127.0.0.1", port, MonoClock::now() + milliseconds(200));
  double elapsed_s = watch.ElapsedSeconds();
  EXPECT_EQ(status.code(), StatusCode::kDeadlineExceeded) << status.ToString();
  EXPECT_NE(status.message().find("127.0.0.1:" + std::to_string(port)), std::string::npos);
  EXPECT_NE(status.message().find("refused"), std::string::npos) << status.message();
  EXPECT_GE(elapsed_s, 0.2);
  EXPECT_LT(elapsed_s, 1.0);
}

TEST(WaitForTcpPortTest, SucceedsAtOnceWhenSomethingListens) {
  LoopbackSocket listener(0, /*listen=*/true);
  ASSERT_TRUE(listener.ok());
  Stopwatch watch;
  EXPECT_TRUE(
      WaitForTcpPort("127.0.0.1", listener.port(), MonoClock::now() + milliseconds(2'000)).ok());
  EXPECT_TRUE(
      WaitForTcpPort("localhost", listener.port(), MonoClock::now() + milliseconds(2'000)).ok());
  EXPECT_LT(watch.ElapsedSeconds(), 0.5);
}

TEST(WaitForTcpPortTest, SucceedsOnceAListenerAppears) {
  int port = FreePort();
  std::thread late([port] {
    std::this_thread::sleep_for(milliseconds(150));
    LoopbackSocket listener(port, /*listen=*/true);
    std::this_thread::sleep_for(milliseconds(300));
  });
  Stopwatch watch;
  Status status = WaitForTcpPort("127.0.0.1", port, MonoClock::now() + milliseconds(3'000));
  double elapsed_s = watch.ElapsedSeconds();
  late.join();
  EXPECT_TRUE(status.ok()) << status.ToString();
  EXPECT_GE(elapsed_s, 0.14);
  EXPECT_LT(elapsed_s, 1.0);
}

TEST(WaitForTcpPortTest, RejectsPortsOutOfRange) {
  auto deadline = MonoClock::now() + milliseconds(100);
  EXPECT_EQ(WaitForTcpPort("127.0.0.1", 0, deadline).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(WaitForTcpPort("127.0.0.1", 65536, deadline).code(), StatusCode::kInvalidArgument);
}

TEST(WaitForTcpPortTest, AnExpiredDeadlineStillTriesOnce) {
  LoopbackSocket listener(0, /*listen=*/true);
  ASSERT_TRUE(listener.ok());
  EXPECT_TRUE(WaitForTcpPort("127.0.0.1", listener.port(), MonoClock::now()).ok());
}

TEST(TcpPortReadyTest, ReportsWhetherThePortAcceptsConnections) {
  LoopbackSocket listener(0, /*listen=*/true);
  ASSERT_TRUE(listener.ok());
  EXPECT_TRUE(TcpPortReady("127.0.0.1", listener.port())());
  Stopwatch watch;
  EXPECT_FALSE(TcpPortReady("127.0.0.1", FreePort())());
  EXPECT_LT(watch.ElapsedSeconds(), 0.5);
}

}  // namespace
}  // namespace strata::supervisor
