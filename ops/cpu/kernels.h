// Internal to ops/cpu: the ISA-specific inner kernels. Each ISA lives in its own translation unit
// compiled with its own -m flags (ops/CMakeLists.txt) and is only called after
// GetCpuFeatures() said the CPU has it.
//
// A matmul tile computes y[r * ldy + c] = dot(x row r, w row c) for r < rows, c < cols, with the
// whole reduction over k inside one call in a fixed order: the value of an output never depends
// on the tile shape it was computed in (batch invariance, DESIGN.md §6).
#pragma once

#include <cstdint>

#include "common/half.h"
#include "ops/backend.h"

namespace strata::ops::cpu {

// Rows of activations one panel GEMM call handles at most.
constexpr int kPanelTileRows = 6;

// Panel GEMM (WeightLayout::kPanels64): y[r * ldy + c] = dot(x row r, panel row c) for
// r < rows <= kPanelTileRows, c < cols <= 64, over kp column pairs. x rows are bf16, at least
// 2 * kp long (zero padded). One fixed reduction order per output (see gemm_avx512.cc).
using PanelGemmFn = void (*)(const bf16* x, int64_t ldx, int rows, const bf16* panel, int64_t kp,
                             float* y, int64_t ldy, int cols);

// Copies panels [panel_begin, panel_end) of the row-major bf16 matrix `w` into `dst` (the whole
// packed matrix, WeightLayout::kPanels64).
void PackPanels(const WeightView& w, bf16* dst, int64_t panel_begin, int64_t panel_end);

struct MatmulKernelSet {
  // Set when bf16 weights go through the panel GEMM (packed at load, or on the fly).
  PanelGemmFn panel_bf16 = nullptr;
  void (*pack_panels)(const WeightView& w, bf16* dst, int64_t panel_begin,
                      int64_t panel_end) = nullptr;
  // When true, bf16-weight tiles read activations packed by pack_bf16 (bf16 rows of padded
  // length RoundUp(k, 32), zero filled); otherwise they read the f32 rows directly.
  bool packs_bf16 = false;
  int max_rows = 1;
  int max_cols = 1;
  void (*pack_bf16)(const float* x, int64_t m, int64_t k, int64_t ldx, bf16* out,
                    int64_t ldo) = nullptr;
  void (*tile_bf16)(const void* x, int64_t ldx, int rows, const bf16* w, int64_t ldw, int cols,
                    int64_t k, float* y, int64_t ldy) = nullptr;
  void (*tile_f32)(const float* x, int64_t ldx, int rows, const float* w, int64_t ldw, int cols,
                   int64_t k, float* y, int64_t ldy) = nullptr;
};

// One (token, kv head, run of query heads) unit of attention; `scratch` holds
// num_heads * num_keys floats.
using AttentionUnitFn = void (*)(const AttentionArgs& args, int64_t token, int first_head,
                                 int num_heads, float* scratch);

// Attention of `num_tokens` consecutive tokens from `first_token` (one sequence: the same block
// table) for query heads [first_head, first_head + num_heads) of one kv head;
// num_tokens * num_heads <= 16.
using AttentionBlockFn = void (*)(const AttentionArgs& args, int64_t first_token, int num_tokens,
                                  int first_head, int num_heads);

// Per-row elementwise kernels (one token's row each; rows are independent).
struct RowKernelSet {
  void (*silu_mul)(const float* gate, const float* up, int64_t n, float* out) = nullptr;
  void (*rms_norm)(const float* x, int64_t n, const float* weight, float eps, float* out) = nullptr;
  // out = sum over j < top_k, in order, of weights[j] * rows[row_index[j] * hidden + ...].
  void (*weighted_combine)(const float* rows, int64_t hidden, int top_k, const int32_t* row_index,
                           const float* weights, float* out) = nullptr;
};
// The reference versions (ops/cpu/reference.h) as a RowKernelSet.
RowKernelSet PortableRowKernels();

namespace avx512 {
MatmulKernelSet MatmulKernels();
RowKernelSet RowKernels();
void AttentionBlock(const AttentionArgs& args, int64_t first_token, int num_tokens, int first_head,
                    int num_heads);
void PanelGemmBf16(const bf16* x, int64_t ldx, int rows, const bf16* panel, int64_t kp, float* y,
                   int64_t ldy, int cols);
void PackPanelsAvx512(const WeightView& w, bf16* dst, int64_t panel_begin, int64_t panel_end);
}  // namespace avx512

namespace avx2 {
MatmulKernelSet MatmulKernels();
}  // namespace avx2

// Portable attention unit (used by the AVX2 kernel set).
void AttentionUnitPortable(const AttentionArgs& args, int64_t token, int first_head, int num_heads,
                           float* scratch);

}  // namespace strata::ops::cpu
