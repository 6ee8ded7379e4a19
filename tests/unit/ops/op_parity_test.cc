// Table-driven parity: every optimized CPU kernel set this machine runs (AVX2, AVX-512) against
// the plain reference, on fresh random inputs (never zeros), with an error bound per dtype.
// Also checks that the optimized results do not depend on the batch around a row or on the
// thread count (bit-identical).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>

#include "ops/backend.h"

namespace strata::ops {
namespace {

struct Rng {
  std::mt19937_64 gen;
  explicit Rng(uint64_t seed) : gen(seed) {}
  // Uniform in +-[0.1, 1] * scale: never zero.
  float Next(float scale = 1.0f) {
    std::uniform_real_distribution<float> u(0.1f, 1.0f);
    float v = u(gen) * scale;
    return (gen() & 1) ? v : -v;
  }
  std::vector<float> Floats(size_t n, float scale = 1.0f) {
    std::vector<float> v(n);
    for (auto& x : v) x = Next(scale);
    return v;
  }
  std::vector<bf16> Bf16s(size_t n, float scale = 1.0f) {
    std::vector<bf16> v(n);
    for (auto& x : v) x = FloatToBf16(Next(scale));
    return v;
  }
};

// Max |a - b| / max |ref|.
double RelError(const std::vector<float>& ref, const std::vector<float>& got) {
  double m = 0, d = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    m = std::max(m, static_cast<double>(std::fabs(ref[i])));
    d = std::max(d, static_cast<double>(std::fabs(ref[i] - got[i])));
  }
  return d / std::max(m, 1e-30);
}

// One op case: runs the op on a backend into an output vector.
struct OpCase {
  std::string name;
  double bound;  // relative error bound vs the reference
  std::function<std::vector<float>(Backend&)> run;
};

std::vector<OpCase> Cases() {
  std::vector<OpCase> cases;
  // Matmul with bf16 weights: activations may be rounded to bf16 (2^-9 relative per element).
  for (auto [m, n, k] : {std::tuple{1, 37, 100}, std::tuple{5, 64, 64}, std::tuple{17, 50, 333},
                         std::tuple{70, 130, 1024}}) {
    cases.push_back(
        {"matmul_bf16_" + std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k),
         1e-2, [m, n, k](Backend& be) {
           Rng r(m * 1000 + n);
           auto x = r.Floats(m * k);
           auto w = r.Bf16s(n * k);
           std::vector<float> y(m * n);
           MatmulOutput o{{DType::kBF16, w.data(), n, k, 0}, y.data(), n};
           be.Matmul(x.data(), m, k, std::span<const MatmulOutput>(&o, 1));
           return y;
         }});
  }
  cases.push_back({"matmul_f32_9x40x77", 1e-5, [](Backend& be) {
                     Rng r(7);
                     auto x = r.Floats(9 * 77), w = r.Floats(40 * 77);
                     std::vector<float> y(9 * 40);
                     MatmulOutput o{{DType::kF32, w.data(), 40, 77, 0}, y.data(), 40};
                     be.Matmul(x.data(), 9, 77, std::span<const MatmulOutput>(&o, 1));
                     return y;
                   }});
  cases.push_back({"batched_matmul_strided", 1e-2, [](Backend& be) {
                     Rng r(8);
                     auto x = r.Floats(6 * 4 * 48);
                     auto w = r.Bf16s(4 * 32 * 48);
                     std::vector<float> y(6 * 4 * 32);
                     std::vector<MatmulProblem> ps;
                     for (int h = 0; h < 4; ++h) {
                       ps.push_back({x.data() + h * 48,
                                     6,
                                     4 * 48,
                                     {DType::kBF16, w.data() + h * 32 * 48, 32, 48, 0},
                                     y.data() + h * 32,
                                     4 * 32});
                     }
                     be.BatchedMatmul(ps);
                     return y;
                   }});
  cases.push_back({"embedding", 0, [](Backend& be) {
                     Rng r(9);
                     auto t = r.Bf16s(50 * 24);
                     std::vector<int32_t> ids = {3, 49, 0, 3};
                     std::vector<float> y(4 * 24);
                     be.Embedding({DType::kBF16, t.data(), 50, 24, 0}, ids.data(), 4, y.data(), 24);
                     return y;
                   }});
  cases.push_back({"rmsnorm", 1e-5, [](Backend& be) {
                     Rng r(10);
                     auto x = r.Floats(7 * 96), w = r.Floats(96);
                     std::vector<float> y(7 * 96);
                     be.RmsNorm(x.data(), 7, 96, 96, w.data(), 1e-6f, y.data(), 96);
                     return y;
                   }});
  for (bool interleaved : {false, true}) {
    cases.push_back(
        {interleaved ? "rope_interleaved" : "rope_rotate_half", 1e-5, [interleaved](Backend& be) {
           Rng r(11);
           auto x = r.Floats(5 * 3 * 40);
           RopeTable t;
           t.rotary_dim = 32;
           t.interleaved = interleaved;
           t.attention_factor = 1.1f;
           for (int i = 0; i < 16; ++i) t.inv_freq.push_back(std::pow(10000.0f, -i / 16.0f));
           std::vector<int32_t> pos = {0, 1, 7, 100, 4000};
           be.Rope(x.data(), 5, 3 * 40, 3, 40, pos.data(), t);
           return x;
         }});
  }
  cases.push_back({"silu_mul", 1e-6, [](Backend& be) {
                     Rng r(12);
                     auto g = r.Floats(6 * 50, 4), u = r.Floats(6 * 50);
                     std::vector<float> y(6 * 50);
                     be.SiluMul(g.data(), 50, u.data(), 50, 6, 50, y.data(), 50);
                     return y;
                   }});
  // Attention: prefill (causal, GQA 8 q heads over 2 kv heads, keys over several blocks) and
  // decode (one query per sequence, different lengths), both paged with shuffled blocks; MQA
  // over an MLA-shaped latent (k = [c | k_pe], v = c).
  struct AttnShape {
    std::string name;
    int tokens, hq, hkv, k_dim, v_dim;
    bool decode;
  };
  for (const AttnShape& s : {AttnShape{"attention_prefill_gqa", 23, 8, 2, 64, 64, false},
                             AttnShape{"attention_decode_gqa", 4, 8, 2, 64, 64, true},
                             AttnShape{"attention_decode_mla_latent", 3, 16, 1, 72, 64, true}}) {
    cases.push_back({s.name, 1e-4, [s](Backend& be) {
                       Rng r(13);
                       const int bs = 4, num_blocks = 40;
                       const int head_stride = s.k_dim;
                       const int token_stride = s.hkv * head_stride;
                       auto cache = r.Bf16s(num_blocks * bs * token_stride, 2.0f);
                       std::vector<int32_t> table(num_blocks);
                       for (int i = 0; i < num_blocks; ++i) table[i] = (i * 7 + 3) % num_blocks;
                       auto q = r.Floats(s.tokens * s.hq * s.k_dim, 0.5f);
                       std::vector<int32_t> num_keys(s.tokens);
                       std::vector<std::span<const int32_t>> tables(s.tokens, table);
                       for (int t = 0; t < s.tokens; ++t)
                         num_keys[t] = s.decode ? 30 + 29 * t : t + 1;
                       std::vector<float> out(s.tokens * s.hq * s.v_dim);
                       AttentionArgs a;
                       a.q = q.data();
                       a.q_token_stride = s.hq * s.k_dim;
                       a.q_head_stride = s.k_dim;
                       a.num_tokens = s.tokens;
                       a.num_q_heads = s.hq;
                       a.num_keys = num_keys.data();
                       a.block_tables = tables.data();
                       a.kv = {cache.data(), cache.data(), int64_t{bs} * token_stride,
                               token_stride, head_stride,  bs,
                               s.hkv,        s.k_dim,      s.v_dim};
                       a.scale = 0.125f;
                       a.out = out.data();
                       a.out_token_stride = s.hq * s.v_dim;
                       a.out_head_stride = s.v_dim;
                       be.Attention(a);
                       return out;
                     }});
  }
  for (bool sigmoid : {false, true}) {
    cases.push_back(
        {sigmoid ? "moe_route_sigmoid_grouped" : "moe_route_softmax", 1e-6, [sigmoid](Backend& be) {
           Rng r(14);
           const int tokens = 9, e = 32, k = 4;
           auto logits = r.Floats(tokens * e, 3.0f);
           auto bias = r.Floats(e, 0.1f);
           RouterSpec spec;
           spec.scoring = sigmoid ? RouterScoring::kSigmoid : RouterScoring::kSoftmax;
           spec.num_experts = e;
           spec.top_k = k;
           spec.norm_topk_prob = true;
           if (sigmoid) {
             spec.num_groups = 4;
             spec.topk_groups = 2;
             spec.routed_scaling_factor = 2.5f;
             spec.correction_bias = bias.data();
           }
           std::vector<int32_t> ids(tokens * k);
           std::vector<float> w(tokens * k);
           be.MoeRoute(logits.data(), tokens, spec, ids.data(), w.data());
           std::vector<float> out(w);
           for (int32_t id : ids) out.push_back(static_cast<float>(id));
           return out;
         }});
  }
  cases.push_back({"grouped_expert_mlp", 1e-2, [](Backend& be) {
                     Rng r(15);
                     const int hidden = 64, inter = 48, experts = 3;
                     std::vector<std::vector<bf16>> ws;
                     std::vector<MlpWeights> mw(experts);
                     for (int e = 0; e < experts; ++e) {
                       ws.push_back(r.Bf16s(inter * hidden, 0.2f));
                       ws.push_back(r.Bf16s(inter * hidden, 0.2f));
                       ws.push_back(r.Bf16s(hidden * inter, 0.2f));
                       mw[e].gate = {DType::kBF16, ws[3 * e].data(), inter, hidden, 0};
                       mw[e].up = {DType::kBF16, ws[3 * e + 1].data(), inter, hidden, 0};
                       mw[e].down = {DType::kBF16, ws[3 * e + 2].data(), hidden, inter, 0};
                     }
                     auto x = r.Floats(11 * hidden);
                     std::vector<ExpertGroup> groups = {{2, 0, 5}, {0, 5, 1}, {1, 6, 5}};
                     std::vector<float> y(11 * hidden);
                     be.GroupedExpertMlp(x.data(), hidden, groups, mw, y.data());
                     return y;
                   }});
  // Bound 0: every kernel set sums in top-k order exactly as the EP combine does.
  cases.push_back({"weighted_combine", 0, [](Backend& be) {
                     Rng r(16);
                     auto rows = r.Floats(12 * 40), w = r.Floats(4 * 3);
                     std::vector<int32_t> idx = {0, 5, 9, 1, 2, 11, 3, 4, 6, 7, 8, 10};
                     std::vector<float> y(4 * 40);
                     be.WeightedCombine(rows.data(), 40, 4, 3, idx.data(), w.data(), y.data());
                     return y;
                   }});
  cases.push_back({"scatter_to_cache", 0, [](Backend& be) {
                     Rng r(17);
                     auto src = r.Floats(3 * 10);
                     std::vector<bf16> dst(50);
                     std::vector<int64_t> off = {40, 0, 20};
                     be.ScatterToCache(src.data(), 3, 10, 10, dst.data(), off.data());
                     std::vector<float> out;
                     for (bf16 v : dst) out.push_back(Bf16ToFloat(v));
                     return out;
                   }});
  return cases;
}

