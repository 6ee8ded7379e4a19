// The Transport contract, run over every implementation (STYLE.md habit 4).
#include <gtest/gtest.h>

#include <cstring>
#include <future>
#include <thread>

#include "common/clock.h"
#include "tests/unit/transport/transport_test_util.h"

namespace strata::transport::testing {
namespace {

class TransportContractTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    auto pair = GetParam().make_pair();
    if (!pair.ok()) GTEST_SKIP() << GetParam().name << " unavailable: " << pair.status().ToString();
    a_ = std::move(pair->first);
    b_ = std::move(pair->second);
    ASSERT_TRUE(a_->SetHandlers(MakeHandlers(a_mail_, a_events_)).ok());
    ASSERT_TRUE(b_->SetHandlers(MakeHandlers(b_mail_, b_events_)).ok());
    auto address = a_->Listen(GetParam().listen_address);
    ASSERT_TRUE(address.ok()) << address.status().ToString();
    address_ = *address;
    auto peer = b_->Connect(address_, DeadlineAfterMillis(kWaitMs));
    ASSERT_TRUE(peer.ok()) << peer.status().ToString();
    b_to_a_ = *peer;
    auto accepted = a_events_.WaitConnected();
    ASSERT_TRUE(accepted.ok()) << accepted.status().ToString();
    a_to_b_ = *accepted;
  }
  void TearDown() override {
    if (b_) b_->Shutdown();
    if (a_) a_->Shutdown();
  }

  std::unique_ptr<Transport> a_, b_;  // a listens, b connects
  Mailbox a_mail_, b_mail_;
  Events a_events_, b_events_;
  std::string address_;
  PeerId a_to_b_ = kInvalidPeer, b_to_a_ = kInvalidPeer;
};

TEST_P(TransportContractTest, MessagesArriveInOrderWithTheirTypeAndSender) {
  // Sizes from empty to large enough for UCX rendezvous, interleaved, so a slow large message
  // must not be overtaken by the small ones behind it.
  constexpr int kNumMessages = 120;
  for (int i = 0; i < kNumMessages; ++i) {
    const uint64_t size = i % 40 == 7 ? (1u << 20) + i : static_cast<uint64_t>(i * 13);
    auto bytes = Pattern(size, i);
    ASSERT_TRUE(b_->Send(b_to_a_, 100 + i % 3, std::string(bytes.begin(), bytes.end())).ok());
  }
  for (int i = 0; i < kNumMessages; ++i) {
    auto message = a_mail_.Pop(DeadlineAfterMillis(kWaitMs));
    ASSERT_TRUE(message.ok()) << "message " << i << ": " << message.status().ToString();
    EXPECT_EQ(message->peer, a_to_b_);
    EXPECT_EQ(message->type, 100u + i % 3);
    const uint64_t size = i % 40 == 7 ? (1u << 20) + i : static_cast<uint64_t>(i * 13);
    auto expected = Pattern(size, i);
    ASSERT_EQ(message->payload, std::string(expected.begin(), expected.end())) << "message " << i;
  }
  // And the other way.
  ASSERT_TRUE(a_->Send(a_to_b_, 7, "reply").ok());
  auto reply = b_mail_.Pop(DeadlineAfterMillis(kWaitMs));
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->payload, "reply");
  EXPECT_EQ(reply->peer, b_to_a_);
}

TEST_P(TransportContractTest, CallbacksMaySendFromTheTransportThread) {
  // An echo server: a's handler answers from inside its callback.
  auto echo = std::make_unique<Mailbox>();
  ASSERT_TRUE(b_->Send(b_to_a_, 1, "ping-0").ok());
  auto first = a_mail_.Pop(DeadlineAfterMillis(kWaitMs));
  ASSERT_TRUE(first.ok());
  // Rewire is not allowed after start, so echo through the mailbox loop on a thread of ours and
  // check replies still work while b keeps sending.
  std::thread server([&] {
    for (int i = 0; i < 20; ++i) {
      auto m = a_mail_.Pop(DeadlineAfterMillis(kWaitMs));
      if (!m.ok()) return;
      (void)a_->Send(m->peer, m->type, "echo:" + m->payload);
    }
  });
  for (int i = 1; i <= 20; ++i) ASSERT_TRUE(b_->Send(b_to_a_, 1, "ping-" + std::to_string(i)).ok());
  for (int i = 1; i <= 20; ++i) {
    auto m = b_mail_.Pop(DeadlineAfterMillis(kWaitMs));
    ASSERT_TRUE(m.ok()) << i;
    EXPECT_EQ(m->payload, "echo:ping-" + std::to_string(i));
  }
  server.join();
}

