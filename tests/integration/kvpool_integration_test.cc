// `strata kvcache` as a real process over UCX tcp on 127.0.0.1, driven by KvPoolClients in this
// test (DESIGN.md §9 integration tier): store from one instance, fetch into another with exact
// bytes, a pool killed mid-way counts as misses within the deadline, a restarted pool at the
// same address is reconnected, SIGTERM exits cleanly.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "common/clock.h"
#include "tests/unit/kvcache/pool_test_util.h"
#include "transport/ucx/ucx_transport.h"

namespace strata::kvcache::testing {
namespace {

constexpr char kTls[] = "tcp";

// A `strata kvcache` child; SIGKILLed and reaped on destruction if still running.
class PoolProcess {
 public:
  static StatusOr<std::unique_ptr<PoolProcess>> Start(const std::string& listen) {
    int out[2];
    if (pipe(out) != 0) return InternalError("pipe failed");
    const pid_t pid = fork();
    if (pid < 0) return InternalError("fork failed");
    if (pid == 0) {
      dup2(out[1], STDOUT_FILENO);
      close(out[0]);
      close(out[1]);
      execl(STRATA_BIN, STRATA_BIN, "kvcache", "--listen", listen.c_str(), "--capacity-bytes",
            "1048576", "--transport", "ucx", "--ucx-tls", kTls, "--stats-interval-s", "0",
            static_cast<char*>(nullptr));
      _exit(127);
    }
    close(out[1]);
    auto process = std::unique_ptr<PoolProcess>(new PoolProcess(pid));
    FILE* stream = fdopen(out[0], "r");
    std::string line;
    Stopwatch watch;
    while (watch.ElapsedMillis() < kWaitMs && line.empty()) {
      fd_set fds;
      FD_ZERO(&fds);
      FD_SET(out[0], &fds);
      timeval timeout{0, 100000};
      if (select(out[0] + 1, &fds, nullptr, nullptr, &timeout) <= 0) continue;
      char buf[256] = {};
      if (std::fgets(buf, sizeof(buf), stream) == nullptr) break;
      line = buf;
    }
    std::fclose(stream);
    const std::string prefix = "listening on ";
    if (line.rfind(prefix, 0) != 0) {
      return UnavailableError("strata kvcache did not report an address (got '" + line + "')");
    }
    line = line.substr(prefix.size());
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    process->address_ = line;
    return process;
  }
  ~PoolProcess() { Kill(); }

  const std::string& address() const { return address_; }
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  // Sends `sig` and waits (bounded) for the exit; true for exit status 0.
  bool Stop(int sig, int64_t ms) {
    kill(pid_, sig);
    Stopwatch watch;
    while (watch.ElapsedMillis() < ms) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0;
      }
      usleep(10000);
    }
    return false;
  }

 private:
  explicit PoolProcess(pid_t pid) : pid_(pid) {}
  pid_t pid_;
  std::string address_;
};

std::unique_ptr<Instance> UcxInstance(const std::vector<std::string>& pools,
                                      KvPoolClientOptions options = {}) {
  transport::UcxOptions ucx;
  ucx.tls = kTls;
  ucx.spin_us = 0;  // the machine is shared
  auto t = transport::UcxTransport::Create(ucx);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  if (!t.ok()) return nullptr;
  return MakeInstance(std::move(t).value(), pools, options);
}

TEST(KvPoolIntegrationTest, StoreFetchKillRestartAndStop) {
  auto pool = PoolProcess::Start("127.0.0.1:0");
  ASSERT_TRUE(pool.ok()) << pool.status().ToString();
  const std::string address = (*pool)->address();
  KvPoolClientOptions options;
  options.reconnect_backoff_ms = 100;
  auto writer = UcxInstance({address}, options);
  auto reader = UcxInstance({address}, options);
  ASSERT_NE(writer, nullptr);
  ASSERT_NE(reader, nullptr);
  writer->Randomize(11);
  reader->Randomize(12);

  const auto hashes = Chain(16, 3);
  std::vector<BlockId> src, dst;
  for (int i = 0; i < 16; ++i) {
    src.push_back(2 * i + 1);
    dst.push_back(63 - i);
  }
  ASSERT_TRUE(writer->StoreAndWait(hashes, src).ok());
  EXPECT_EQ(reader->Lookup(hashes), 16);
  auto fetched = reader->Fetch(hashes, dst);
  ASSERT_TRUE(fetched.ok()) << fetched.status().ToString();
  ASSERT_EQ(*fetched, 16);
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(reader->BlockBytes(dst[i]), writer->BlockBytes(src[i])) << "block " << i;
  }

  // Killed: misses within the deadline, no hang, no error.
  (*pool)->Kill();
  Stopwatch watch;
  EXPECT_EQ(reader->Lookup(hashes, 2000), 0);
  EXPECT_EQ(*reader->Fetch(hashes, dst, 2000), 0);
  EXPECT_LT(watch.ElapsedMillis(), 6000);

  // Restarted at the same address: clients reconnect by themselves (the new pool is empty).
  auto again = PoolProcess::Start(address);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  Status stored;
  Stopwatch retry;
  do {
    stored = writer->StoreAndWait(hashes, src, 2000);
    if (!stored.ok()) usleep(200000);
  } while (!stored.ok() && retry.ElapsedMillis() < kWaitMs);
  ASSERT_TRUE(stored.ok()) << stored.ToString();
  // The reader skips the pool until its reconnect backoff has passed.
  int found = 0;
  for (Stopwatch w; found != 16 && w.ElapsedMillis() < kWaitMs; usleep(50000)) {
    found = reader->Lookup(hashes);
  }
  EXPECT_EQ(found, 16);
  ASSERT_EQ(*reader->Fetch(hashes, dst), 16);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(reader->BlockBytes(dst[i]), writer->BlockBytes(src[i]));

  writer->Stop();
  reader->Stop();
  EXPECT_TRUE((*again)->Stop(SIGTERM, kWaitMs)) << "strata kvcache did not exit cleanly";
}

}  // namespace
}  // namespace strata::kvcache::testing
