// ParallelCopier (same-host transfers and KV pool reads): every byte lands, whatever the size,
// alignment, number of helpers or callers at once.
#include "common/parallel_copy.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <thread>
#include <vector>

#include "tests/unit/test_bytes.h"

namespace strata {
namespace {

using testing::Pattern;

TEST(ParallelCopy, CopiesEveryByteOfAnySizeAndAlignment) {
  for (int helpers : {0, 1, 3}) {
    ParallelCopier copier(helpers, /*min_part_bytes=*/4096, /*min_split_bytes=*/0);
    EXPECT_EQ(copier.helpers(), helpers);
    for (size_t n :
         {size_t{1}, size_t{63}, size_t{4096}, size_t{8191}, size_t{100003}, size_t{1} << 20}) {
      for (size_t misalign : {size_t{0}, size_t{3}, size_t{17}}) {
        for (bool streaming : {false, true}) {
          const std::vector<uint8_t> src = Pattern(n + misalign, static_cast<int>(n));
          std::vector<uint8_t> dst(n + 2 * misalign + 1, 0xEE);
          copier.Copy(dst.data() + misalign + 1, src.data() + misalign, n, streaming);
          ASSERT_TRUE(std::equal(src.begin() + misalign, src.end(), dst.begin() + misalign + 1))
              << helpers << " helpers, " << n << " bytes, offset " << misalign;
          EXPECT_EQ(dst[misalign], 0xEE) << "wrote before the destination";
          if (misalign > 0) EXPECT_EQ(dst[n + misalign + 1], 0xEE) << "wrote past it";
        }
      }
    }
  }
}

TEST(ParallelCopy, CopyManySharesOutPiecesOfAnySize) {
  for (int helpers : {0, 1, 3}) {
    ParallelCopier copier(helpers, /*min_part_bytes=*/4096, /*min_split_bytes=*/0);
    // Pieces smaller and larger than a part, at odd offsets, scattered in reverse.
    const std::vector<size_t> sizes = {1, 4095, 9216, 70001, 3, 300000, 64, 12345};
    size_t total = 0;
    for (size_t n : sizes) total += n + 7;
    const std::vector<uint8_t> src = Pattern(total, helpers + 3);
    std::vector<uint8_t> dst(total, 0xEE);
    for (bool streaming : {false, true}) {
      std::fill(dst.begin(), dst.end(), 0xEE);
      std::vector<CopyPiece> pieces;
      size_t at = 0;
      for (size_t n : sizes) {
        pieces.push_back(CopyPiece{dst.data() + (total - at - n - 7) + 3, src.data() + at + 5, n});
        at += n + 7;
      }
      copier.CopyMany(pieces, streaming);
      size_t untouched = 0;
      at = 0;
      for (size_t n : sizes) {
        ASSERT_TRUE(std::equal(src.begin() + at + 5, src.begin() + at + 5 + n,
                               dst.begin() + (total - at - n - 7) + 3))
            << helpers << " helpers, piece of " << n << " bytes";
        at += n + 7;
      }
      for (uint8_t b : dst) untouched += b == 0xEE;
      EXPECT_GE(untouched, sizes.size() * 7) << "wrote outside the pieces";
    }
  }
}

TEST(ParallelCopy, CallersAtOnceEachGetTheirBytes) {
  ParallelCopier copier(2, /*min_part_bytes=*/4096, /*min_split_bytes=*/0);
  constexpr size_t kBytes = 3u << 20;
  std::vector<std::thread> callers;
  std::vector<bool> ok(4, false);
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&, c] {
      const std::vector<uint8_t> src = Pattern(kBytes, c + 1);
      std::vector<uint8_t> dst(kBytes);
      bool all = true;
      for (int i = 0; i < 20; ++i) {
        copier.Copy(dst.data(), src.data(), kBytes, i % 2 == 0);
        all = all && dst == src;
        std::fill(dst.begin(), dst.end(), 0);
      }
      ok[c] = all;
    });
  }
  for (auto& t : callers) t.join();
  for (int c = 0; c < 4; ++c) EXPECT_TRUE(ok[c]) << "caller " << c;
}

}  // namespace
}  // namespace strata