TEST_P(TransportContractTest, PutAndGetMoveBytesBetweenRegions) {
  constexpr uint64_t kRegionBytes = 8u << 20;
  std::vector<uint8_t> a_memory(kRegionBytes, 0);
  std::vector<uint8_t> b_memory = Pattern(kRegionBytes, 99);
  auto a_region = a_->RegisterMemory(a_memory.data(), a_memory.size());
  auto b_region = b_->RegisterMemory(b_memory.data(), b_memory.size());
  ASSERT_TRUE(a_region.ok()) << a_region.status().ToString();
  ASSERT_TRUE(b_region.ok()) << b_region.status().ToString();
  // a's descriptor travels to b as bytes would in a message.
  const RemoteRegion a_remote = (*a_region)->remote();

  struct Case {
    uint64_t local_offset, remote_offset, length;
  };
  const Case cases[] = {{0, 0, 1}, {5, 1000, 17}, {4096, 65536, 65536}, {0, 4u << 20, 4u << 20}};
  for (const Case& c : cases) {
    Transfer put{b_to_a_,
                 b_region->get(),
                 c.local_offset,
                 a_remote,
                 c.remote_offset,
                 c.length,
                 DeadlineAfterMillis(kWaitMs)};
    Status status = PutAndWait(*b_, put);
    ASSERT_TRUE(status.ok()) << "put of " << c.length << ": " << status.ToString();
    ASSERT_EQ(0, std::memcmp(a_memory.data() + c.remote_offset, b_memory.data() + c.local_offset,
                             c.length))
        << "put of " << c.length << " bytes";
  }
  // Get back into a cleared part of b's memory.
  std::memset(b_memory.data(), 0, 1u << 20);
  Transfer get{b_to_a_,
               b_region->get(),
               0,
               a_remote,
               4096 + 65536 - 4096,
               4096,
               DeadlineAfterMillis(kWaitMs)};
  // a_memory[65536 .. 65536+4096) holds what the third case put there.
  get.remote_offset = 65536;
  Status status = GetAndWait(*b_, get);
  ASSERT_TRUE(status.ok()) << status.ToString();
  auto expected = Pattern(kRegionBytes, 99);
  EXPECT_EQ(0, std::memcmp(b_memory.data(), expected.data() + 4096, 4096));

  // A large get from a's side of what b has (the direction reversed).
  const RemoteRegion b_remote = (*b_region)->remote();
  std::memset(a_memory.data(), 0, a_memory.size());
  Transfer big{
      a_to_b_, a_region->get(), 0, b_remote, 1u << 20, 6u << 20, DeadlineAfterMillis(kWaitMs)};
  status = GetAndWait(*a_, big);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(0, std::memcmp(a_memory.data(), b_memory.data() + (1u << 20), 6u << 20));
}