class OpParityTest : public ::testing::TestWithParam<CpuKernels> {};

TEST_P(OpParityTest, MatchesReference) {
  auto ref = CreateCpuBackend({1, CpuKernels::kReference});
  ASSERT_TRUE(ref.ok());
  for (int threads : {1, 2}) {
    auto opt = CreateCpuBackend({threads, GetParam()});
    ASSERT_TRUE(opt.ok()) << opt.status().ToString();
    for (const OpCase& c : Cases()) {
      std::vector<float> want = c.run(**ref);
      std::vector<float> got = c.run(**opt);
      ASSERT_EQ(want.size(), got.size()) << c.name;
      EXPECT_LE(RelError(want, got), c.bound) << c.name << " threads " << threads;
    }
  }
}

TEST_P(OpParityTest, BitIdenticalAcrossThreadCounts) {
  auto one = CreateCpuBackend({1, GetParam()});
  auto two = CreateCpuBackend({2, GetParam()});
  ASSERT_TRUE(one.ok() && two.ok());
  for (const OpCase& c : Cases()) {
    std::vector<float> a = c.run(**one), b = c.run(**two);
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << c.name;
  }
}

// A row's matmul result does not depend on how many rows are computed with it.
TEST_P(OpParityTest, MatmulRowsAreBatchInvariant) {
  auto be = CreateCpuBackend({2, GetParam()});
  ASSERT_TRUE(be.ok());
  Rng r(99);
  const int n = 77, k = 300, m = 37;
  auto x = r.Floats(m * k);
  auto w = r.Bf16s(n * k);
  std::vector<float> all(m * n);
  MatmulOutput o{{DType::kBF16, w.data(), n, k, 0}, all.data(), n};
  (*be)->Matmul(x.data(), m, k, std::span<const MatmulOutput>(&o, 1));
  for (int i : {0, 5, 36}) {
    std::vector<float> one(n);
    MatmulOutput o1{{DType::kBF16, w.data(), n, k, 0}, one.data(), n};
    (*be)->Matmul(x.data() + i * k, 1, k, std::span<const MatmulOutput>(&o1, 1));
    EXPECT_EQ(0, std::memcmp(one.data(), all.data() + i * n, n * sizeof(float))) << "row " << i;
  }
}

