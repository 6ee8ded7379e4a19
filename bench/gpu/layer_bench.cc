// DeepSeek-V3 layer decode step: attention block (norms, q/kv LoRA projections, RoPE, W_UK
// absorption, KV write, MLA attention over the latent cache, W_UV, o_proj, residual) and MoE
// block (norm, f32 router, device routing + permutation + grouped expert MLP + combine, shared
// expert, residuals), all through the CudaBackend. Two MoE placements: all 256 experts on this
// GPU, and the per-GPU share of an EP=32 deployment (8 local experts receiving batch * top-8
// rows; dispatch/combine communication not included).
#include "bench/gpu/layer_bench.h"

#include <cmath>
#include <cstdio>
#include <numeric>

#include "bench/gpu/bench_util.h"

namespace strata::bench::gpu {
namespace {

using ops::DType;
using ops::MatmulOutput;
using ops::MatmulProblem;
using ops::WeightView;

constexpr int64_t kHidden = 7168, kQLora = 1536, kKvLora = 512, kRope = 64, kNope = 128,
                  kVHead = 128, kHeads = 128, kLayers = 61;
constexpr int64_t kQHead = kNope + kRope;     // 192
constexpr int64_t kLatent = kKvLora + kRope;  // 576

WeightView W(DType t, const void* p, int64_t rows, int64_t cols) {
  WeightView w;
  w.dtype = t;
  w.data = p;
  w.rows = rows;
  w.cols = cols;
  return w;
}

void Fail(const Status& s) {
  std::fprintf(stderr, "gpu_bench layer: %s\n", s.ToString().c_str());
  std::exit(1);
}

}  // namespace

DeepSeekExperts MakeDeepSeekExperts(cudaStream_t s, int num_experts) {
  DeepSeekExperts e;
  e.num_experts = num_experts;
  const int64_t per = e.hidden * e.inter;
  e.gate = RandomBf16(per * num_experts, 101, 0.02f, s);
  e.up = RandomBf16(per * num_experts, 102, 0.02f, s);
  e.down = RandomBf16(per * num_experts, 103, 0.02f, s);
  std::vector<uint64_t> img(6 * num_experts);
  for (int i = 0; i < num_experts; ++i) {
    img[i] = reinterpret_cast<uint64_t>(e.gate + i * per);
    img[num_experts + i] = reinterpret_cast<uint64_t>(e.up + i * per);
    img[2 * num_experts + i] = reinterpret_cast<uint64_t>(e.down + i * per);
    img[3 * num_experts + i] = e.hidden;
    img[4 * num_experts + i] = e.hidden;
    img[5 * num_experts + i] = e.inter;
    ops::MlpWeights m;
    m.gate = W(DType::kBF16, e.gate + i * per, e.inter, e.hidden);
    m.up = W(DType::kBF16, e.up + i * per, e.inter, e.hidden);
    m.down = W(DType::kBF16, e.down + i * per, e.hidden, e.inter);
    e.views.push_back(m);
  }
  uint64_t* d = Upload(img, s);
  e.table.gate = reinterpret_cast<const bf16* const*>(d);
  e.table.up = reinterpret_cast<const bf16* const*>(d + num_experts);
  e.table.down = reinterpret_cast<const bf16* const*>(d + 2 * num_experts);
  e.table.gate_stride = reinterpret_cast<const int64_t*>(d + 3 * num_experts);
  e.table.up_stride = reinterpret_cast<const int64_t*>(d + 4 * num_experts);
  e.table.down_stride = reinterpret_cast<const int64_t*>(d + 5 * num_experts);
  return e;
}

void BenchDeepSeekLayer(ops::CudaBackend& be, const DeepSeekExperts& experts,
                        const std::vector<int>& batches, int context, double hbm_gbps,
                        nlohmann::json& out) {
  cudaStream_t s = static_cast<cudaStream_t>(be.stream());
  const int max_b = *std::max_element(batches.begin(), batches.end());
  // Attention weights (bf16) and norms.
  bf16* q_a = RandomBf16(kQLora * kHidden, 201, 0.02f, s);
  bf16* kv_a = RandomBf16(kLatent * kHidden, 202, 0.02f, s);
  bf16* q_b = RandomBf16(kHeads * kQHead * kQLora, 203, 0.02f, s);
  bf16* w_uk = RandomBf16(kHeads * kKvLora * kNope, 204, 0.05f, s);   // per head [512, 128]
  bf16* w_uv = RandomBf16(kHeads * kVHead * kKvLora, 205, 0.05f, s);  // per head [128, 512]
  bf16* o_proj = RandomBf16(kHidden * kHeads * kVHead, 206, 0.02f, s);
  float* router = RandomF32(256 * kHidden, 207, 0.02f, s);
  float* router_ep = RandomF32(8 * kHidden, 208, 0.02f, s);
  float* bias = RandomF32(256, 209, 0.01f, s);
  bf16* sh_gate = RandomBf16(experts.inter * kHidden, 210, 0.02f, s);
  bf16* sh_up = RandomBf16(experts.inter * kHidden, 211, 0.02f, s);
  bf16* sh_down = RandomBf16(kHidden * experts.inter, 212, 0.02f, s);
  float* norm_w = RandomF32(kHidden, 213, 1.0f, s);
  // KV cache: each sequence has `context` keys written plus the new one.
  const int block = 64;
  const int nb = (context + 1 + block - 1) / block;
  bf16* cache = RandomBf16(static_cast<size_t>(max_b) * nb * block * kLatent, 214, 1.0f, s);
  // Activations.
  float* x = RandomF32(max_b * kHidden, 215, 1.0f, s);
  float* xn = DeviceAlloc<float>(max_b * kHidden);
  float* qa = DeviceAlloc<float>(max_b * kQLora);
  float* kva = DeviceAlloc<float>(max_b * kLatent);
  float* q = DeviceAlloc<float>(max_b * kHeads * kQHead);
  float* q_abs = DeviceAlloc<float>(max_b * kHeads * kLatent);
  float* lat = DeviceAlloc<float>(max_b * kHeads * kKvLora);
  float* attn = DeviceAlloc<float>(max_b * kHeads * kVHead);
  float* o = DeviceAlloc<float>(max_b * kHidden);
  float* logits = DeviceAlloc<float>(max_b * 256);
  float* moe = DeviceAlloc<float>(max_b * kHidden);
  float* sg = DeviceAlloc<float>(max_b * experts.inter);
  float* su = DeviceAlloc<float>(max_b * experts.inter);
  float* so = DeviceAlloc<float>(max_b * kHidden);

  auto full = be.UploadExperts(experts.views);
  auto ep = be.UploadExperts(std::span<const ops::MlpWeights>(experts.views.data(), 8));
  if (!full.ok()) Fail(full.status());
  if (!ep.ok()) Fail(ep.status());
  ops::RopeTable rope;
  rope.rotary_dim = kRope;
  rope.interleaved = true;
  rope.attention_factor = 1.0f;
  for (int i = 0; i < kRope / 2; ++i)
    rope.inv_freq.push_back(std::pow(10000.0f, -2.0f * i / kRope) / 40.0f);
  const float yarn_mscale = 0.1f * std::log(40.0f) + 1.0f;
  const float scale = yarn_mscale * yarn_mscale / std::sqrt(static_cast<float>(kQHead));

  for (int b : batches) {
    std::vector<std::vector<int32_t>> tables(b, std::vector<int32_t>(nb));
    for (int t = 0; t < b; ++t) std::iota(tables[t].begin(), tables[t].end(), t * nb);
    std::vector<std::span<const int32_t>> spans(tables.begin(), tables.end());
    std::vector<int32_t> num_keys(b, context + 1), positions(b, context);
    std::vector<int64_t> slots(b);
    for (int t = 0; t < b; ++t) {
      int64_t blk = tables[t][context / block];
      slots[t] = (blk * block + context % block) * kLatent;
    }
    int32_t* d_pos = Upload(positions, s);
    int64_t* d_slots = Upload(slots, s);

    auto attention_block = [&]() {
      be.RmsNorm(x, b, kHidden, kHidden, norm_w, 1e-6f, xn, kHidden);
      MatmulOutput a_out[] = {{W(DType::kBF16, q_a, kQLora, kHidden), qa, kQLora},
                              {W(DType::kBF16, kv_a, kLatent, kHidden), kva, kLatent}};
      be.Matmul(xn, b, kHidden, a_out);
      be.RmsNorm(qa, b, kQLora, kQLora, norm_w, 1e-6f, qa, kQLora);
      be.RmsNorm(kva, b, kKvLora, kLatent, norm_w, 1e-6f, kva, kLatent);
      MatmulOutput qb_out{W(DType::kBF16, q_b, kHeads * kQHead, kQLora), q, kHeads * kQHead};
      be.Matmul(qa, b, kQLora, std::span<const MatmulOutput>(&qb_out, 1));
      be.Rope(q + kNope, b, kHeads * kQHead, kHeads, kQHead, d_pos, rope);
      be.Rope(kva + kKvLora, b, kLatent, 1, kLatent, d_pos, rope);
      std::vector<MatmulProblem> uk(kHeads), uv(kHeads);
      for (int64_t h = 0; h < kHeads; ++h) {
        uk[h] = {q + h * kQHead,      b,
                 kHeads * kQHead,     W(DType::kBF16, w_uk + h * kKvLora * kNope, kKvLora, kNope),
                 q_abs + h * kLatent, kHeads * kLatent};
        uv[h] = {lat + h * kKvLora, b,
                 kHeads * kKvLora,  W(DType::kBF16, w_uv + h * kVHead * kKvLora, kVHead, kKvLora),
                 attn + h * kVHead, kHeads * kVHead};
      }
      be.BatchedMatmul(uk);
      BENCH_CHECK(cudaMemcpy2DAsync(q_abs + kKvLora, kLatent * 4, q + kNope, kQHead * 4, kRope * 4,
                                    b * kHeads, cudaMemcpyDeviceToDevice, s));
      be.ScatterToCache(kva, b, kLatent, kLatent, cache, d_slots);
      ops::AttentionArgs a;
      a.q = q_abs;
      a.q_token_stride = kHeads * kLatent;
      a.q_head_stride = kLatent;
      a.num_tokens = b;
      a.num_q_heads = kHeads;
      a.num_keys = num_keys.data();
      a.block_tables = spans.data();
      a.kv.k = cache;
      a.kv.v = cache;
      a.kv.block_stride = block * kLatent;
      a.kv.token_stride = kLatent;
      a.kv.head_stride = kLatent;
      a.kv.block_size = block;
      a.kv.num_kv_heads = 1;
      a.kv.k_dim = kLatent;
      a.kv.v_dim = kKvLora;
      a.scale = scale;
      a.out = lat;
      a.out_token_stride = kHeads * kKvLora;
      a.out_head_stride = kKvLora;
      be.Attention(a);
      be.BatchedMatmul(uv);
      MatmulOutput o_out{W(DType::kBF16, o_proj, kHidden, kHeads * kVHead), o, kHidden};
      be.Matmul(attn, b, kHeads * kVHead, std::span<const MatmulOutput>(&o_out, 1));
      be.Add(x, kHidden, o, kHidden, b, kHidden);
    };
    auto moe_block = [&](bool ep_shard) {
      be.RmsNorm(x, b, kHidden, kHidden, norm_w, 1e-6f, xn, kHidden);
      ops::RouterSpec spec;
      spec.scoring = ops::RouterScoring::kSigmoid;
      spec.top_k = 8;
      spec.norm_topk_prob = true;
      spec.routed_scaling_factor = 2.5f;
      if (ep_shard) {  // every token's 8 assignments land on the 8 local experts
        spec.num_experts = 8;
        MatmulOutput r{W(DType::kF32, router_ep, 8, kHidden), logits, 8};
        be.Matmul(xn, b, kHidden, std::span<const MatmulOutput>(&r, 1));
        be.MoeForward(xn, b, logits, spec, **ep, moe);
      } else {
        spec.num_experts = 256;
        spec.num_groups = 8;
        spec.topk_groups = 4;
        spec.correction_bias = bias;
        MatmulOutput r{W(DType::kF32, router, 256, kHidden), logits, 256};
        be.Matmul(xn, b, kHidden, std::span<const MatmulOutput>(&r, 1));
        be.MoeForward(xn, b, logits, spec, **full, moe);
      }
      MatmulOutput gu[] = {{W(DType::kBF16, sh_gate, experts.inter, kHidden), sg, experts.inter},
                           {W(DType::kBF16, sh_up, experts.inter, kHidden), su, experts.inter}};
      be.Matmul(xn, b, kHidden, gu);
      be.SiluMul(sg, experts.inter, su, experts.inter, b, experts.inter, sg, experts.inter);
      MatmulOutput dn{W(DType::kBF16, sh_down, kHidden, experts.inter), so, kHidden};
      be.Matmul(sg, b, experts.inter, std::span<const MatmulOutput>(&dn, 1));
      be.Add(x, kHidden, moe, kHidden, b, kHidden);
      be.Add(x, kHidden, so, kHidden, b, kHidden);
    };
    double t_attn = MedianMs(s, [&](int) { attention_block(); });
    double t_moe_full = MedianMs(
        s, [&](int) { moe_block(false); }, 10);
    double t_moe_ep = MedianMs(s, [&](int) { moe_block(true); });
    Status st = be.Synchronize();
    if (!st.ok()) Fail(st);
    for (bool ep_shard : {false, true}) {
      double layer_ms = t_attn + (ep_shard ? t_moe_ep : t_moe_full);
      double tok_s = b / (kLayers * layer_ms * 1e-3);
      const char* placement = ep_shard ? "EP=32 share: 8 local experts, batch*8 rows (no comm)"
                                       : "all 256 experts on this GPU";
      out.push_back({{"batch", b},
                     {"context", context},
                     {"moe_placement", placement},
                     {"attention_block_us", t_attn * 1e3},
                     {"moe_block_us", (ep_shard ? t_moe_ep : t_moe_full) * 1e3},
                     {"layer_us", layer_ms * 1e3},
                     {"layers", kLayers},
                     {"tpot_ms_projected", kLayers * layer_ms},
                     {"tokens_per_s_per_gpu_projected", tok_s}});
      std::printf(
          "DeepSeek-V3 layer batch %3d ctx %d [%s]: attn %.0f us + moe %.0f us = %.0f us;"
          " 61 layers -> TPOT %.1f ms, %.0f tok/s/GPU\n",
          b, context, placement, t_attn * 1e3, (ep_shard ? t_moe_ep : t_moe_full) * 1e3,
          layer_ms * 1e3, kLayers * layer_ms, tok_s);
    }
    cudaFree(d_pos);
    cudaFree(d_slots);
  }
  (void)hbm_gbps;
}

}  // namespace strata::bench::gpu
