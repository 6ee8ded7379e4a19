#include "common/memory_info.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

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

class CgroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("strata_cgroup_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
             "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  void Write(const std::string& relative, const std::string& text) {
    const auto path = root_ / relative;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path) << text;
  }
  std::filesystem::path root_;
};

TEST_F(CgroupTest, V2RoomIsTheLimitLessWhatIsInUse) {
  Write("kubepods/pod1/memory.max", "1073741824\n");
  Write("kubepods/pod1/memory.current", "73741824\n");
  EXPECT_EQ(CgroupMemoryRoom("0::/kubepods/pod1\n", root_.string()), uint64_t{1000000000});
  Write("kubepods/pod1/memory.max", "max\n");
  EXPECT_EQ(CgroupMemoryRoom("0::/kubepods/pod1\n", root_.string()), std::nullopt) << "no limit";
  // Inside a container's cgroup namespace the path is "/": the mount is its own cgroup.
  Write("memory.max", "536870912\n");
  Write("memory.current", "600000000\n");
  EXPECT_EQ(CgroupMemoryRoom("0::/\n", root_.string()), uint64_t{0}) << "over the limit";
}

TEST_F(CgroupTest, V1ReadsTheMemoryController) {
  const std::string self = "12:pids:/a\n4:cpuacct,memory:/docker/abc\n0::/\n";
  Write("memory/docker/abc/memory.limit_in_bytes", "2147483648\n");
  Write("memory/docker/abc/memory.usage_in_bytes", "147483648\n");
  EXPECT_EQ(CgroupMemoryRoom(self, root_.string()), uint64_t{2000000000});
  Write("memory/docker/abc/memory.limit_in_bytes", "9223372036854771712\n");
  EXPECT_EQ(CgroupMemoryRoom(self, root_.string()), std::nullopt) << "v1's 'no limit'";
  EXPECT_EQ(CgroupMemoryRoom("garbage\n", root_.string()), std::nullopt);
  EXPECT_EQ(CgroupMemoryRoom("", root_.string()), std::nullopt);
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
