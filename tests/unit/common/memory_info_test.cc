#include "common/memory_info.h"

#include <gtest/gtest.h>

namespace strata {
namespace {

TEST(MemoryInfoTest, ParsesMemAvailableInBytes) {
  const std::string meminfo =
      "MemTotal:       24683584 kB\n"
      "MemFree:        21168312 kB\n"
      "MemAvailable:   23631276 kB\n"
      "Buffers:          122556 kB\n";
  EXPECT_EQ(ParseMemAvailable(meminfo), uint64_t{23631276} * 1024);
  EXPECT_EQ(ParseMemAvailable("MemAvailable: 7 kB"), uint64_t{7} * 1024) << "no newline at the end";
  EXPECT_EQ(ParseMemAvailable("MemTotal: 5 kB\nMemFree: 4 kB\n"), std::nullopt) << "old kernels";
  EXPECT_EQ(ParseMemAvailable("MemAvailable: lots kB\n"), std::nullopt);
  EXPECT_EQ(ParseMemAvailable("MemAvailable: 12 MB\n"), std::nullopt) << "a unit it does not know";
  EXPECT_EQ(ParseMemAvailable(""), std::nullopt);
}

TEST(MemoryInfoTest, ThisMachineReportsSomeMemory) {
  auto available = AvailableMemoryBytes();
  ASSERT_TRUE(available.has_value()) << "Linux 3.14+ has MemAvailable";
  EXPECT_GT(*available, uint64_t{1} << 20);
}

TEST(MemoryInfoTest, ASizeBeyondWhatIsAvailableNamesTheFlag) {
  EXPECT_TRUE(CheckFitsInMemory("capacity-bytes", 100, uint64_t{100}, "blocks").ok());
  EXPECT_TRUE(CheckFitsInMemory("capacity-bytes", 1ull << 60, std::nullopt, "blocks").ok())
      << "unknown: no check";
  Status st = CheckFitsInMemory("capacity-bytes", 101, uint64_t{100}, "the pool's blocks");
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("--capacity-bytes"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("101"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("100 bytes"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace strata