// AllocateMemory regions (UCX: shared memory that a same-host peer copies to directly), alone and
// mixed with registered heap memory on the other side.
TEST_P(TransportContractTest, AllocatedRegionsMoveBytesEitherWay) {
  constexpr uint64_t kRegionBytes = 4u << 20;
  EXPECT_EQ(a_->AllocateMemory(0).status().code(), StatusCode::kInvalidArgument);
  auto a_allocated = a_->AllocateMemory(kRegionBytes);
  auto b_allocated = b_->AllocateMemory(kRegionBytes);
  ASSERT_TRUE(a_allocated.ok()) << a_allocated.status().ToString();
  ASSERT_TRUE(b_allocated.ok()) << b_allocated.status().ToString();
  ASSERT_EQ((*a_allocated)->size(), kRegionBytes);
  ASSERT_EQ(reinterpret_cast<uintptr_t>((*a_allocated)->data()) % 4096, 0u);
  std::vector<uint8_t> b_heap = Pattern(kRegionBytes, 7);
  auto b_registered = b_->RegisterMemory(b_heap.data(), b_heap.size());
  ASSERT_TRUE(b_registered.ok());
  auto* a_bytes = static_cast<uint8_t*>((*a_allocated)->data());
  auto* b_bytes = static_cast<uint8_t*>((*b_allocated)->data());
  const std::vector<uint8_t> pattern = Pattern(kRegionBytes, 11);
  std::memcpy(b_bytes, pattern.data(), kRegionBytes);
  std::memset(a_bytes, 0, kRegionBytes);

  // allocated -> allocated, at offsets.
  Transfer put{b_to_a_,        b_allocated->get(),          100, (*a_allocated)->remote(), 4096,
               (1u << 20) + 3, DeadlineAfterMillis(kWaitMs)};
  ASSERT_TRUE(PutAndWait(*b_, put).ok());
  EXPECT_EQ(0, std::memcmp(a_bytes + 4096, pattern.data() + 100, (1u << 20) + 3));
  EXPECT_EQ(a_bytes[4095], 0);
  EXPECT_EQ(a_bytes[4096 + (1u << 20) + 3], 0);
  // registered heap -> allocated.
  Transfer put_heap{b_to_a_,  b_registered->get(),         0, (*a_allocated)->remote(), 2u << 20,
                    1u << 20, DeadlineAfterMillis(kWaitMs)};
  ASSERT_TRUE(PutAndWait(*b_, put_heap).ok());
  EXPECT_EQ(0, std::memcmp(a_bytes + (2u << 20), b_heap.data(), 1u << 20));
  // Get from allocated into allocated, and into registered heap.
  std::memset(b_bytes, 0, kRegionBytes);
  Transfer get{b_to_a_,  b_allocated->get(),          0, (*a_allocated)->remote(), 4096,
               1u << 20, DeadlineAfterMillis(kWaitMs)};
  ASSERT_TRUE(GetAndWait(*b_, get).ok());
  EXPECT_EQ(0, std::memcmp(b_bytes, pattern.data() + 100, 1u << 20));
  // A large copy to a destination off any alignment, of a length off any block size (a direct
  // copy of this size streams past the caches: head, body and tail).
  std::memset(b_bytes, 0, kRegionBytes);
  Transfer odd{b_to_a_,
               b_allocated->get(),
               (2u << 20) + 5,
               (*a_allocated)->remote(),
               4096 + 3,
               (1u << 20) + 77,
               DeadlineAfterMillis(kWaitMs)};
  ASSERT_TRUE(GetAndWait(*b_, odd).ok());
  EXPECT_EQ(0, std::memcmp(b_bytes + (2u << 20) + 5, a_bytes + 4096 + 3, (1u << 20) + 77));
  EXPECT_EQ(b_bytes[(2u << 20) + 4], 0);
  EXPECT_EQ(b_bytes[(2u << 20) + 5 + (1u << 20) + 77], 0);
  Transfer get_heap{b_to_a_, b_registered->get(),         8, (*a_allocated)->remote(), 2u << 20,
                    4096,    DeadlineAfterMillis(kWaitMs)};
  ASSERT_TRUE(GetAndWait(*b_, get_heap).ok());
  EXPECT_EQ(0, std::memcmp(b_heap.data() + 8, a_bytes + (2u << 20), 4096));
  // The other way round: a reads b's registered heap region into its allocated one.
  Transfer reverse{a_to_b_, a_allocated->get(),          0, (*b_registered)->remote(), 0,
                   65536,   DeadlineAfterMillis(kWaitMs)};
  ASSERT_TRUE(GetAndWait(*a_, reverse).ok());
  EXPECT_EQ(0, std::memcmp(a_bytes, b_heap.data(), 65536));
}

