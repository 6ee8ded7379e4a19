#include "common/page_memory.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

namespace strata {
namespace {

const size_t kPage = static_cast<size_t>(sysconf(_SC_PAGESIZE));

// How many pages of [data, data + bytes) are resident; -1 once the range is unmapped.
long ResidentPages(const void* data, size_t bytes) {
  std::vector<unsigned char> in((bytes + kPage - 1) / kPage);
  if (mincore(const_cast<void*>(data), bytes, in.data()) != 0) return errno == ENOMEM ? -1 : -2;
  return std::count_if(in.begin(), in.end(), [](unsigned char c) { return (c & 1) != 0; });
}

TEST(PageMemoryTest, GivesZeroedPageAlignedMemoryThatGoesWithItsLastOwner) {
  const size_t bytes = (size_t{3} << 20) + 5;
  auto pages = AllocateZeroedPages(bytes, /*populate=*/false);
  ASSERT_TRUE(pages.ok()) << pages.status().ToString();
  auto* data = static_cast<unsigned char*>(pages->get());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(data) % kPage, 0u);
  EXPECT_EQ(ResidentPages(data, bytes), 0) << "not populated: no page before the first touch";
  EXPECT_TRUE(std::all_of(data, data + bytes, [](unsigned char c) { return c == 0; }));
  data[0] = 1;
  data[bytes - 1] = 2;
  std::shared_ptr<void> other = *pages;
  pages->reset();
  EXPECT_EQ(data[bytes - 1], 2) << "still owned by `other`";
  other.reset();
  EXPECT_EQ(ResidentPages(data, bytes), -1) << "unmapped with its last owner";
}

TEST(PageMemoryTest, PopulatingFaultsEveryPageInAndKeepsTheContents) {
  const size_t bytes = size_t{4} << 20;
  auto pages = AllocateZeroedPages(bytes, /*populate=*/false);
  ASSERT_TRUE(pages.ok());
  auto* data = static_cast<unsigned char*>(pages->get());
  data[kPage + 7] = 42;
  if (!PopulateForWrite(data + 3, bytes - 3)) GTEST_SKIP() << "kernel before 5.14";
  EXPECT_EQ(ResidentPages(data, bytes), static_cast<long>(bytes / kPage));
  EXPECT_EQ(data[kPage + 7], 42);
  EXPECT_EQ(data[0], 0);
  EXPECT_TRUE(PopulateForRead(data, bytes));

  auto populated = AllocateZeroedPages(bytes, /*populate=*/true);
  ASSERT_TRUE(populated.ok());
  EXPECT_EQ(ResidentPages(populated->get(), bytes), static_cast<long>(bytes / kPage));
}

TEST(PageMemoryTest, MoreThanTheAddressSpaceIsResourceExhausted) {
  auto pages = AllocateZeroedPages(uint64_t{1} << 62, /*populate=*/false);
  ASSERT_FALSE(pages.ok());
  EXPECT_EQ(pages.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(pages.status().message().find("cannot map"), std::string::npos);
}

}  // namespace
}  // namespace strata
