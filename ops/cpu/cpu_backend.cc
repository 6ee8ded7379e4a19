// The CPU backend: reference kernels, or optimized ones (AVX-512 / AVX2 tiles, threaded over
// output rows and columns only, never over a reduction).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common/thread_pool.h"
#include "ops/backend.h"
#include "ops/cpu/cpu_features.h"
#include "ops/cpu/kernels.h"
#include "ops/cpu/reference.h"

namespace strata::ops {
namespace {

constexpr int64_t kPackAlign = 32;  // bf16 rows are padded to a multiple of 32 elements

int64_t RoundUp(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Activations as a matmul tile reads them.
struct PackedX {
  const void* data = nullptr;
  int64_t ld = 0;
  bool bf16 = false;
};

struct MatmulJob {
  PackedX x;          // for bf16 weights
  const float* xf32;  // for f32 weights
  int64_t ldx_f32 = 0;
  int64_t m = 0;
  WeightView w;
  float* y = nullptr;
  int64_t ldy = 0;
};

class CpuBackend final : public Backend {
 public:
  CpuBackend(CpuKernels kernels, int num_threads) : kernels_(kernels), pool_(num_threads) {
    if (kernels == CpuKernels::kAvx512) {
      mm_ = cpu::avx512::MatmulKernels();
      rows_ = cpu::avx512::RowKernels();
      attention_block_ = &cpu::avx512::AttentionBlock;
    } else if (kernels == CpuKernels::kAvx2) {
      mm_ = cpu::avx2::MatmulKernels();
      attention_unit_ = &cpu::AttentionUnitPortable;
    }
    name_ = "cpu-" + std::string(CpuKernelsName(kernels));
  }

  std::string_view name() const override { return name_; }

  bool Supports(Op op, DType activation, DType weight) const override {
    if (activation != DType::kF32) return false;
    switch (op) {
      case Op::kMatmul:
      case Op::kEmbedding:
      case Op::kGroupedExpertMlp:
        return weight == DType::kBF16 || weight == DType::kF32 ||
               (kernels_ == CpuKernels::kReference && weight == DType::kF16);
      case Op::kAttention:
      case Op::kScatterToCache:
        return weight == DType::kBF16;  // the KV cache's dtype
      default:
        return weight == DType::kF32;
    }
  }

  StatusOr<void*> Allocate(size_t bytes) override {
    void* p = std::aligned_alloc(64, RoundUp(std::max<size_t>(bytes, 1), 64));
    if (p == nullptr)
      return ResourceExhaustedError("cannot allocate " + std::to_string(bytes) + " bytes");
    return p;
  }
  void Free(void* ptr) override { std::free(ptr); }
  void CopyToDevice(void* dst, const void* src, size_t bytes) override {
    std::memcpy(dst, src, bytes);
  }
  void CopyToHost(void* dst, const void* src, size_t bytes) override {
    std::memcpy(dst, src, bytes);
  }
  void Copy(void* dst, const void* src, size_t bytes) override { std::memmove(dst, src, bytes); }
  void GatherRows(const float* src, int64_t lds, const int32_t* src_rows, int64_t n, int64_t width,
                  float* dst) override {
    ForRows(n, width, [&](int64_t i) {
      std::memcpy(dst + i * width, src + src_rows[i] * lds, width * sizeof(float));
    });
  }

  size_t PackedWeightBytes(const WeightView& w) const override {
    if (!Packs(w)) return 0;
    return static_cast<size_t>(PackedElements(w)) * sizeof(bf16);
  }

  WeightView PackWeight(const WeightView& w, void* dst) override {
    if (!Packs(w)) return w;
    bf16* out = static_cast<bf16*>(dst);
    const int64_t panels = (w.rows + kPanelRows - 1) / kPanelRows;
    pool_.ParallelFor(panels, [&](int64_t p) { mm_.pack_panels(w, out, p, p + 1); });
    return WeightView{DType::kBF16, out, w.rows, w.cols, 0, WeightLayout::kPanels64};
  }

  void Embedding(const WeightView& table, const int32_t* ids, int64_t n, float* out,
                 int64_t ldo) override {
    if (reference()) return reference::Embedding(table, ids, n, out, ldo);
    ForRows(n, table.cols,
            [&](int64_t i) { reference::Embedding(table, ids + i, 1, out + i * ldo, ldo); });
  }

  void Matmul(const float* x, int64_t m, int64_t ldx,
              std::span<const MatmulOutput> outputs) override {
    if (reference()) return reference::Matmul(x, m, ldx, outputs);
    if (outputs.empty() || m == 0) return;
    PackedX px = Pack(x, m, outputs[0].w.cols, ldx, pack_a_);
    std::vector<MatmulJob> jobs;
    for (const MatmulOutput& o : outputs) {
      jobs.push_back({px, x, ldx, m, o.w, o.y, o.ldy});
    }
    RunJobs(jobs);
  }

  void BatchedMatmul(std::span<const MatmulProblem> problems) override {
    if (reference()) return reference::BatchedMatmul(problems);
    std::vector<MatmulJob> jobs;
    if (mm_.packs_bf16) {
      int64_t total = 0;
      for (const MatmulProblem& p : problems) total += p.m * RoundUp(p.w.cols, kPackAlign);
      if (pack_a_.size() < static_cast<size_t>(total)) pack_a_.resize(total);
    }
    int64_t offset = 0;
    for (const MatmulProblem& p : problems) {
      PackedX px{p.x, p.ldx, false};
      if (mm_.packs_bf16) {
        int64_t ld = RoundUp(p.w.cols, kPackAlign);
        bf16* dst = pack_a_.data() + offset;
        ForRows(p.m, p.w.cols, [&](int64_t i) {
          mm_.pack_bf16(p.x + i * p.ldx, 1, p.w.cols, p.ldx, dst + i * ld, ld);
        });
        px = {dst, ld, true};
        offset += p.m * ld;
      }
      jobs.push_back({px, p.x, p.ldx, p.m, p.w, p.y, p.ldy});
    }
    RunJobs(jobs);
  }

  void RmsNorm(const float* x, int64_t m, int64_t n, int64_t ldx, const float* weight, float eps,
               float* out, int64_t ldo) override {
    if (reference()) return reference::RmsNorm(x, m, n, ldx, weight, eps, out, ldo);
    ForRows(m, n, [&](int64_t i) { rows_.rms_norm(x + i * ldx, n, weight, eps, out + i * ldo); });
  }

  void Rope(float* x, int64_t num_tokens, int64_t token_stride, int num_heads, int64_t head_stride,
            const int32_t* positions, const RopeTable& table) override {
    if (reference()) {
      return reference::Rope(x, num_tokens, token_stride, num_heads, head_stride, positions, table);
    }
    const int half = table.rotary_dim / 2;
    ForRows(num_tokens, int64_t{num_heads} * table.rotary_dim * 8, [&](int64_t t) {
      float cs[512], sn[512];
      for (int i = 0; i < half; ++i) {
        float angle = static_cast<float>(positions[t]) * table.inv_freq[i];
        cs[i] = std::cos(angle) * table.attention_factor;
        sn[i] = std::sin(angle) * table.attention_factor;
      }
      for (int h = 0; h < num_heads; ++h) {
        float* xh = x + t * token_stride + h * head_stride;
        for (int i = 0; i < half; ++i) {
          int a = table.interleaved ? 2 * i : i;
          int b = table.interleaved ? 2 * i + 1 : i + half;
          float xa = xh[a], xb = xh[b];
          xh[a] = xa * cs[i] - xb * sn[i];
          xh[b] = xb * cs[i] + xa * sn[i];
        }
      }
    });
  }

  void SiluMul(const float* gate, int64_t ldg, const float* up, int64_t ldu, int64_t m, int64_t n,
               float* out, int64_t ldo) override {
    if (reference()) return reference::SiluMul(gate, ldg, up, ldu, m, n, out, ldo);
    ForRows(m, n * 4,
            [&](int64_t i) { rows_.silu_mul(gate + i * ldg, up + i * ldu, n, out + i * ldo); });
  }

  void Add(float* y, int64_t ldy, const float* x, int64_t ldx, int64_t m, int64_t n) override {
    if (reference()) return reference::Add(y, ldy, x, ldx, m, n);
    ForRows(m, n, [&](int64_t i) { reference::Add(y + i * ldy, ldy, x + i * ldx, ldx, 1, n); });
  }

  void ScatterToCache(const float* src, int64_t num_tokens, int64_t lds, int64_t width, bf16* dst,
                      const int64_t* dst_offsets) override {
    if (reference())
      return reference::ScatterToCache(src, num_tokens, lds, width, dst, dst_offsets);
    ForRows(num_tokens, width, [&](int64_t t) {
      reference::ScatterToCache(src + t * lds, 1, lds, width, dst, dst_offsets + t);
    });
  }

  void Attention(const AttentionArgs& a) override {
    if (reference()) return reference::Attention(a);
    if (attention_block_ != nullptr) return AttentionBlocks(a);
    const int group = a.num_q_heads / a.kv.num_kv_heads;
    const int heads_per_unit = std::min(group, 4);
    const int units_per_group = (group + heads_per_unit - 1) / heads_per_unit;
    const int64_t units_per_token = int64_t{a.kv.num_kv_heads} * units_per_group;
    pool_.ParallelFor(a.num_tokens * units_per_token, [&](int64_t u) {
      int64_t t = u / units_per_token;
      int64_t r = u % units_per_token;
      int kvh = static_cast<int>(r / units_per_group);
      int first = kvh * group + static_cast<int>(r % units_per_group) * heads_per_unit;
      int nh = std::min(heads_per_unit, (kvh + 1) * group - first);
      thread_local std::vector<float> scratch;
      size_t need = static_cast<size_t>(nh) * a.num_keys[t];
      if (scratch.size() < need) scratch.resize(need);
      attention_unit_(a, t, first, nh, scratch.data());
    });
  }

  void MoeRoute(const float* logits, int64_t num_tokens, const RouterSpec& spec,
                int32_t* expert_ids, float* weights) override {
    if (reference()) return reference::MoeRoute(logits, num_tokens, spec, expert_ids, weights);
    ForRows(num_tokens, int64_t{spec.num_experts} * 64, [&](int64_t t) {
      reference::MoeRouteToken(logits + t * spec.num_experts, spec, expert_ids + t * spec.top_k,
                               weights + t * spec.top_k);
    });
  }

  void GroupedExpertMlp(const float* x, int64_t hidden, std::span<const ExpertGroup> groups,
                        std::span<const MlpWeights> experts, float* out) override {
    if (reference()) return reference::GroupedExpertMlp(x, hidden, groups, experts, out);
    int64_t rows = 0, inter = 0;
    for (const ExpertGroup& g : groups) {
      rows = std::max(rows, g.row_begin + g.num_rows);
      inter = std::max(inter, experts[g.expert].gate.rows);
    }
    if (rows == 0) return;
    PackedX px = Pack(x, rows, hidden, hidden, pack_a_);
    gate_.resize(rows * inter);
    up_.resize(rows * inter);
    std::vector<MatmulJob> jobs;
    for (const ExpertGroup& g : groups) {
      const MlpWeights& w = experts[g.expert];
      PackedX gx = Offset(px, g.row_begin);
      const float* xf = x + g.row_begin * hidden;
      jobs.push_back(
          {gx, xf, hidden, g.num_rows, w.gate, gate_.data() + g.row_begin * inter, inter});
      jobs.push_back({gx, xf, hidden, g.num_rows, w.up, up_.data() + g.row_begin * inter, inter});
    }
    RunJobs(jobs);
    SiluMul(gate_.data(), inter, up_.data(), inter, rows, inter, gate_.data(), inter);
    PackedX pa = Pack(gate_.data(), rows, inter, inter, pack_b_);
    jobs.clear();
    for (const ExpertGroup& g : groups) {
      const MlpWeights& w = experts[g.expert];
      jobs.push_back({Offset(pa, g.row_begin), gate_.data() + g.row_begin * inter, inter,
                      g.num_rows, w.down, out + g.row_begin * hidden, hidden});
    }
    RunJobs(jobs);
  }

  void WeightedCombine(const float* rows, int64_t hidden, int64_t num_tokens, int top_k,
                       const int32_t* row_index, const float* weights, float* out) override {
    if (reference()) {
      return reference::WeightedCombine(rows, hidden, num_tokens, top_k, row_index, weights, out);
    }
    ForRows(num_tokens, hidden * top_k, [&](int64_t t) {
      rows_.weighted_combine(rows, hidden, top_k, row_index + t * top_k, weights + t * top_k,
                             out + t * hidden);
    });
  }

 private:
  bool reference() const { return kernels_ == CpuKernels::kReference; }

  // Work items of up to 16 query rows: consecutive tokens of one sequence (prefill) x query
  // heads of one kv head, so each key and value loaded serves every row of the item.
  void AttentionBlocks(const AttentionArgs& a) {
    const int group = a.num_q_heads / a.kv.num_kv_heads;
    const int heads_per_item = std::min(group, 16);
    const int tokens_per_item = std::max(1, 16 / heads_per_item);
    const int items_per_group = (group + heads_per_item - 1) / heads_per_item;
    struct Span {
      int64_t t0;
      int nt;
    };
    std::vector<Span> spans;
    for (int64_t t = 0; t < a.num_tokens;) {
      int nt = 1;
      while (nt < tokens_per_item && t + nt < a.num_tokens &&
             a.block_tables[t + nt].data() == a.block_tables[t].data()) {
        ++nt;
      }
      spans.push_back({t, nt});
      t += nt;
    }
    // Head-major: items in a row share a kv head, whose keys and values stay in cache (one
    // head of a long prompt fits in L2; all heads do not).
    const int64_t per_head = static_cast<int64_t>(spans.size()) * items_per_group;
    pool_.ParallelFor(per_head * a.kv.num_kv_heads, [&](int64_t u) {
      const int kvh = static_cast<int>(u / per_head);
      const int64_t r = u % per_head;
      const Span& sp = spans[r / items_per_group];
      const int first = kvh * group + static_cast<int>(r % items_per_group) * heads_per_item;
      const int nh = std::min(heads_per_item, (kvh + 1) * group - first);
      attention_block_(a, sp.t0, sp.nt, first, nh);
    });
  }
  bool Packs(const WeightView& w) const {
    return mm_.panel_bf16 != nullptr && w.dtype == DType::kBF16 &&
           w.layout == WeightLayout::kRowMajor && w.rows > 0 && w.cols > 0;
  }
  static int64_t PackedElements(const WeightView& w) {
    return (w.rows + kPanelRows - 1) / kPanelRows * ((w.cols + 1) / 2) * 2 * kPanelRows;
  }

  // Jobs with bf16 weights in the row-major layout are packed into scratch first (weights the
  // model did not pack at load: tests, one-off products), so every bf16 product on a panel
  // kernel set runs the same kernel.
  void PackJobWeights(std::vector<MatmulJob>& jobs) {
    int64_t total = 0;
    for (const MatmulJob& j : jobs) {
      if (Packs(j.w)) total += RoundUp(PackedElements(j.w), 32);
    }
    if (total == 0) return;
    if (pack_w_.size() < static_cast<size_t>(total)) pack_w_.resize(total);
    int64_t offset = 0;
    for (MatmulJob& j : jobs) {
      if (!Packs(j.w)) continue;
      j.w = PackWeight(j.w, pack_w_.data() + offset);
      offset += RoundUp(PackedElements(j.w), 32);
    }
  }

  // Runs fn(row) for rows [0, m), in chunks of about 32K elements of work per item.
  template <typename Fn>
  void ForRows(int64_t m, int64_t work_per_row, Fn&& fn) {
    int64_t per_item =
        std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(work_per_row, 1));
    int64_t items = (m + per_item - 1) / per_item;
    pool_.ParallelFor(items, [&](int64_t it) {
      int64_t end = std::min(m, (it + 1) * per_item);
      for (int64_t i = it * per_item; i < end; ++i) fn(i);
    });
  }

  PackedX Pack(const float* x, int64_t m, int64_t k, int64_t ldx, std::vector<bf16>& buf) {
    if (!mm_.packs_bf16) return {x, ldx, false};
    int64_t ld = RoundUp(k, kPackAlign);
    if (buf.size() < static_cast<size_t>(m * ld)) buf.resize(m * ld);
    ForRows(m, k,
            [&](int64_t i) { mm_.pack_bf16(x + i * ldx, 1, k, ldx, buf.data() + i * ld, ld); });
    return {buf.data(), ld, true};
  }

  static PackedX Offset(PackedX p, int64_t rows) {
    if (p.bf16) {
      p.data = static_cast<const bf16*>(p.data) + rows * p.ld;
    } else {
      p.data = static_cast<const float*>(p.data) + rows * p.ld;
    }
    return p;
  }

  void RunJobs(std::vector<MatmulJob>& jobs) {
    if (mm_.panel_bf16 != nullptr) {
      PackJobWeights(jobs);
      std::vector<MatmulJob> rest;
      for (const MatmulJob& j : jobs) {
        if (j.w.layout != WeightLayout::kPanels64) rest.push_back(j);
      }
      RunPanelJobs(jobs);
      if (!rest.empty()) RunTileJobs(rest);
      return;
    }
    RunTileJobs(jobs);
  }

  // Jobs whose weights are panel-packed: work items of (up to kRowBlock rows) x (a group of
  // panels); inside one, each panel is swept by all its rows' tiles while it sits in cache.
  void RunPanelJobs(std::span<const MatmulJob> jobs) {
    constexpr int64_t kRowBlock = 16 * cpu::kPanelTileRows;
    std::vector<PanelItem>& items = panel_items_;
    items.clear();
    double macs = 0;
    // Few rows (decode): up to 4 panels per item so an item is worth a hand-off, as long as
    // every thread still gets about 8 items.
    int64_t few_row_panels = 0;
    for (const MatmulJob& job : jobs) {
      if (job.w.layout == WeightLayout::kPanels64 && job.m > 0 && job.m <= cpu::kPanelTileRows) {
        few_row_panels += (job.w.rows + kPanelRows - 1) / kPanelRows;
      }
    }
    const int64_t few_row_group =
        std::clamp<int64_t>(few_row_panels / (8 * pool_.num_threads()), 1, 4);
    for (size_t j = 0; j < jobs.size(); ++j) {
      const MatmulJob& job = jobs[j];
      if (job.w.layout != WeightLayout::kPanels64 || job.m == 0) continue;
      macs += static_cast<double>(job.m) * job.w.rows * job.w.cols;
      const int64_t panels = (job.w.rows + kPanelRows - 1) / kPanelRows;
      const int64_t group = job.m <= cpu::kPanelTileRows ? few_row_group : 1;
      for (int64_t r = 0; r < job.m; r += kRowBlock) {
        for (int64_t p = 0; p < panels; p += group) {
          items.push_back({static_cast<int32_t>(j), r, p, std::min(panels, p + group)});
        }
      }
    }
    auto run = [&](int64_t i) {
      const PanelItem& it = items[i];
      const MatmulJob& job = jobs[it.job];
      const int64_t kp = (job.w.cols + 1) / 2;
      const int64_t r_end = std::min(job.m, it.r0 + kRowBlock);
      const bf16* x = static_cast<const bf16*>(job.x.data);
      const bf16* w = static_cast<const bf16*>(job.w.data);
      for (int64_t p = it.p0; p < it.p1; ++p) {
        const int64_t c0 = p * kPanelRows;
        const int cols = static_cast<int>(std::min(kPanelRows, job.w.rows - c0));
        const bf16* panel = w + p * kp * 2 * kPanelRows;
        for (int64_t r = it.r0; r < r_end; r += cpu::kPanelTileRows) {
          int rows = static_cast<int>(std::min<int64_t>(cpu::kPanelTileRows, r_end - r));
          mm_.panel_bf16(x + r * job.x.ld, job.x.ld, rows, panel, kp, job.y + r * job.ldy + c0,
                         job.ldy, cols);
        }
      }
    };
    if (macs < (1 << 16)) {
      for (size_t i = 0; i < items.size(); ++i) run(static_cast<int64_t>(i));
    } else {
      pool_.ParallelFor(static_cast<int64_t>(items.size()), run);
    }
  }

  // Jobs through the dot-product tiles (row-major weights).
  void RunTileJobs(std::span<const MatmulJob> jobs) {
    const int64_t row_block = int64_t{mm_.max_rows} * 16;
    const int64_t col_block = int64_t{mm_.max_cols} * 8;
    items_.clear();
    double macs = 0;
    for (size_t j = 0; j < jobs.size(); ++j) {
      const MatmulJob& job = jobs[j];
      macs += static_cast<double>(job.m) * job.w.rows * job.w.cols;
      for (int64_t r = 0; r < job.m; r += row_block) {
        for (int64_t c = 0; c < job.w.rows; c += col_block) {
          items_.push_back({static_cast<int32_t>(j), r, c});
        }
      }
    }
    auto run = [&](int64_t i) {
      const auto& it = items_[i];
      const MatmulJob& job = jobs[it.job];
      const int64_t r_end = std::min(job.m, it.r0 + row_block);
      const int64_t c_end = std::min(job.w.rows, it.c0 + col_block);
      const int64_t k = job.w.cols, ldw = job.w.stride();
      for (int64_t r = it.r0; r < r_end; r += mm_.max_rows) {
        int rows = static_cast<int>(std::min<int64_t>(mm_.max_rows, r_end - r));
        for (int64_t c = it.c0; c < c_end; c += mm_.max_cols) {
          int cols = static_cast<int>(std::min<int64_t>(mm_.max_cols, c_end - c));
          float* y = job.y + r * job.ldy + c;
          if (job.w.dtype == DType::kBF16 && job.w.layout == WeightLayout::kRowMajor) {
            const void* xr =
                job.x.bf16
                    ? static_cast<const void*>(static_cast<const bf16*>(job.x.data) + r * job.x.ld)
                    : static_cast<const void*>(static_cast<const float*>(job.x.data) +
                                               r * job.x.ld);
            mm_.tile_bf16(xr, job.x.ld, rows, static_cast<const bf16*>(job.w.data) + c * ldw, ldw,
                          cols, k, y, job.ldy);
          } else if (job.w.dtype == DType::kF32 && job.w.layout == WeightLayout::kRowMajor) {
            mm_.tile_f32(job.xf32 + r * job.ldx_f32, job.ldx_f32, rows,
                         static_cast<const float*>(job.w.data) + c * ldw, ldw, cols, k, y, job.ldy);
          } else {
            for (int rr = 0; rr < rows; ++rr) {
              for (int cc = 0; cc < cols; ++cc) {
                double acc = 0;
                for (int64_t kk = 0; kk < k; ++kk) {
                  acc += double{job.xf32[(r + rr) * job.ldx_f32 + kk]} *
                         reference::LoadWeight(job.w, c + cc, kk);
                }
                y[rr * job.ldy + cc] = static_cast<float>(acc);
              }
            }
          }
        }
      }
    };
    if (macs < (1 << 16)) {
      for (size_t i = 0; i < items_.size(); ++i) run(static_cast<int64_t>(i));
    } else {
      pool_.ParallelFor(static_cast<int64_t>(items_.size()), run);
    }
  }

  CpuKernels kernels_;
  std::string name_;
  ThreadPool pool_;
  cpu::MatmulKernelSet mm_;
  cpu::AttentionUnitFn attention_unit_ = nullptr;  // AVX2: one token per work item
  cpu::RowKernelSet rows_ = cpu::PortableRowKernels();
  cpu::AttentionBlockFn attention_block_ = nullptr;  // AVX-512: blocks of query rows
  std::vector<bf16> pack_a_, pack_b_, pack_w_;
  std::vector<float> gate_, up_;
  struct ItemRec {
    int32_t job;
    int64_t r0, c0;
  };
  std::vector<ItemRec> items_;
  struct PanelItem {
    int32_t job;
    int64_t r0, p0, p1;  // rows [r0, r0 + row block), panels [p0, p1)
  };
  std::vector<PanelItem> panel_items_;
};

bool CpuHas(CpuKernels k) {
  const CpuFeatures& f = GetCpuFeatures();
  switch (k) {
    case CpuKernels::kReference:
      return true;
    case CpuKernels::kAvx2:
      return f.avx2 && f.fma;
    case CpuKernels::kAvx512:
      return f.avx512f && f.avx512bw && f.avx512vl && f.avx512_bf16 && f.fma;
    case CpuKernels::kAuto:
      return true;
  }
  return false;
}

}  // namespace

std::string_view CpuKernelsName(CpuKernels k) {
  switch (k) {
    case CpuKernels::kAuto:
      return "auto";
    case CpuKernels::kReference:
      return "reference";
    case CpuKernels::kAvx2:
      return "avx2";
    case CpuKernels::kAvx512:
      return "avx512";
  }
  return "?";
}

std::vector<CpuKernels> SupportedCpuKernels() {
  std::vector<CpuKernels> out;
  for (CpuKernels k : {CpuKernels::kAvx2, CpuKernels::kAvx512}) {
    if (CpuHas(k)) out.push_back(k);
  }
  return out;
}

StatusOr<std::unique_ptr<Backend>> CreateCpuBackend(const CpuBackendOptions& options) {
  if (options.num_threads < 1) {
    return InvalidArgumentError("num_threads must be >= 1, got " +
                                std::to_string(options.num_threads));
  }
  CpuKernels k = options.kernels;
  if (k == CpuKernels::kAuto) {
    std::vector<CpuKernels> supported = SupportedCpuKernels();
    k = supported.empty() ? CpuKernels::kReference : supported.back();
  }
  if (!CpuHas(k)) {
    return FailedPreconditionError("this CPU cannot run the " + std::string(CpuKernelsName(k)) +
                                   " kernels (has: " + GetCpuFeatures().Describe() + ")");
  }
  return std::unique_ptr<Backend>(new CpuBackend(k, options.num_threads));
}

}  // namespace strata::ops
