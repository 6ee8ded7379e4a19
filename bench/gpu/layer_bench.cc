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
constexpr int kBlock = 64;                    // KV block size (tokens)

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

DeepSeekLayerWeights MakeDeepSeekLayerWeights(cudaStream_t s, int64_t inter) {
  DeepSeekLayerWeights w;
  w.inter = inter;
  w.q_a = RandomBf16(kQLora * kHidden, 201, 0.02f, s);
  w.kv_a = RandomBf16(kLatent * kHidden, 202, 0.02f, s);
  w.q_b = RandomBf16(kHeads * kQHead * kQLora, 203, 0.02f, s);
  w.w_uk = RandomBf16(kHeads * kKvLora * kNope, 204, 0.05f, s);   // per head [512, 128]
  w.w_uv = RandomBf16(kHeads * kVHead * kKvLora, 205, 0.05f, s);  // per head [128, 512]
  w.o_proj = RandomBf16(kHidden * kHeads * kVHead, 206, 0.02f, s);
  w.router = RandomF32(256 * kHidden, 207, 0.02f, s);
  w.router_ep = RandomF32(8 * kHidden, 208, 0.02f, s);
  w.bias = RandomF32(256, 209, 0.01f, s);
  w.sh_gate = RandomBf16(inter * kHidden, 210, 0.02f, s);
  w.sh_up = RandomBf16(inter * kHidden, 211, 0.02f, s);
  w.sh_down = RandomBf16(kHidden * inter, 212, 0.02f, s);
  w.norm_w = RandomF32(kHidden, 213, 1.0f, s);
  w.rope.rotary_dim = kRope;
  w.rope.interleaved = true;
  w.rope.attention_factor = 1.0f;
  for (int i = 0; i < kRope / 2; ++i)
    w.rope.inv_freq.push_back(std::pow(10000.0f, -2.0f * i / kRope) / 40.0f);
  const float yarn_mscale = 0.1f * std::log(40.0f) + 1.0f;
  w.scale = yarn_mscale * yarn_mscale / std::sqrt(static_cast<float>(kQHead));
  return w;
}

DeepSeekBatch MakeDeepSeekBatch(int b, int context, int64_t inter, uint64_t seed, cudaStream_t s) {
  DeepSeekBatch a;
  a.b = b;
  a.context = context;
  // KV cache: each sequence has `context` keys written plus the new one.
  const int nb = (context + 1 + kBlock - 1) / kBlock;
  a.cache = RandomBf16(static_cast<size_t>(b) * nb * kBlock * kLatent, seed + 1, 1.0f, s);
  a.x = RandomF32(b * kHidden, seed + 2, 1.0f, s);
  a.xn = DeviceAlloc<float>(b * kHidden);
  a.qa = DeviceAlloc<float>(b * kQLora);
  a.kva = DeviceAlloc<float>(b * kLatent);
  a.q = DeviceAlloc<float>(b * kHeads * kQHead);
  a.q_abs = DeviceAlloc<float>(b * kHeads * kLatent);
  a.lat = DeviceAlloc<float>(b * kHeads * kKvLora);
  a.attn = DeviceAlloc<float>(b * kHeads * kVHead);
  a.o = DeviceAlloc<float>(b * kHidden);
  a.logits = DeviceAlloc<float>(b * 256);
  a.moe = DeviceAlloc<float>(b * kHidden);
  a.sg = DeviceAlloc<float>(b * inter);
  a.su = DeviceAlloc<float>(b * inter);
  a.so = DeviceAlloc<float>(b * kHidden);
  a.tables.assign(b, std::vector<int32_t>(nb));
  for (int t = 0; t < b; ++t) std::iota(a.tables[t].begin(), a.tables[t].end(), t * nb);
  a.spans.assign(a.tables.begin(), a.tables.end());
  a.num_keys.assign(b, context + 1);
  std::vector<int32_t> positions(b, context);
  std::vector<int64_t> slots(b);
  for (int t = 0; t < b; ++t) {
    int64_t blk = a.tables[t][context / kBlock];
    slots[t] = (blk * kBlock + context % kBlock) * kLatent;
  }
  a.d_pos = Upload(positions, s);
  a.d_slots = Upload(slots, s);
  return a;
}

