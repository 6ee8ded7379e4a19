// Weight packing into the panel layout of the CPU GEMM (WeightLayout::kPanels64).
#include <algorithm>
#include <cstring>

#include "ops/cpu/kernels.h"

namespace strata::ops::cpu {

void PackPanels(const WeightView& w, bf16* dst, int64_t panel_begin, int64_t panel_end) {
  const int64_t kp = (w.cols + 1) / 2, ld = w.stride();
  const bf16* src = static_cast<const bf16*>(w.data);
  // Pairs of columns are copied as 32-bit units when no row ends in half a pair.
  const bool whole_pairs = w.cols % 2 == 0 && ld % 2 == 0;
  for (int64_t p = panel_begin; p < panel_end; ++p) {
    bf16* out = dst + p * kp * 2 * kPanelRows;
    const int64_t r0 = p * kPanelRows;
    const int64_t n = std::min(kPanelRows, w.rows - r0);
    if (n < kPanelRows) std::fill_n(out, kp * 2 * kPanelRows, bf16{0});
    if (whole_pairs) {
      // In tiles of 16 rows x 16 pairs through a small buffer: each row's 64 bytes are read in
      // one piece and each output line is written in one piece (reading one pair of each of 64
      // rows in turn thrashes L1, the rows being a power-of-two bytes apart).
      uint32_t* o = reinterpret_cast<uint32_t*>(out);
      uint32_t tile[16][16];
      for (int64_t j0 = 0; j0 < n; j0 += 16) {
        const int64_t nj = std::min<int64_t>(16, n - j0);
        for (int64_t i0 = 0; i0 < kp; i0 += 16) {
          const int64_t ni = std::min<int64_t>(16, kp - i0);
          for (int64_t j = 0; j < nj; ++j) {
            std::memcpy(tile[j], src + (r0 + j0 + j) * ld + 2 * i0, ni * sizeof(uint32_t));
          }
          for (int64_t i = 0; i < ni; ++i) {
            uint32_t* dst_line = o + (i0 + i) * kPanelRows + j0;
            for (int64_t j = 0; j < nj; ++j) dst_line[j] = tile[j][i];
          }
        }
      }
    } else {
      for (int64_t j = 0; j < n; ++j) {
        const bf16* row = src + (r0 + j) * ld;
        for (int64_t c = 0; c < 2 * kp; ++c) {
          out[(c / 2) * 2 * kPanelRows + j * 2 + c % 2] = c < w.cols ? row[c] : bf16{0};
        }
      }
    }
  }
}

}  // namespace strata::ops::cpu
