// GPU kernel benchmark (issue 9): measures the two ceilings of this GPU first (HBM bandwidth by a
// large device-to-device copy, BF16 tensor-core peak by a large cuBLASLt GEMM), then reports
// every kernel against them: paged decode attention (GQA, MLA) as % of HBM bandwidth, the
// grouped expert GEMM at DeepSeek-V3 sizes (decode shapes: % of bandwidth; prefill shapes: % of
// BF16 peak), the cost of deterministic (pinned) GEMM algorithms, and one DeepSeek-V3 layer's
// decode step projected to tokens/s per GPU next to published figures.
//
// Usage: gpu_bench OUT.json [--git-sha SHA] [--quick]
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>

#include "bench/gpu/bench_util.h"
#include "bench/gpu/layer_bench.h"
#include "ops/cuda/attention_plan.h"
#include "ops/cuda/cuda_backend.h"
#include "ops/cuda/lt_gemm.h"

namespace strata::bench::gpu {
namespace {

using nlohmann::json;
using ops::cuda::LtGemm;
using ops::cuda::LtGemmShape;

struct Ceilings {
  double hbm_gbps = 0;
  double bf16_tflops = 0;
};

Ceilings MeasureCeilings(cudaStream_t s, json& out) {
  Ceilings c;
  c.hbm_gbps = MeasureHbmCopyGbps(s);
  const int64_t n = 8192;
  bf16* x = RandomBf16(n * n, 1, 1.0f, s);
  bf16* w = RandomBf16(n * n, 2, 1.0f, s);
  float* y = DeviceAlloc<float>(n * n);
  auto gemm = LtGemm::Create(s, false, size_t{32} << 20);
  if (!gemm.ok()) {
    std::fprintf(stderr, "%s\n", gemm.status().ToString().c_str());
    std::exit(1);
  }
  LtGemmShape shape{ops::DType::kBF16, n, n, n, n, n, n};
  double ms = MedianMs(
      s,
      [&](int) {
        Status st = (*gemm)->Run(shape, x, w, y);
        if (!st.ok()) {
          std::fprintf(stderr, "%s\n", st.ToString().c_str());
          std::exit(1);
        }
      },
      10);
  c.bf16_tflops = 2.0 * n * n * n / (ms * 1e-3) / 1e12;
  cudaFree(x);
  cudaFree(w);
  cudaFree(y);
  out["hbm_copy_gbps"] = c.hbm_gbps;
  out["hbm_method"] = "cudaMemcpyAsync D2D of 2 GiB, (read + write bytes) / median time";
  out["bf16_tflops"] = c.bf16_tflops;
  out["bf16_method"] = "cuBLASLt 8192^3 bf16 x bf16 -> f32, random data, median of 10";
  std::printf("ceilings: HBM %.0f GB/s, BF16 %.0f TFLOP/s\n", c.hbm_gbps, c.bf16_tflops);
  return c;
}

struct AttnShape {
  const char* name;
  int q_heads, kv_heads, k_dim, v_dim;
  bool mla;
};

// Decode attention: batch tokens, each with `ctx` keys in its own block table.
void BenchAttention(cudaStream_t s, const AttnShape& shape, const std::vector<int>& batches,
                    const std::vector<int>& contexts, const Ceilings& c, json& out) {
  const int block = 64;
  const int max_b = *std::max_element(batches.begin(), batches.end());
  const int max_c = *std::max_element(contexts.begin(), contexts.end());
  const int64_t pool_blocks = static_cast<int64_t>(max_b) * (max_c / block + 1);
  ops::KvLayerView kv;
  kv.block_size = block;
  kv.num_kv_heads = shape.kv_heads;
  kv.k_dim = shape.k_dim;
  kv.v_dim = shape.v_dim;
  kv.head_stride = shape.k_dim;
  kv.token_stride = static_cast<int64_t>(shape.kv_heads) * shape.k_dim;
  kv.block_stride = kv.token_stride * block;
  bf16* k = RandomBf16(kv.block_stride * pool_blocks, 11, 1.0f, s);
  bf16* v = shape.mla ? k : RandomBf16(kv.block_stride * pool_blocks, 12, 1.0f, s);
  kv.k = k;
  kv.v = v;
  const int64_t q_ts = static_cast<int64_t>(shape.q_heads) * shape.k_dim;
  const int64_t o_ts = static_cast<int64_t>(shape.q_heads) * shape.v_dim;
  float* q = RandomF32(max_b * q_ts, 13, 1.0f, s);
  float* o = DeviceAlloc<float>(max_b * o_ts);
  const double key_bytes = static_cast<double>(shape.kv_heads) * 2.0 *
                           (shape.mla ? shape.k_dim : shape.k_dim + shape.v_dim);
  for (int b : batches) {
    for (int ctx : contexts) {
      const int nb = (ctx + block - 1) / block;
      // Rotate over disjoint block ranges so repeated runs do not measure the L2 cache.
      const int rotations = static_cast<int>(std::min<int64_t>(4, pool_blocks / (int64_t{b} * nb)));
      struct Dev {
        ops::cuda::AttentionPlan plan;
        std::vector<void*> bufs;
      };
      std::vector<Dev> devs(std::max(1, rotations));
      for (size_t r = 0; r < devs.size(); ++r) {
        std::vector<std::vector<int32_t>> tables(b, std::vector<int32_t>(nb));
        for (int t = 0; t < b; ++t)
          std::iota(tables[t].begin(), tables[t].end(),
                    static_cast<int32_t>((r * b + t) * nb % (pool_blocks - nb + 1)));
        std::vector<std::span<const int32_t>> spans(tables.begin(), tables.end());
        std::vector<int32_t> num_keys(b, ctx);
        ops::AttentionArgs a;
        a.q = q;
        a.q_token_stride = q_ts;
        a.q_head_stride = shape.k_dim;
        a.num_tokens = b;
        a.num_q_heads = shape.q_heads;
        a.num_keys = num_keys.data();
        a.block_tables = spans.data();
        a.kv = kv;
        a.scale = 1.0f / std::sqrt(static_cast<float>(shape.k_dim));
        a.out = o;
        a.out_token_stride = o_ts;
        a.out_head_stride = shape.v_dim;
        Dev& d = devs[r];
        d.plan = ops::cuda::PlanAttention(a);
        auto& p = d.plan.params;
        p.num_keys = Upload(d.plan.num_keys, s);
        p.table_offset = Upload(d.plan.table_offset, s);
        p.block_tables = Upload(d.plan.tables, s);
        p.num_splits = Upload(d.plan.num_splits, s);
        p.split_base = Upload(d.plan.split_base, s);
        p.tasks = Upload(d.plan.tasks, s);
        size_t rows = static_cast<size_t>(d.plan.total_split_rows) * shape.q_heads;
        p.partial_o = DeviceAlloc<float>(rows * shape.v_dim);
        p.partial_ml = DeviceAlloc<float>(rows * 2);
        d.bufs = {(void*)p.num_keys,   (void*)p.table_offset, (void*)p.block_tables,
                  (void*)p.num_splits, (void*)p.split_base,   (void*)p.tasks,
                  p.partial_o,         p.partial_ml};
      }
      double ms = MedianMs(s, [&](int i) {
        const Dev& d = devs[i % devs.size()];
        BENCH_CHECK(ops::cuda::LaunchAttention(d.plan.params, d.plan.tiling, s));
      });
      double bytes = static_cast<double>(b) * ctx * key_bytes + b * (q_ts + o_ts) * 4.0;
      double gbps = bytes / (ms * 1e-3) / 1e9;
      out.push_back({{"kernel", shape.name},
                     {"batch", b},
                     {"context", ctx},
                     {"time_us", ms * 1e3},
                     {"bytes", bytes},
                     {"gbps", gbps},
                     {"ceiling_gbps", c.hbm_gbps},
                     {"ratio", gbps / c.hbm_gbps}});
      std::printf("%-10s batch %4d ctx %6d: %9.1f us %7.0f GB/s %5.1f%% of HBM\n", shape.name, b,
                  ctx, ms * 1e3, gbps, 100 * gbps / c.hbm_gbps);
      for (Dev& d : devs)
        for (void* p : d.bufs) cudaFree(p);
    }
  }
  cudaFree(k);
  if (!shape.mla) cudaFree(v);
  cudaFree(q);
  cudaFree(o);
}

void BenchGroupedGemm(cudaStream_t s, const DeepSeekExperts& ex, bool quick, const Ceilings& c,
                      json& out) {
  const int64_t hidden = ex.hidden, inter = ex.inter;
  const int e = ex.num_experts;
  std::vector<int> decode_rows = {1, 2, 4, 8, 16, 32, 64};
  std::vector<int> prefill_tokens =
      quick ? std::vector<int>{4096} : std::vector<int>{4096, 8192, 16384};
  auto run = [&](int rows_per_expert, const char* regime, int tokens) {
    const int64_t total = static_cast<int64_t>(rows_per_expert) * e;
    const int tile = ops::cuda::GroupedGemmTileRows(rows_per_expert);
    std::vector<int32_t> row_begin(e), num_rows(e, rows_per_expert), expert_of(e);
    std::vector<int2> tiles;
    for (int i = 0; i < e; ++i) {
      row_begin[i] = i * rows_per_expert;
      expert_of[i] = i;
      for (int m = 0; m * tile < rows_per_expert; ++m) tiles.push_back(make_int2(i, m));
    }
    ops::cuda::GroupedGemmGroups g;
    g.row_begin = Upload(row_begin, s);
    g.num_rows = Upload(num_rows, s);
    g.expert_of_group = Upload(expert_of, s);
    g.tiles = Upload(tiles, s);
    g.num_tiles = Upload(std::vector<int32_t>{static_cast<int32_t>(tiles.size())}, s);
    g.max_tiles = static_cast<int>(tiles.size());
    bf16* a = RandomBf16(total * hidden, 21, 1.0f, s);
    bf16* h = DeviceAlloc<bf16>(total * inter);
    float* y = DeviceAlloc<float>(total * hidden);
    double ms_gu = MedianMs(
        s,
        [&](int) {
          BENCH_CHECK(ops::cuda::LaunchGroupedGateUp(a, hidden, inter, g, ex.table, tile, h, s));
        },
        10);
    double ms_dn = MedianMs(
        s,
        [&](int) {
          BENCH_CHECK(ops::cuda::LaunchGroupedDown(h, inter, hidden, g, ex.table, tile, y, s));
        },
        10);
    double ms = ms_gu + ms_dn;
    double weight_bytes = 3.0 * e * hidden * inter * 2;
    double act_bytes = total * (hidden * 2.0 + inter * 2.0 * 2 + hidden * 4.0);
    double flops = 2.0 * total * hidden * inter * 3;
    double gbps = (weight_bytes + act_bytes) / (ms * 1e-3) / 1e9;
    double tflops = flops / (ms * 1e-3) / 1e12;
    json row = {{"kernel", "grouped_expert_mlp"},
                {"regime", regime},
                {"experts", e},
                {"rows_per_expert", rows_per_expert},
                {"tokens_top8", tokens},
                {"time_us", ms * 1e3},
                {"gate_up_us", ms_gu * 1e3},
                {"down_us", ms_dn * 1e3},
                {"gbps", gbps},
                {"tflops", tflops}};
    if (std::string(regime) == "decode") {
      row["ceiling_gbps"] = c.hbm_gbps;
      row["ratio"] = gbps / c.hbm_gbps;
      std::printf(
          "experts decode %3d rows/expert: %8.1f us %6.0f GB/s %5.1f%% of HBM (%.0f TFLOP/s)\n",
          rows_per_expert, ms * 1e3, gbps, 100 * gbps / c.hbm_gbps, tflops);
    } else {
      row["ceiling_tflops"] = c.bf16_tflops;
      row["ratio"] = tflops / c.bf16_tflops;
      std::printf(
          "experts prefill %5d tokens (%d rows/expert): %8.1f us %5.0f TFLOP/s %5.1f%% of peak\n",
          tokens, rows_per_expert, ms * 1e3, tflops, 100 * tflops / c.bf16_tflops);
    }
    out.push_back(row);
    for (const void* p : {(const void*)g.row_begin, (const void*)g.num_rows,
                          (const void*)g.expert_of_group, (const void*)g.tiles,
                          (const void*)g.num_tiles, (const void*)a, (const void*)h, (const void*)y})
      cudaFree(const_cast<void*>(p));
  };
  for (int r : decode_rows) run(r, "decode", r * e / 8);
  for (int t : prefill_tokens) run(t * 8 / e, "prefill", t);
}

void BenchDeterministicCost(cudaStream_t s, json& out) {
  auto fast = LtGemm::Create(s, false, size_t{32} << 20);
  auto det = LtGemm::Create(s, true, size_t{32} << 20);
  if (!fast.ok() || !det.ok()) return;
  struct NK {
    int64_t n, k;
    const char* what;
  } shapes[] = {{7168, 2048, "expert/shared down"},
                {24576, 1536, "q_b_proj"},
                {7168, 16384, "o_proj"},
                {2048, 7168, "shared gate/up"}};
  for (const NK& nk : shapes) {
    bf16* w = RandomBf16(nk.n * nk.k, 31, 0.05f, s);
    bf16* x = RandomBf16(512 * nk.k, 32, 1.0f, s);
    float* y = DeviceAlloc<float>(512 * nk.n);
    for (int64_t m : {1, 8, 32, 128, 512}) {
      LtGemmShape sh{ops::DType::kBF16, m, nk.n, nk.k, nk.k, nk.k, nk.n};
      auto time = [&](LtGemm& g) {
        return MedianMs(s, [&](int) {
          Status st = g.Run(sh, x, w, y);
          if (!st.ok()) {
            std::fprintf(stderr, "%s\n", st.ToString().c_str());
            std::exit(1);
          }
        });
      };
      double t_fast = time(**fast), t_det = time(**det);
      out.push_back({{"shape", nk.what},
                     {"m", m},
                     {"n", nk.n},
                     {"k", nk.k},
                     {"heuristic_us", t_fast * 1e3},
                     {"deterministic_us", t_det * 1e3},
                     {"slowdown", t_det / t_fast}});
      std::printf("gemm %-18s m %4ld: heuristic %7.1f us, deterministic %7.1f us (x%.2f)\n",
                  nk.what, static_cast<long>(m), t_fast * 1e3, t_det * 1e3, t_det / t_fast);
    }
    cudaFree(w);
    cudaFree(x);
    cudaFree(y);
  }
}

}  // namespace
}  // namespace strata::bench::gpu

