// Two real processes over UCX on 127.0.0.1 (DESIGN.md §9 integration tier): this test and a
// transport_peer child it spawns. Runs over tcp and over sm (+tcp for the connection manager).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <future>
#include <string>

#include "common/clock.h"
#include "proto/common.pb.h"
#include "tests/integration/transport_peer_protocol.h"
#include "transport/sync.h"
#include "transport/ucx/ucx_transport.h"

namespace strata::transport {
namespace {

constexpr int64_t kWaitMs = 15000;
constexpr uint64_t kRegionBytes = 64ull << 20;

// A transport_peer child process; killed (SIGKILL) and reaped on destruction if still running.
class PeerProcess {
 public:
  static StatusOr<std::unique_ptr<PeerProcess>> Start(const std::string& tls, bool allocate) {
    int out[2];
    if (pipe(out) != 0) return InternalError("pipe failed");
    const pid_t pid = fork();
    if (pid < 0) return InternalError("fork failed");
    if (pid == 0) {
      dup2(out[1], STDOUT_FILENO);
      close(out[0]);
      close(out[1]);
      const std::string bytes = std::to_string(kRegionBytes);
      execl(TRANSPORT_PEER_PATH, TRANSPORT_PEER_PATH, tls.c_str(), bytes.c_str(),
            allocate ? "allocated" : "registered", static_cast<char*>(nullptr));
      _exit(127);
    }
    close(out[1]);
    auto process = std::unique_ptr<PeerProcess>(new PeerProcess(pid));
    // The child prints its address once it listens; bounded by the poll below.
    FILE* stream = fdopen(out[0], "r");
    std::string address;
    Stopwatch watch;
    while (watch.ElapsedMillis() < kWaitMs) {
      fd_set fds;
      FD_ZERO(&fds);
      FD_SET(out[0], &fds);
      timeval timeout{0, 100000};
      if (select(out[0] + 1, &fds, nullptr, nullptr, &timeout) <= 0) continue;
      char line[256] = {};
      if (std::fgets(line, sizeof(line), stream) == nullptr) break;
      address = line;
      while (!address.empty() && (address.back() == '\n' || address.back() == '\r')) {
        address.pop_back();
      }
      break;
    }
    std::fclose(stream);
    if (address.empty()) return UnavailableError("transport_peer did not report an address");
    process->address_ = address;
    return process;
  }
  ~PeerProcess() { Kill(); }

  const std::string& address() const { return address_; }
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  // Waits (bounded) for a clean exit; true when it exited with status 0.
  bool WaitExit(int64_t ms) {
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
  explicit PeerProcess(pid_t pid) : pid_(pid) {}
  pid_t pid_;
  std::string address_;
};

// UCX_TLS, and whether both sides use AllocateMemory (over sm: direct copies) or registered heap
// memory.
struct Setup {
  std::string tls;
  bool allocate = false;
};

class TransportIntegrationTest : public ::testing::TestWithParam<Setup> {
 protected:
  void SetUp() override {
    auto peer = PeerProcess::Start(GetParam().tls, GetParam().allocate);
    ASSERT_TRUE(peer.ok()) << peer.status().ToString();
    peer_ = std::move(*peer);
    UcxOptions options;
    options.tls = GetParam().tls;
    auto transport = UcxTransport::Create(options);
    ASSERT_TRUE(transport.ok()) << transport.status().ToString();
    transport_ = std::move(*transport);
    Handlers handlers;
    handlers.on_message = mailbox_.Handler();
    handlers.on_peer_failure = [this](PeerId peer, const Status& why) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!failure_set_) failure_.set_value(std::make_pair(peer, why));
      failure_set_ = true;
    };
    ASSERT_TRUE(transport_->SetHandlers(std::move(handlers)).ok());
    auto connected = transport_->Connect(peer_->address(), DeadlineAfterMillis(kWaitMs));
    ASSERT_TRUE(connected.ok()) << connected.status().ToString();
    peer_id_ = *connected;
  }
  void TearDown() override {
    if (transport_) transport_->Shutdown();
  }

  StatusOr<Message> Ask(uint32_t type, std::string payload) {
    STRATA_RETURN_IF_ERROR(transport_->Send(peer_id_, type, std::move(payload)));
    return mailbox_.Pop(DeadlineAfterMillis(kWaitMs));
  }
  // This side's region of `bytes`, per GetParam().allocate; `heap` backs a registered one.
  StatusOr<std::unique_ptr<Region>> LocalRegion(uint64_t bytes, std::vector<uint8_t>& heap) {
    if (GetParam().allocate) {
      STRATA_ASSIGN_OR_RETURN(auto region, transport_->AllocateMemory(bytes));
      std::memset(region->data(), 0, bytes);
      return region;
    }
    heap.assign(bytes, 0);
    return transport_->RegisterMemory(heap.data(), heap.size());
  }
  StatusOr<RemoteRegion> PeerRegion() {
    STRATA_ASSIGN_OR_RETURN(Message reply, Ask(integration::kDescribe, ""));
    v1::RemoteMemory remote;
    if (!remote.ParseFromString(reply.payload)) return DataLossError("bad RemoteMemory");
    return RemoteRegion{remote.address(), remote.length(), remote.packed_key()};
  }

