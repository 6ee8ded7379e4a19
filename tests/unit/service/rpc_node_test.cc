// RpcNode over the in-process transport: which thread runs what (requests answered inline or on
// the dispatch thread, replies on the transport's thread for the calls that ask for it) and that
// every call still completes exactly once, deadline included.
#include "service/rpc_node.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <memory>

#include "transport/inproc/inproc_transport.h"

namespace strata::service {
namespace {

constexpr int64_t kWaitMs = 5000;

class RpcNodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RpcCallbacks server_callbacks;
    // Lookups are answered inline, Acks on the dispatch thread, Releases never.
    server_callbacks.on_request_inline = [this](PeerId from, Envelope& e) {
      if (!e.has_kv_pool_lookup()) return false;
      inline_on_dispatch_ = server_->OnDispatchThread();
      Envelope reply;
      reply.mutable_kv_pool_lookup_reply()->set_num_hit_blocks(
          static_cast<uint32_t>(e.kv_pool_lookup().block_hashes_size()));
      EXPECT_TRUE(server_->Reply(from, e.call_id(), std::move(reply)).ok());
      return true;
    };
    server_callbacks.on_request = [this](PeerId from, Envelope e) {
      ASSERT_FALSE(e.has_kv_pool_lookup()) << "a lookup reached the dispatch thread";
      if (!e.has_ack()) return;  // never answered
      dispatch_on_dispatch_ = server_->OnDispatchThread();
      Envelope reply;
      reply.mutable_ack();
      EXPECT_TRUE(server_->Reply(from, e.call_id(), std::move(reply)).ok());
    };
    server_ = *RpcNode::Create(transport::NewInprocTransport(fabric_), server_callbacks);
    client_ = *RpcNode::Create(transport::NewInprocTransport(fabric_), {});
    auto address = server_->Listen("pool:0");
    ASSERT_TRUE(address.ok());
    auto peer = client_->Connect(*address, transport::DeadlineAfterMillis(kWaitMs));
    ASSERT_TRUE(peer.ok());
    peer_ = *peer;
  }
  void TearDown() override {
    client_->Shutdown();
    server_->Shutdown();
  }

  struct Result {
    StatusOr<Envelope> reply = InternalError("no reply");
    bool on_dispatch = false;
  };
  // Call() and wait for its callback, recording whether it ran on the client's dispatch thread.
  Result CallAndRecord(Envelope request, ReplyOn reply_on, int64_t deadline_ms = kWaitMs) {
    auto promise = std::make_shared<std::promise<Result>>();
    auto future = promise->get_future();
    client_->Call(
        peer_, std::move(request), transport::DeadlineAfterMillis(deadline_ms),
        [this, promise](StatusOr<Envelope> reply) {
          promise->set_value(Result{std::move(reply), client_->OnDispatchThread()});
        },
        reply_on);
    EXPECT_EQ(future.wait_for(std::chrono::milliseconds(deadline_ms + kWaitMs)),
              std::future_status::ready);
    return future.get();
  }
  static Envelope Lookup(int n) {
    Envelope e;
    for (int i = 0; i < n; ++i) e.mutable_kv_pool_lookup()->add_block_hashes(i);
    return e;
  }

  std::shared_ptr<transport::InprocFabric> fabric_ = transport::NewInprocFabric();
  std::unique_ptr<RpcNode> server_;
  std::unique_ptr<RpcNode> client_;
  PeerId peer_ = transport::kInvalidPeer;
  std::atomic<bool> inline_on_dispatch_{true};
  std::atomic<bool> dispatch_on_dispatch_{false};
};

TEST_F(RpcNodeTest, InlineHandlerAnswersOffTheDispatchThreadOthersGoThere) {
  Result lookup = CallAndRecord(Lookup(3), ReplyOn::kDispatchThread);
  ASSERT_TRUE(lookup.reply.ok()) << lookup.reply.status().ToString();
  EXPECT_EQ(lookup.reply->kv_pool_lookup_reply().num_hit_blocks(), 3u);
  EXPECT_FALSE(inline_on_dispatch_.load());

  Envelope ack;
  ack.mutable_ack();
  Result plain = CallAndRecord(ack, ReplyOn::kDispatchThread);
  ASSERT_TRUE(plain.reply.ok()) << plain.reply.status().ToString();
  EXPECT_TRUE(plain.reply->has_ack());
  EXPECT_TRUE(dispatch_on_dispatch_.load());
}

