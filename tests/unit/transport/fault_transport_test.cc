// Fault injection: what the layers above rely on when messages are lost, late, or peers vanish.
#include <gtest/gtest.h>

#include <future>

#include "common/clock.h"
#include "tests/unit/transport/transport_test_util.h"

namespace strata::transport::testing {
namespace {

// a = FaultTransport over the inner backend (it listens); b = plain inner transport.
class FaultTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    auto pair = GetParam().make_pair();
    if (!pair.ok()) GTEST_SKIP() << GetParam().name << ": " << pair.status().ToString();
    fault_ = new FaultTransport(std::move(pair->first));
    a_.reset(fault_);
    b_ = std::move(pair->second);
    ASSERT_TRUE(a_->SetHandlers(MakeHandlers(a_mail_, a_events_)).ok());
    ASSERT_TRUE(b_->SetHandlers(MakeHandlers(b_mail_, b_events_)).ok());
    auto address = a_->Listen(GetParam().listen_address);
    ASSERT_TRUE(address.ok()) << address.status().ToString();
    auto peer = b_->Connect(*address, DeadlineAfterMillis(kWaitMs));
    ASSERT_TRUE(peer.ok()) << peer.status().ToString();
    b_to_a_ = *peer;
    auto accepted = a_events_.WaitConnected();
    ASSERT_TRUE(accepted.ok());
    a_to_b_ = *accepted;
    a_memory_.assign(1 << 20, 0);
    b_memory_ = Pattern(1 << 20, 1);
    auto a_region = a_->RegisterMemory(a_memory_.data(), a_memory_.size());
    auto b_region = b_->RegisterMemory(b_memory_.data(), b_memory_.size());
    ASSERT_TRUE(a_region.ok() && b_region.ok());
    a_region_ = std::move(*a_region);
    b_region_ = std::move(*b_region);
  }
  void TearDown() override {
    if (b_) b_->Shutdown();
    if (a_) a_->Shutdown();
  }
  // a puts its region into b's.
  Transfer PutToB(int64_t deadline_ms) {
    return Transfer{a_to_b_,
                    a_region_.get(),
                    0,
                    b_region_->remote(),
                    0,
                    a_memory_.size(),
                    DeadlineAfterMillis(deadline_ms)};
  }

  FaultTransport* fault_ = nullptr;
  std::unique_ptr<Transport> a_, b_;
  Mailbox a_mail_, b_mail_;
  Events a_events_, b_events_;
  PeerId a_to_b_ = kInvalidPeer, b_to_a_ = kInvalidPeer;
  std::vector<uint8_t> a_memory_, b_memory_;
  std::unique_ptr<Region> a_region_, b_region_;
};