  std::unique_ptr<PeerProcess> peer_;
  std::unique_ptr<UcxTransport> transport_;
  PeerId peer_id_ = kInvalidPeer;
  Mailbox mailbox_;
  std::mutex mu_;
  std::promise<std::pair<PeerId, Status>> failure_;
  bool failure_set_ = false;
};

TEST_P(TransportIntegrationTest, MessagesComeBackInOrder) {
  constexpr int kNumMessages = 400;
  for (int i = 0; i < kNumMessages; ++i) {
    // Mostly small, some over the rendezvous threshold.
    std::string payload = std::to_string(i) + ":";
    payload.resize(i % 50 == 3 ? 300000 : 32 + i % 200, static_cast<char>('a' + i % 26));
    ASSERT_TRUE(transport_->Send(peer_id_, integration::kEcho, std::move(payload)).ok());
  }
  for (int i = 0; i < kNumMessages; ++i) {
    auto reply = mailbox_.Pop(DeadlineAfterMillis(kWaitMs));
    ASSERT_TRUE(reply.ok()) << "reply " << i << ": " << reply.status().ToString();
    const std::string prefix = std::to_string(i) + ":";
    ASSERT_EQ(reply->payload.compare(0, prefix.size(), prefix), 0) << "reply " << i;
    ASSERT_EQ(reply->payload.size(), i % 50 == 3 ? 300000u : 32u + i % 200);
  }
}

TEST_P(TransportIntegrationTest, SixtyFourMebibytesEachWayVerifiedByChecksum) {
  auto remote = PeerRegion();
  ASSERT_TRUE(remote.ok()) << remote.status().ToString();
  ASSERT_EQ(remote->length, kRegionBytes);
  std::vector<uint8_t> heap;
  auto region = LocalRegion(kRegionBytes, heap);
  ASSERT_TRUE(region.ok()) << region.status().ToString();
  auto* local = static_cast<uint8_t*>((*region)->data());

  Transfer get{peer_id_, region->get(), 0, *remote, 0, kRegionBytes, DeadlineAfterMillis(kWaitMs)};
  Status status = GetAndWait(*transport_, get);
  ASSERT_TRUE(status.ok()) << status.ToString();
  const auto expected = integration::Pattern(kRegionBytes, integration::kPeerPatternTag);
  EXPECT_EQ(integration::Checksum(local, kRegionBytes),
            integration::Checksum(expected.data(), expected.size()));

  // Overwrite in place: the registered buffer must stay the same memory.
  const auto outgoing = integration::Pattern(kRegionBytes, 1234);
  std::copy(outgoing.begin(), outgoing.end(), local);
  Transfer put{peer_id_, region->get(), 0, *remote, 0, kRegionBytes, DeadlineAfterMillis(kWaitMs)};
  status = PutAndWait(*transport_, put);
  ASSERT_TRUE(status.ok()) << status.ToString();
  auto checksum = Ask(integration::kChecksum, "");
  ASSERT_TRUE(checksum.ok()) << checksum.status().ToString();
  EXPECT_EQ(checksum->payload, std::to_string(integration::Checksum(local, kRegionBytes)));

  ASSERT_TRUE(transport_->Send(peer_id_, integration::kExit, "").ok());
  EXPECT_TRUE(peer_->WaitExit(kWaitMs));
}

TEST_P(TransportIntegrationTest, KilledPeerIsReportedAndPendingTransfersFail) {
  auto remote = PeerRegion();
  ASSERT_TRUE(remote.ok()) << remote.status().ToString();
  std::vector<uint8_t> heap;
  auto region = LocalRegion(kRegionBytes, heap);
  ASSERT_TRUE(region.ok()) << region.status().ToString();
  // Keep transfers in flight while the peer dies (direct copies into its shared memory may all
  // finish first: they need nothing from the peer, and its memory stays mapped here).
  std::vector<std::future<Status>> pending;
  for (int i = 0; i < 8; ++i) {
    auto promise = std::make_shared<std::promise<Status>>();
    pending.push_back(promise->get_future());
    Transfer transfer{
        peer_id_, region->get(), 0, *remote, 0, kRegionBytes, DeadlineAfterMillis(kWaitMs)};
    auto done = [promise](Status s) { promise->set_value(s); };
    if (i % 2 == 0) {
      transport_->Get(transfer, done);
    } else {
      transport_->Put(transfer, done);
    }
  }
  Stopwatch watch;
  peer_->Kill();
  auto failure = failure_.get_future();
  ASSERT_EQ(failure.wait_for(std::chrono::milliseconds(kWaitMs)), std::future_status::ready)
      << "no peer-failure callback";
  const auto [failed_peer, why] = failure.get();
  EXPECT_EQ(failed_peer, peer_id_);
  EXPECT_FALSE(why.ok());
  EXPECT_LT(watch.ElapsedMillis(), 5000) << "failure detected too slowly";
  int num_failed = 0;
  for (auto& result : pending) {
    ASSERT_EQ(result.wait_for(std::chrono::milliseconds(kWaitMs)), std::future_status::ready)
        << "a transfer hung";
    num_failed += result.get().ok() ? 0 : 1;
  }
  if (!GetParam().allocate) EXPECT_GT(num_failed, 0);
  // Later calls fail at once.
  EXPECT_EQ(transport_->Send(peer_id_, integration::kEcho, "x").code(), StatusCode::kUnavailable);
  Transfer after{peer_id_, region->get(), 0, *remote, 0, 64, DeadlineAfterMillis(kWaitMs)};
  EXPECT_EQ(PutAndWait(*transport_, after).code(), StatusCode::kUnavailable);
}

INSTANTIATE_TEST_SUITE_P(Ucx, TransportIntegrationTest,
                         ::testing::Values(Setup{"tcp", false}, Setup{"sm,tcp", false},
                                           Setup{"tcp", true}, Setup{"sm,tcp", true}),
                         [](const ::testing::TestParamInfo<Setup>& info) {
                           return std::string(info.param.tls == "tcp" ? "tcp" : "sm") +
                                  (info.param.allocate ? "_allocated" : "");
                         });

}  // namespace
}  // namespace strata::transport
