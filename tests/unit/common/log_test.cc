#include "common/log.h"

#include <gtest/gtest.h>

namespace strata {
namespace {

TEST(LogTest, LinesCarryRoleRankAndRequestId) {
  log::SetIdentity("decode", 3);
  testing::internal::CaptureStderr();
  {
    log::ScopedRequestId rid("cmpl-42");
    log::Info("admitted {} blocks", 5);
  }
  log::Info("idle");
  std::string out = testing::internal::GetCapturedStderr();
  EXPECT_NE(out.find("[decode:3] [req=cmpl-42] admitted 5 blocks"), std::string::npos) << out;
  EXPECT_NE(out.find("[decode:3] [req=-] idle"), std::string::npos) << out;
}

TEST(LogTest, LevelFiltering) {
  ASSERT_TRUE(log::ParseLevel("warn").ok());
  EXPECT_FALSE(log::ParseLevel("loud").ok());
  log::SetLevel(log::Level::kWarn);
  testing::internal::CaptureStderr();
  log::Info("hidden");
  log::Warn("shown");
  std::string out = testing::internal::GetCapturedStderr();
  log::SetLevel(log::Level::kInfo);
  EXPECT_EQ(out.find("hidden"), std::string::npos);
  EXPECT_NE(out.find("shown"), std::string::npos);
}

}  // namespace
}  // namespace strata