TEST_P(TransportContractTest, ManyConcurrentTransfersAllComplete) {
  constexpr uint64_t kBlock = 64 * 1024;
  constexpr int kNumBlocks = 32;
  std::vector<uint8_t> a_memory(kBlock * kNumBlocks, 0);
  std::vector<uint8_t> b_memory = Pattern(kBlock * kNumBlocks, 5);
  auto a_region = a_->RegisterMemory(a_memory.data(), a_memory.size());
  auto b_region = b_->RegisterMemory(b_memory.data(), b_memory.size());
  ASSERT_TRUE(a_region.ok() && b_region.ok());
  std::vector<std::future<Status>> results;
  for (int i = 0; i < kNumBlocks; ++i) {
    auto promise = std::make_shared<std::promise<Status>>();
    results.push_back(promise->get_future());
    // Reverse order on the remote side, like scattered KV blocks.
    Transfer put{b_to_a_,
                 b_region->get(),
                 i * kBlock,
                 (*a_region)->remote(),
                 (kNumBlocks - 1 - i) * kBlock,
                 kBlock,
                 DeadlineAfterMillis(kWaitMs)};
    b_->Put(put, [promise](Status s) { promise->set_value(s); });
  }
  for (auto& result : results) {
    ASSERT_EQ(result.wait_for(std::chrono::milliseconds(2 * kWaitMs)), std::future_status::ready);
    ASSERT_TRUE(result.get().ok());
  }
  for (int i = 0; i < kNumBlocks; ++i) {
    ASSERT_EQ(0, std::memcmp(a_memory.data() + (kNumBlocks - 1 - i) * kBlock,
                             b_memory.data() + i * kBlock, kBlock))
        << "block " << i;
  }
}

// What a KV Put or Get asks: many segments at scattered offsets, to shared (allocated) and
// heap memory, in one batch; each transfer succeeds or fails on its own.
std::vector<Status> RunBatch(Transport& transport, std::vector<Transfer> transfers, bool is_put) {
  auto promise = std::make_shared<std::promise<std::vector<Status>>>();
  auto future = promise->get_future();
  auto done = [promise](std::vector<Status> statuses) { promise->set_value(std::move(statuses)); };
  is_put ? transport.PutBatch(std::move(transfers), done)
         : transport.GetBatch(std::move(transfers), done);
  if (future.wait_for(std::chrono::milliseconds(2 * kWaitMs)) != std::future_status::ready) {
    ADD_FAILURE() << "the batch never completed";
    return {};
  }
  return future.get();
}