TEST_P(FaultTest, DroppedMessageTimesOutWithDeadlineExceeded) {
  fault_->SetDropMessages(true);
  ASSERT_TRUE(a_->Send(a_to_b_, 1, "lost").ok());  // accepted, as a lossy network would
  Stopwatch watch;
  auto message = b_mail_.Pop(DeadlineAfterMillis(300));
  ASSERT_FALSE(message.ok());
  EXPECT_EQ(message.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_GE(watch.ElapsedMillis(), 250);
  fault_->SetDropMessages(false);
  ASSERT_TRUE(a_->Send(a_to_b_, 1, "delivered").ok());
  message = b_mail_.Pop(DeadlineAfterMillis(kWaitMs));
  ASSERT_TRUE(message.ok());
  EXPECT_EQ(message->payload, "delivered");
}

TEST_P(FaultTest, DelayedMessagesArriveLateAndInOrder) {
  fault_->SetMessageDelay(std::chrono::milliseconds(200));
  Stopwatch watch;
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(a_->Send(a_to_b_, 1, std::to_string(i)).ok());
  fault_->SetMessageDelay(std::chrono::milliseconds(0));
  ASSERT_TRUE(a_->Send(a_to_b_, 1, "5").ok());  // not allowed to overtake the delayed ones
  for (int i = 0; i < 6; ++i) {
    auto message = b_mail_.Pop(DeadlineAfterMillis(kWaitMs));
    ASSERT_TRUE(message.ok());
    EXPECT_EQ(message->payload, std::to_string(i));
    if (i == 0) EXPECT_GE(watch.ElapsedMillis(), 150);
  }
}

TEST_P(FaultTest, DelayedTransferPastItsDeadlineIsDeadlineExceededAtTheDeadline) {
  fault_->SetTransferDelay(std::chrono::milliseconds(5000));
  Stopwatch watch;
  Status status = PutAndWait(*a_, PutToB(200));
  EXPECT_EQ(status.code(), StatusCode::kDeadlineExceeded) << status.ToString();
  EXPECT_LT(watch.ElapsedMillis(), 3000);
  // A delay within the deadline just makes it late.
  fault_->SetTransferDelay(std::chrono::milliseconds(50));
  EXPECT_TRUE(PutAndWait(*a_, PutToB(kWaitMs)).ok());
  EXPECT_EQ(a_memory_, b_memory_);
}

TEST_P(FaultTest, FailAfterNOperations) {
  fault_->FailAfter(3);
  EXPECT_TRUE(a_->Send(a_to_b_, 1, "1").ok());
  EXPECT_TRUE(a_->Send(a_to_b_, 1, "2").ok());
  EXPECT_TRUE(PutAndWait(*a_, PutToB(kWaitMs)).ok());
  EXPECT_EQ(a_->Send(a_to_b_, 1, "4").code(), StatusCode::kUnavailable);
  EXPECT_EQ(PutAndWait(*a_, PutToB(kWaitMs)).code(), StatusCode::kUnavailable);
  EXPECT_EQ(GetAndWait(*a_, PutToB(kWaitMs)).code(), StatusCode::kUnavailable);
  fault_->FailAfter(-1);
  EXPECT_TRUE(a_->Send(a_to_b_, 1, "again").ok());
}

TEST_P(FaultTest, DisconnectFailsPendingTransfersAndNotifiesBothSides) {
  // Transfers held back by a long delay are "in flight" when the link is cut.
  fault_->SetTransferDelay(std::chrono::milliseconds(60000));
  std::vector<std::future<Status>> pending;
  for (int i = 0; i < 4; ++i) {
    auto promise = std::make_shared<std::promise<Status>>();
    pending.push_back(promise->get_future());
    auto done = [promise](Status s) { promise->set_value(s); };
    if (i % 2 == 0) {
      a_->Put(PutToB(kWaitMs * 3), done);
    } else {
      a_->Get(PutToB(kWaitMs * 3), done);
    }
  }
  Stopwatch watch;
  ASSERT_TRUE(fault_->InjectDisconnect(a_to_b_).ok());
  for (auto& result : pending) {
    ASSERT_EQ(result.wait_for(std::chrono::milliseconds(kWaitMs)), std::future_status::ready);
    EXPECT_EQ(result.get().code(), StatusCode::kUnavailable);
  }
  EXPECT_LT(watch.ElapsedMillis(), kWaitMs);
  auto local = a_events_.WaitFailed(a_to_b_);
  ASSERT_TRUE(local.has_value());
  EXPECT_EQ(local->code(), StatusCode::kUnavailable);
  auto remote = b_events_.WaitFailed(b_to_a_);
  ASSERT_TRUE(remote.has_value()) << "the other side was not told";
  // Later calls fail at once.
  EXPECT_EQ(a_->Send(a_to_b_, 1, "x").code(), StatusCode::kUnavailable);
  EXPECT_EQ(PutAndWait(*a_, PutToB(kWaitMs)).code(), StatusCode::kUnavailable);
}

TEST_P(FaultTest, DisconnectDuringRealTransfersFailsThemWithoutHanging) {
  // No delay: the cut races real in-flight transfers; each completes once, promptly.
  std::vector<std::future<Status>> pending;
  for (int i = 0; i < 16; ++i) {
    auto promise = std::make_shared<std::promise<Status>>();
    pending.push_back(promise->get_future());
    a_->Put(PutToB(kWaitMs * 3), [promise](Status s) { promise->set_value(s); });
  }
  ASSERT_TRUE(fault_->InjectDisconnect(a_to_b_).ok());
  for (auto& result : pending) {
    ASSERT_EQ(result.wait_for(std::chrono::milliseconds(kWaitMs)), std::future_status::ready);
    const Status status = result.get();
    EXPECT_TRUE(status.ok() || status.code() == StatusCode::kUnavailable) << status.ToString();
  }
  ASSERT_TRUE(b_events_.WaitFailed(b_to_a_).has_value());
}

INSTANTIATE_TEST_SUITE_P(
    Inner, FaultTest,
    ::testing::Values(InprocBackend(), UcxBackend("ucx_tcp", "tcp", UcxOptions::BulkMode::kAuto),
                      UcxBackend("ucx_sm", "sm,tcp", UcxOptions::BulkMode::kAuto)),
    [](const ::testing::TestParamInfo<Backend>& info) { return info.param.name; });

}  // namespace
}  // namespace strata::transport::testing