int main(int argc, char** argv) {
  using namespace strata::bench::gpu;
  if (argc < 2) {
    std::fprintf(stderr, "usage: gpu_bench OUT.json [--git-sha SHA] [--quick]\n");
    return 2;
  }
  std::string path = argv[1], sha = "unknown";
  bool quick = false;
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--git-sha") == 0 && i + 1 < argc) sha = argv[++i];
    if (std::strcmp(argv[i], "--quick") == 0) quick = true;
  }
  strata::ops::CudaBackendOptions options;
  auto backend = strata::ops::CreateCudaBackend(options);
  if (!backend.ok()) {
    std::fprintf(stderr, "gpu_bench: %s\n", backend.status().ToString().c_str());
    return 2;
  }
  cudaStream_t s = static_cast<cudaStream_t>((*backend)->stream());
  cudaDeviceProp prop{};
  BENCH_CHECK(cudaGetDeviceProperties(&prop, 0));
  nlohmann::json j;
  j["gpu"] = prop.name;
  j["sm_count"] = prop.multiProcessorCount;
  j["memory_bytes"] = prop.totalGlobalMem;
  j["git_sha"] = sha;
  Ceilings c = MeasureCeilings(s, j["ceilings"]);

  std::vector<int> batches = {1, 8, 32, 64, 128};
  std::vector<int> contexts = {1024, 4096, 8192, 16384, 32768};
  if (quick) contexts = {1024, 4096, 32768};
  j["decode_attention"] = nlohmann::json::array();
  BenchAttention(s, {"gqa-64/8x128", 64, 8, 128, 128, false}, batches, contexts, c,
                 j["decode_attention"]);
  BenchAttention(s, {"mla-128x576", 128, 1, 576, 512, true}, batches, contexts, c,
                 j["decode_attention"]);

  DeepSeekExperts experts = MakeDeepSeekExperts(s, 256);
  j["grouped_expert_gemm"] = nlohmann::json::array();
  BenchGroupedGemm(s, experts, quick, c, j["grouped_expert_gemm"]);
  j["deterministic_gemm_cost"] = nlohmann::json::array();
  BenchDeterministicCost(s, j["deterministic_gemm_cost"]);
  j["deepseek_v3_layer_decode"] = nlohmann::json::array();
  BenchDeepSeekLayer(**backend, experts, {32, 64, 128}, 4096, c.hbm_gbps,
                     j["deepseek_v3_layer_decode"]);
  j["published_decode_tokens_per_s_per_device"] = {
      {"CloudMatrix-Infer (Ascend 910C NPU, 50 ms TPOT)", 1943},
      {"DeepSeek profile (H800)", 2325},
      {"SGLang (96 H100)", 2172}};
  std::ofstream f(path);
  f << j.dump(2) << "\n";
  std::printf("wrote %s\n", path.c_str());
  return f.good() ? 0 : 1;
}