TEST_P(TransportContractTest, BatchesMoveEverySegmentAndReportEachTransfer) {
  constexpr uint64_t kSegment = 70'001;  // off every alignment
  constexpr int kSegments = 40;          // 2.8 MB: shared out across copy threads
  constexpr uint64_t kBytes = kSegment * kSegments;
  auto a_allocated = a_->AllocateMemory(kBytes);
  auto b_allocated = b_->AllocateMemory(kBytes);
  ASSERT_TRUE(a_allocated.ok() && b_allocated.ok());
  std::vector<uint8_t> a_heap(kSegment * 2, 0);
  auto a_registered = a_->RegisterMemory(a_heap.data(), a_heap.size());
  ASSERT_TRUE(a_registered.ok());
  auto* a_bytes = static_cast<uint8_t*>((*a_allocated)->data());
  auto* b_bytes = static_cast<uint8_t*>((*b_allocated)->data());
  const std::vector<uint8_t> pattern = Pattern(kBytes, 23);
  std::memcpy(b_bytes, pattern.data(), kBytes);
  std::memset(a_bytes, 0, kBytes);

  // b's segment i goes to a's segment (kSegments - 1 - i); then one into heap memory, one past
  // the remote region and one to a peer that does not exist.
  std::vector<Transfer> puts;
  for (int i = 0; i < kSegments; ++i) {
    puts.push_back(Transfer{b_to_a_, b_allocated->get(), i * kSegment, (*a_allocated)->remote(),
                            (kSegments - 1 - i) * kSegment, kSegment,
                            DeadlineAfterMillis(kWaitMs)});
  }
  puts.push_back(Transfer{b_to_a_, b_allocated->get(), 0, (*a_registered)->remote(), kSegment,
                          kSegment, DeadlineAfterMillis(kWaitMs)});
  puts.push_back(Transfer{b_to_a_, b_allocated->get(), 0, (*a_allocated)->remote(), kBytes - 10, 11,
                          DeadlineAfterMillis(kWaitMs)});
  puts.push_back(Transfer{987654, b_allocated->get(), 0, (*a_allocated)->remote(), 0, 16,
                          DeadlineAfterMillis(kWaitMs)});
  std::vector<Status> statuses = RunBatch(*b_, puts, /*is_put=*/true);
  ASSERT_EQ(statuses.size(), puts.size());
  for (int i = 0; i <= kSegments; ++i)
    EXPECT_TRUE(statuses[i].ok()) << i << ": " << statuses[i].ToString();
  EXPECT_EQ(statuses[kSegments + 1].code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(statuses[kSegments + 2].code(), StatusCode::kUnavailable);
  for (int i = 0; i < kSegments; ++i) {
    ASSERT_EQ(0, std::memcmp(a_bytes + (kSegments - 1 - i) * kSegment,
                             pattern.data() + i * kSegment, kSegment))
        << "segment " << i;
  }
  EXPECT_EQ(0, std::memcmp(a_heap.data() + kSegment, pattern.data(), kSegment));
  EXPECT_EQ(a_heap[kSegment - 1], 0);

  // And back: b reads a's segments in order into its own memory, cleared first.
  std::memset(b_bytes, 0, kBytes);
  std::vector<Transfer> gets;
  for (int i = 0; i < kSegments; ++i) {
    gets.push_back(Transfer{b_to_a_, b_allocated->get(), i * kSegment, (*a_allocated)->remote(),
                            i * kSegment, kSegment, DeadlineAfterMillis(kWaitMs)});
  }
  statuses = RunBatch(*b_, gets, /*is_put=*/false);
  ASSERT_EQ(statuses.size(), gets.size());
  for (int i = 0; i < kSegments; ++i)
    EXPECT_TRUE(statuses[i].ok()) << i << ": " << statuses[i].ToString();
  EXPECT_EQ(0, std::memcmp(b_bytes, a_bytes, kBytes));

  // An empty batch completes at once, with nothing to report.
  EXPECT_TRUE(RunBatch(*b_, {}, /*is_put=*/true).empty());
}

TEST_P(TransportContractTest, BadTransfersCompleteWithInvalidArgument) {
  std::vector<uint8_t> a_memory(4096), b_memory(4096);
  auto a_region = a_->RegisterMemory(a_memory.data(), a_memory.size());
  auto b_region = b_->RegisterMemory(b_memory.data(), b_memory.size());
  ASSERT_TRUE(a_region.ok() && b_region.ok());
  const RemoteRegion remote = (*a_region)->remote();
  Transfer past_remote{
      b_to_a_, b_region->get(), 0, remote, 4000, 200, DeadlineAfterMillis(kWaitMs)};
  EXPECT_EQ(PutAndWait(*b_, past_remote).code(), StatusCode::kInvalidArgument);
  Transfer past_local{b_to_a_, b_region->get(), 4095, remote, 0, 2, DeadlineAfterMillis(kWaitMs)};
  EXPECT_EQ(GetAndWait(*b_, past_local).code(), StatusCode::kInvalidArgument);
  Transfer empty{b_to_a_, b_region->get(), 0, remote, 0, 0, DeadlineAfterMillis(kWaitMs)};
  EXPECT_EQ(PutAndWait(*b_, empty).code(), StatusCode::kInvalidArgument);
  Transfer unknown_peer{987654, b_region->get(), 0, remote, 0, 16, DeadlineAfterMillis(kWaitMs)};
  EXPECT_EQ(PutAndWait(*b_, unknown_peer).code(), StatusCode::kUnavailable);
  // And the connection still works afterwards.
  Transfer fine{b_to_a_, b_region->get(), 0, remote, 0, 4096, DeadlineAfterMillis(kWaitMs)};
  EXPECT_TRUE(PutAndWait(*b_, fine).ok());
}

TEST_P(TransportContractTest, TransferWhoseDeadlinePassedIsDeadlineExceeded) {
  std::vector<uint8_t> a_memory(4096), b_memory(4096);
  auto a_region = a_->RegisterMemory(a_memory.data(), a_memory.size());
  auto b_region = b_->RegisterMemory(b_memory.data(), b_memory.size());
  ASSERT_TRUE(a_region.ok() && b_region.ok());
  Transfer late{b_to_a_,
                b_region->get(),
                0,
                (*a_region)->remote(),
                0,
                64,
                MonoClock::now() - std::chrono::milliseconds(1)};
  EXPECT_EQ(PutAndWait(*b_, late).code(), StatusCode::kDeadlineExceeded);
}

TEST_P(TransportContractTest, SendRejectsReservedTypesAndUnknownPeers) {
  EXPECT_EQ(b_->Send(b_to_a_, kFirstReservedMessageType, "x").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(b_->Send(424242, 1, "x").code(), StatusCode::kUnavailable);
  EXPECT_EQ(a_->SetHandlers(Handlers{}).code(), StatusCode::kFailedPrecondition);
}

TEST_P(TransportContractTest, DisconnectIsReportedToThePeerAndFailsLaterCalls) {
  ASSERT_TRUE(b_->Disconnect(b_to_a_).ok());
  auto why = a_events_.WaitFailed(a_to_b_);
  ASSERT_TRUE(why.has_value()) << "no failure callback";
  EXPECT_FALSE(why->ok());
  EXPECT_FALSE(b_->Send(b_to_a_, 1, "after").ok());
  EXPECT_EQ(b_->Disconnect(b_to_a_).code(), StatusCode::kNotFound);
  // The side that disconnected does not get a failure callback for its own act.
  EXPECT_EQ(b_events_.num_failed(), 0u);
  // a may connect again.
  auto again = b_->Connect(address_, DeadlineAfterMillis(kWaitMs));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_NE(*again, b_to_a_);
  ASSERT_TRUE(b_->Send(*again, 3, "hello again").ok());
  auto message = a_mail_.Pop(DeadlineAfterMillis(kWaitMs));
  ASSERT_TRUE(message.ok());
  EXPECT_EQ(message->payload, "hello again");
}

TEST_P(TransportContractTest, ShutdownIsReportedToThePeerAndCompletesPendingWork) {
  std::vector<uint8_t> a_memory(1 << 20), b_memory(1 << 20);
  auto a_region = a_->RegisterMemory(a_memory.data(), a_memory.size());
  auto b_region = b_->RegisterMemory(b_memory.data(), b_memory.size());
  ASSERT_TRUE(a_region.ok() && b_region.ok());
  std::vector<std::future<Status>> results;
  for (int i = 0; i < 8; ++i) {
    auto promise = std::make_shared<std::promise<Status>>();
    results.push_back(promise->get_future());
    Transfer put{b_to_a_,
                 b_region->get(),
                 0,
                 (*a_region)->remote(),
                 0,
                 1 << 20,
                 DeadlineAfterMillis(kWaitMs)};
    b_->Put(put, [promise](Status s) { promise->set_value(s); });
  }
  b_->Shutdown();
  // Every transfer completed (successfully or not) by the time Shutdown returned.
  for (auto& result : results) {
    ASSERT_EQ(result.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  }
  auto why = a_events_.WaitFailed(a_to_b_);
  ASSERT_TRUE(why.has_value()) << "no failure callback";
  // After shutdown calls fail without hanging.
  EXPECT_FALSE(b_->Send(b_to_a_, 1, "x").ok());
  Transfer put{
      b_to_a_, b_region->get(), 0, (*a_region)->remote(), 0, 16, DeadlineAfterMillis(kWaitMs)};
  EXPECT_EQ(PutAndWait(*b_, put).code(), StatusCode::kCancelled);
}

TEST_P(TransportContractTest, ConnectToNobodyFailsWithinItsDeadline) {
  const std::string nowhere =
      GetParam().listen_address == "127.0.0.1:0" ? "127.0.0.1:1" : "nobody:1";
  Stopwatch watch;
  auto peer = b_->Connect(nowhere, DeadlineAfterMillis(3000));
  EXPECT_FALSE(peer.ok());
  EXPECT_LT(watch.ElapsedMillis(), 3000 + 5000);
  EXPECT_FALSE(b_->Connect("not an address", DeadlineAfterMillis(1000)).ok());
}

INSTANTIATE_TEST_SUITE_P(
    AllTransports, TransportContractTest,
    ::testing::Values(InprocBackend(), InprocBackend(/*fault_wrapped=*/true),
                      UcxBackend("ucx_tcp", "tcp", UcxOptions::BulkMode::kAuto),
                      UcxBackend("ucx_sm", "sm,tcp", UcxOptions::BulkMode::kAuto),
                      UcxBackend("ucx_sm_rma", "sm,tcp", UcxOptions::BulkMode::kRma),
                      UcxBackend("fault_ucx_tcp", "tcp", UcxOptions::BulkMode::kAuto,
                                 /*fault_wrapped=*/true)),
    [](const ::testing::TestParamInfo<Backend>& info) { return info.param.name; });

}  // namespace
}  // namespace strata::transport::testing