// A backend's packed copy of a weight (Backend::PackWeight) holds the same elements where
// WeightView::Index says, zeros in the padding, and gives the same products: bit-identical to
// the row-major weight on that backend, and within the bf16 bound of the reference reading the
// packed view.
TEST_P(OpParityTest, PackedWeightsMatchRowMajor) {
  auto be = CreateCpuBackend({2, GetParam()});
  auto ref = CreateCpuBackend({1, CpuKernels::kReference});
  ASSERT_TRUE(be.ok() && ref.ok());
  for (auto [m, n, k, stride] : {std::tuple{1, 200, 1024, 1024}, std::tuple{13, 130, 333, 333},
                                 std::tuple{7, 64, 96, 128}, std::tuple{40, 288, 512, 512}}) {
    SCOPED_TRACE(std::to_string(n) + "x" + std::to_string(k));
    Rng r(n + k);
    auto x = r.Floats(m * k);
    auto w = r.Bf16s(n * stride);
    const WeightView rm{DType::kBF16, w.data(), n, k, stride};
    const size_t bytes = (*be)->PackedWeightBytes(rm);
    if (bytes == 0) GTEST_SKIP() << "this kernel set reads weights as they are";
    void* buf = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    const WeightView packed = (*be)->PackWeight(rm, buf);
    ASSERT_EQ(packed.layout, WeightLayout::kPanels64);
    const bf16* pw = static_cast<const bf16*>(packed.data);
    std::vector<bool> used(bytes / sizeof(bf16), false);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < k; ++j) {
        ASSERT_EQ(pw[packed.Index(i, j)].bits, w[i * stride + j].bits) << i << "," << j;
        used[packed.Index(i, j)] = true;
      }
    }
    for (size_t e = 0; e < used.size(); ++e) {
      if (!used[e]) ASSERT_EQ(pw[e].bits, 0) << "padding element " << e;
    }
    std::vector<float> y_rm(m * n), y_packed(m * n), y_ref(m * n);
    MatmulOutput o_rm{rm, y_rm.data(), n}, o_packed{packed, y_packed.data(), n},
        o_ref{packed, y_ref.data(), n};
    (*be)->Matmul(x.data(), m, k, std::span<const MatmulOutput>(&o_rm, 1));
    (*be)->Matmul(x.data(), m, k, std::span<const MatmulOutput>(&o_packed, 1));
    (*ref)->Matmul(x.data(), m, k, std::span<const MatmulOutput>(&o_ref, 1));
    EXPECT_EQ(0, std::memcmp(y_rm.data(), y_packed.data(), y_rm.size() * sizeof(float)));
    EXPECT_LE(RelError(y_ref, y_packed), 1e-2);
    std::free(buf);
  }
}