TEST_F(RpcNodeTest, ReplyRunsWhereTheCallAsked) {
  Result dispatch = CallAndRecord(Lookup(1), ReplyOn::kDispatchThread);
  ASSERT_TRUE(dispatch.reply.ok());
  EXPECT_TRUE(dispatch.on_dispatch);

  Result transport_thread = CallAndRecord(Lookup(2), ReplyOn::kTransportThread);
  ASSERT_TRUE(transport_thread.reply.ok());
  EXPECT_EQ(transport_thread.reply->kv_pool_lookup_reply().num_hit_blocks(), 2u);
  EXPECT_FALSE(transport_thread.on_dispatch);

  auto waited = client_->CallAndWait(peer_, Lookup(4), transport::DeadlineAfterMillis(kWaitMs));
  ASSERT_TRUE(waited.ok()) << waited.status().ToString();
  EXPECT_EQ(waited->kv_pool_lookup_reply().num_hit_blocks(), 4u);
}

TEST_F(RpcNodeTest, UnansweredCallOnTheTransportThreadStillMeetsItsDeadline) {
  Envelope release;  // the server never answers these
  release.mutable_kv_pool_release()->set_lease_id(7);
  Result r = CallAndRecord(release, ReplyOn::kTransportThread, /*deadline_ms=*/100);
  EXPECT_EQ(r.reply.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(r.on_dispatch);  // errors come from the dispatch thread
  // The node still works after it, both ways.
  EXPECT_TRUE(CallAndRecord(Lookup(1), ReplyOn::kTransportThread).reply.ok());
  EXPECT_TRUE(CallAndRecord(Lookup(1), ReplyOn::kDispatchThread).reply.ok());
}

TEST_F(RpcNodeTest, AnsweredCallsLeaveNoTimerBehind) {
  // Each call's deadline is a timer of the dispatch thread; once the reply came it must go, or
  // a busy client keeps thousands of them and wakes for each one when its deadline passes.
  const size_t before = client_->pending_timers();
  for (int i = 0; i < 50; ++i) {
    EXPECT_TRUE(CallAndRecord(Lookup(1), ReplyOn::kTransportThread, 60'000).reply.ok());
    EXPECT_TRUE(CallAndRecord(Lookup(1), ReplyOn::kDispatchThread, 60'000).reply.ok());
  }
  EXPECT_EQ(client_->pending_timers(), before);
  // An unanswered call keeps its timer until its deadline, then completes and drops it.
  Envelope release;
  release.mutable_kv_pool_release()->set_lease_id(7);
  Result r = CallAndRecord(release, ReplyOn::kDispatchThread, /*deadline_ms=*/50);
  EXPECT_EQ(r.reply.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(client_->pending_timers(), before);
}

TEST_F(RpcNodeTest, ErrorRepliesReachTransportThreadCalls) {
  // A lookup with a reply of body `error`: sent by a server that answers with ReplyError.
  RpcCallbacks callbacks;
  std::unique_ptr<RpcNode> refusing;
  callbacks.on_request_inline = [&refusing](PeerId from, Envelope& e) {
    EXPECT_TRUE(refusing->ReplyError(from, e.call_id(), InvalidArgumentError("no")).ok());
    return true;
  };
  refusing = *RpcNode::Create(transport::NewInprocTransport(fabric_), callbacks);
  auto address = refusing->Listen("refusing:0");
  ASSERT_TRUE(address.ok());
  auto peer = client_->Connect(*address, transport::DeadlineAfterMillis(kWaitMs));
  ASSERT_TRUE(peer.ok());
  auto r = client_->CallAndWait(*peer, Lookup(1), transport::DeadlineAfterMillis(kWaitMs));
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  refusing->Shutdown();
}

}  // namespace
}  // namespace strata::service