void FreeBatch(DeepSeekBatch& a) {
  for (void* p :
       {static_cast<void*>(a.cache), static_cast<void*>(a.x), static_cast<void*>(a.xn),
        static_cast<void*>(a.qa), static_cast<void*>(a.kva), static_cast<void*>(a.q),
        static_cast<void*>(a.q_abs), static_cast<void*>(a.lat), static_cast<void*>(a.attn),
        static_cast<void*>(a.o), static_cast<void*>(a.logits), static_cast<void*>(a.moe),
        static_cast<void*>(a.sg), static_cast<void*>(a.su), static_cast<void*>(a.so),
        static_cast<void*>(a.d_pos), static_cast<void*>(a.d_slots)}) {
    cudaFree(p);
  }
  a = DeepSeekBatch();
}

void RunAttentionBlock(ops::CudaBackend& be, const DeepSeekLayerWeights& w, DeepSeekBatch& a) {
  cudaStream_t s = static_cast<cudaStream_t>(be.stream());
  const int b = a.b;
  be.RmsNorm(a.x, b, kHidden, kHidden, w.norm_w, 1e-6f, a.xn, kHidden);
  MatmulOutput a_out[] = {{W(DType::kBF16, w.q_a, kQLora, kHidden), a.qa, kQLora},
                          {W(DType::kBF16, w.kv_a, kLatent, kHidden), a.kva, kLatent}};
  be.Matmul(a.xn, b, kHidden, a_out);
  be.RmsNorm(a.qa, b, kQLora, kQLora, w.norm_w, 1e-6f, a.qa, kQLora);
  be.RmsNorm(a.kva, b, kKvLora, kLatent, w.norm_w, 1e-6f, a.kva, kLatent);
  MatmulOutput qb_out{W(DType::kBF16, w.q_b, kHeads * kQHead, kQLora), a.q, kHeads * kQHead};
  be.Matmul(a.qa, b, kQLora, std::span<const MatmulOutput>(&qb_out, 1));
  be.Rope(a.q + kNope, b, kHeads * kQHead, kHeads, kQHead, a.d_pos, w.rope);
  be.Rope(a.kva + kKvLora, b, kLatent, 1, kLatent, a.d_pos, w.rope);
  std::vector<MatmulProblem> uk(kHeads), uv(kHeads);
  for (int64_t h = 0; h < kHeads; ++h) {
    uk[h] = {a.q + h * kQHead,      b,
             kHeads * kQHead,       W(DType::kBF16, w.w_uk + h * kKvLora * kNope, kKvLora, kNope),
             a.q_abs + h * kLatent, kHeads * kLatent};
    uv[h] = {a.lat + h * kKvLora, b,
             kHeads * kKvLora,    W(DType::kBF16, w.w_uv + h * kVHead * kKvLora, kVHead, kKvLora),
             a.attn + h * kVHead, kHeads * kVHead};
  }
  be.BatchedMatmul(uk);
  BENCH_CHECK(cudaMemcpy2DAsync(a.q_abs + kKvLora, kLatent * 4, a.q + kNope, kQHead * 4, kRope * 4,
                                b * kHeads, cudaMemcpyDeviceToDevice, s));
  be.ScatterToCache(a.kva, b, kLatent, kLatent, a.cache, a.d_slots);
  ops::AttentionArgs at;
  at.q = a.q_abs;
  at.q_token_stride = kHeads * kLatent;
  at.q_head_stride = kLatent;
  at.num_tokens = b;
  at.num_q_heads = kHeads;
  at.num_keys = a.num_keys.data();
  at.block_tables = a.spans.data();
  at.kv.k = a.cache;
  at.kv.v = a.cache;
  at.kv.block_stride = kBlock * kLatent;
  at.kv.token_stride = kLatent;
  at.kv.head_stride = kLatent;
  at.kv.block_size = kBlock;
  at.kv.num_kv_heads = 1;
  at.kv.k_dim = kLatent;
  at.kv.v_dim = kKvLora;
  at.scale = w.scale;
  at.out = a.lat;
  at.out_token_stride = kHeads * kKvLora;
  at.out_head_stride = kKvLora;
  be.Attention(at);
  be.BatchedMatmul(uv);
  MatmulOutput o_out{W(DType::kBF16, w.o_proj, kHidden, kHeads * kVHead), a.o, kHidden};
  be.Matmul(a.attn, b, kHeads * kVHead, std::span<const MatmulOutput>(&o_out, 1));
  be.Add(a.x, kHidden, a.o, kHidden, b, kHidden);
}