INSTANTIATE_TEST_SUITE_P(Cpu, OpParityTest, ::testing::ValuesIn(SupportedCpuKernels()),
                         [](const auto& info) { return std::string(CpuKernelsName(info.param)); });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(OpParityTest);

TEST(CpuBackendTest, RejectsBadOptions) {
  EXPECT_EQ(CreateCpuBackend({0, CpuKernels::kAuto}).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace strata::ops

namespace strata::ops {
namespace {

// The same keys and values stored in shuffled paged blocks or in one contiguous block give the
// same attention output, on every kernel set (reduction order follows key positions, not
// memory); and a token alone gives the bits it gets among others.
TEST(AttentionTest, PagedEqualsContiguousAndTokensAlone) {
  std::vector<CpuKernels> all = SupportedCpuKernels();
  all.push_back(CpuKernels::kReference);
  for (CpuKernels k : all) {
    auto be = CreateCpuBackend({2, k});
    ASSERT_TRUE(be.ok());
    Rng r(21);
    const int n = 37, hq = 4, hkv = 2, d = 32, bs = 4;
    const int blocks = (n + bs - 1) / bs;
    const int token = hkv * d;
    auto contiguous = r.Bf16s(n * token);
    std::vector<int32_t> table(blocks);
    for (int b = 0; b < blocks; ++b) table[b] = (b * 3 + 2) % blocks;  // a permutation
    std::vector<bf16> paged(blocks * bs * token);
    for (int j = 0; j < n; ++j) {
      std::memcpy(paged.data() + (table[j / bs] * bs + j % bs) * token,
                  contiguous.data() + j * token, token * sizeof(bf16));
    }
    auto q = r.Floats(n * hq * d, 0.5f);
    std::vector<int32_t> num_keys(n);
    for (int t = 0; t < n; ++t) num_keys[t] = t + 1;
    std::vector<int32_t> one_block = {0};
    auto run = [&](const bf16* kv, int block_size, std::span<const int32_t> tbl) {
      std::vector<std::span<const int32_t>> tables(n, tbl);
      std::vector<float> out(n * hq * d);
      AttentionArgs a;
      a.q = q.data();
      a.q_token_stride = hq * d;
      a.q_head_stride = d;
      a.num_tokens = n;
      a.num_q_heads = hq;
      a.num_keys = num_keys.data();
      a.block_tables = tables.data();
      a.kv = {kv, kv, int64_t{block_size} * token, token, d, block_size, hkv, d, d};
      a.scale = 0.2f;
      a.out = out.data();
      a.out_token_stride = hq * d;
      a.out_head_stride = d;
      (*be)->Attention(a);
      return out;
    };
    std::vector<float> p = run(paged.data(), bs, table);
    std::vector<float> c = run(contiguous.data(), n, one_block);
    EXPECT_EQ(0, std::memcmp(p.data(), c.data(), p.size() * sizeof(float))) << CpuKernelsName(k);
    // Batch invariance: each token alone (a decode step) gives the bits it got in the prefill.
    for (int t : {0, 1, 6, 17, 36}) {
      std::span<const int32_t> tbl(table);
      std::vector<float> out(hq * d);
      AttentionArgs a;
      a.q = q.data() + t * hq * d;
      a.q_token_stride = hq * d;
      a.q_head_stride = d;
      a.num_tokens = 1;
      a.num_q_heads = hq;
      a.num_keys = num_keys.data() + t;
      a.block_tables = &tbl;
      a.kv = {paged.data(), paged.data(), int64_t{bs} * token, token, d, bs, hkv, d, d};
      a.scale = 0.2f;
      a.out = out.data();
      a.out_token_stride = hq * d;
      a.out_head_stride = d;
      (*be)->Attention(a);
      EXPECT_EQ(0, std::memcmp(out.data(), p.data() + t * hq * d, out.size() * sizeof(float)))
          << CpuKernelsName(k) << " token " << t;
    }
  }
}

}  // namespace
}  // namespace strata::ops
