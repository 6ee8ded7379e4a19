// service::Registration's log while the router cannot be reached: waited for quietly at start
// (roles start in any order), a warning once that lasts.
#include "service/registration.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "proto/status_convert.h"
#include "transport/inproc/inproc_transport.h"

namespace strata::service {
namespace {

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(RegistrationTest, AnUnreachableRouterIsWaitedForQuietlyThenWarnedAboutOnce) {
  auto fabric = transport::NewInprocFabric();
  auto node = *RpcNode::Create(transport::NewInprocTransport(fabric), {});
  RegistrationOptions options;
  options.router_address = "router:7100";  // nobody listens there
  options.instance.set_instance_id("decode-0");
  options.retry_ms = 10;
  options.quiet_start_ms = 1500;

  testing::internal::CaptureStderr();
  Registration registration(node.get(), options, [] { return v1::Load(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const std::string start = testing::internal::GetCapturedStderr();
  EXPECT_EQ(Count(start, "waiting for the router at router:7100"), 1u) << start;
  EXPECT_EQ(Count(start, " W "), 0u) << start;

  testing::internal::CaptureStderr();
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  registration.Stop();
  const std::string later = testing::internal::GetCapturedStderr();
  EXPECT_FALSE(registration.registered());
  EXPECT_EQ(Count(later, " W "), 1u) << later;  // dozens of attempts, one warning
  EXPECT_EQ(Count(later, "cannot reach the router at router:7100"), 1u) << later;
  EXPECT_EQ(Count(later, "waiting for the router"), 0u) << later;
  node->Shutdown();
}

TEST(RegistrationTest, ARouterThatRefusesIsWarnedAboutAtOnce) {
  auto fabric = transport::NewInprocFabric();
  RpcNode* router_node = nullptr;
  RpcCallbacks callbacks;
  callbacks.on_request = [&router_node](PeerId from, Envelope e) {
    if (!e.has_register_instance()) return;
    Envelope reply;
    *reply.mutable_register_reply()->mutable_error() =
        proto::ToProto(InvalidArgumentError("this router serves model 'a', not 'b'"));
    (void)router_node->Reply(from, e.call_id(), std::move(reply));
  };
  auto router = *RpcNode::Create(transport::NewInprocTransport(fabric), callbacks);
  router_node = router.get();
  auto address = router->Listen("router:0");
  ASSERT_TRUE(address.ok()) << address.status().ToString();
  auto node = *RpcNode::Create(transport::NewInprocTransport(fabric), {});
  RegistrationOptions options;
  options.router_address = *address;
  options.instance.set_instance_id("decode-0");
  options.retry_ms = 10;  // quiet_start_ms stays 10 s: a refusal is not covered by it

  testing::internal::CaptureStderr();
  Registration registration(node.get(), options, [] { return v1::Load(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  registration.Stop();
  const std::string log = testing::internal::GetCapturedStderr();
  EXPECT_FALSE(registration.registered());
  EXPECT_EQ(Count(log, " W "), 1u) << log;
  EXPECT_EQ(Count(log, "serves model 'a', not 'b'"), 1u) << log;
  EXPECT_EQ(Count(log, "waiting for the router"), 0u) << log;
  node->Shutdown();
  router->Shutdown();
}

}  // namespace
}  // namespace strata::service