void RunMoeNorm(ops::CudaBackend& be, const DeepSeekLayerWeights& w, DeepSeekBatch& a) {
  be.RmsNorm(a.x, a.b, kHidden, kHidden, w.norm_w, 1e-6f, a.xn, kHidden);
}

void RunSharedExpert(ops::CudaBackend& be, const DeepSeekLayerWeights& w, DeepSeekBatch& a) {
  MatmulOutput gu[] = {{W(DType::kBF16, w.sh_gate, w.inter, kHidden), a.sg, w.inter},
                       {W(DType::kBF16, w.sh_up, w.inter, kHidden), a.su, w.inter}};
  be.Matmul(a.xn, a.b, kHidden, gu);
  be.SiluMul(a.sg, w.inter, a.su, w.inter, a.b, w.inter, a.sg, w.inter);
  MatmulOutput dn{W(DType::kBF16, w.sh_down, kHidden, w.inter), a.so, kHidden};
  be.Matmul(a.sg, a.b, w.inter, std::span<const MatmulOutput>(&dn, 1));
}

void BenchDeepSeekLayer(ops::CudaBackend& be, const DeepSeekExperts& experts,
                        const std::vector<int>& batches, int context, double hbm_gbps,
                        nlohmann::json& out) {
  cudaStream_t s = static_cast<cudaStream_t>(be.stream());
  const DeepSeekLayerWeights w = MakeDeepSeekLayerWeights(s, experts.inter);
  auto full = be.UploadExperts(experts.views);
  auto ep = be.UploadExperts(std::span<const ops::MlpWeights>(experts.views.data(), 8));
  if (!full.ok()) Fail(full.status());
  if (!ep.ok()) Fail(ep.status());

  for (int b : batches) {
    DeepSeekBatch a = MakeDeepSeekBatch(b, context, experts.inter, 214, s);
    auto moe_block = [&](bool ep_shard) {
      RunMoeNorm(be, w, a);
      ops::RouterSpec spec;
      spec.scoring = ops::RouterScoring::kSigmoid;
      spec.top_k = 8;
      spec.norm_topk_prob = true;
      spec.routed_scaling_factor = 2.5f;
      if (ep_shard) {  // every token's 8 assignments land on the 8 local experts
        spec.num_experts = 8;
        MatmulOutput r{W(DType::kF32, w.router_ep, 8, kHidden), a.logits, 8};
        be.Matmul(a.xn, b, kHidden, std::span<const MatmulOutput>(&r, 1));
        be.MoeForward(a.xn, b, a.logits, spec, **ep, a.moe);
      } else {
        spec.num_experts = 256;
        spec.num_groups = 8;
        spec.topk_groups = 4;
        spec.correction_bias = w.bias;
        MatmulOutput r{W(DType::kF32, w.router, 256, kHidden), a.logits, 256};
        be.Matmul(a.xn, b, kHidden, std::span<const MatmulOutput>(&r, 1));
        be.MoeForward(a.xn, b, a.logits, spec, **full, a.moe);
      }
      RunSharedExpert(be, w, a);
      be.Add(a.x, kHidden, a.moe, kHidden, b, kHidden);
      be.Add(a.x, kHidden, a.so, kHidden, b, kHidden);
    };
    double t_attn = MedianMs(s, [&](int) { RunAttentionBlock(be, w, a); });
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
    FreeBatch(a);
  }
  (void)hbm_gbps;
}

}  // namespace strata::bench::gpu
