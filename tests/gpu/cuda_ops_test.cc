// Op parity table, part 1: every non-attention op of the CUDA backend against the CPU reference
// (ops/cpu/reference.h) on fresh random inputs, outputs poisoned with NaN before each run.
// Skips (never fails) where no CUDA device is present.
#include <algorithm>
#include <numeric>

#include "gpu_test_util.h"
#if STRATA_WITH_CUDA
#include "ops/cuda/cuda_graph.h"
#endif

namespace strata::ops::testing {
namespace {

class CudaOpsTest : public GpuTest {};

TEST_F(CudaOpsTest, Embedding) {
  SCOPED_TRACE(seed_);
  const int64_t rows = 50, cols = 72, stride = 80, n = 9;
  std::vector<int32_t> ids(n);
  for (auto& id : ids) id = static_cast<int32_t>(rng_() % rows);
  std::vector<float> tf = RandVec(rows * stride);
  std::vector<bf16> tb = RandBf16(rows * stride);
  std::vector<f16> th(rows * stride);
  for (auto& v : th) v = FloatToF16(Rand());
  const int32_t* d_ids = Upload(ids);
  struct Case {
    DType t;
    const void* host;
    const void* dev;
  } cases[] = {{DType::kF32, tf.data(), Upload(tf)},
               {DType::kBF16, tb.data(), Upload(tb)},
               {DType::kF16, th.data(), Upload(th)}};
  for (const Case& c : cases) {
    SCOPED_TRACE(DTypeName(c.t));
    float* out = Poisoned(n * cols);
    cuda_->Embedding(View(c.t, c.dev, rows, cols, stride), d_ids, n, out, cols);
    std::vector<float> ref(n * cols);
    reference::Embedding(View(c.t, c.host, rows, cols, stride), ids.data(), n, ref.data(), cols);
    EXPECT_EQ(Download(out, n * cols), ref);  // a widening copy: exact
  }
}

TEST_F(CudaOpsTest, MatmulBf16AndF32) {
  SCOPED_TRACE(seed_);
  for (int64_t m : {1, 7, 33, 130}) {
    SCOPED_TRACE(m);
    const int64_t k = 200, ldx = 208, n1 = 96, n2 = 40, ldw = 200;
    std::vector<float> x = RandVec(m * ldx);
    std::vector<bf16> w1 = RandBf16(n1 * ldw, 0.1f);
    std::vector<float> w2 = RandVec(n2 * k, 0.1f);
    const float* dx = Upload(x);
    float* y1 = Poisoned(m * n1);
    float* y2 = Poisoned(m * (n2 + 3));
    MatmulOutput outs[] = {{View(DType::kBF16, Upload(w1), n1, k, ldw), y1, n1},
                           {View(DType::kF32, Upload(w2), n2, k), y2, n2 + 3}};
    cuda_->Matmul(dx, m, ldx, outs);
    std::vector<float> r1(m * n1), r2(m * (n2 + 3), 0.0f);
    MatmulOutput refs[] = {{View(DType::kBF16, w1.data(), n1, k, ldw), r1.data(), n1},
                           {View(DType::kF32, w2.data(), n2, k), r2.data(), n2 + 3}};
    reference::Matmul(x.data(), m, ldx, refs);
    EXPECT_LT(RelError(Download(y1, m * n1), r1), kBf16Bound);
    std::vector<float> o2 = Download(y2, m * (n2 + 3));
    for (int64_t i = 0; i < m; ++i) {  // the padding columns stay untouched (NaN)
      for (int64_t j = n2; j < n2 + 3; ++j) {
        EXPECT_TRUE(std::isnan(o2[i * (n2 + 3) + j]));
        o2[i * (n2 + 3) + j] = r2[i * (n2 + 3) + j] = 0.0f;
      }
    }
    EXPECT_LT(RelError(o2, r2), 1e-5);  // f32 weights: exact f32 products (router logits)
  }
}

TEST_F(CudaOpsTest, BatchedMatmulStridedAndIrregular) {
  SCOPED_TRACE(seed_);
  const int heads = 6, m = 5, k = 48, n = 32;
  std::vector<float> x = RandVec(heads * m * k);
  std::vector<bf16> w = RandBf16(heads * n * k, 0.2f);
  const float* dx = Upload(x);
  const bf16* dw = Upload(w);
  for (bool strided : {true, false}) {
    SCOPED_TRACE(strided);
    float* dy = Poisoned(heads * m * n);
    std::vector<float> ref(heads * m * n);
    std::vector<MatmulProblem> dev, host;
    for (int h = 0; h < heads; ++h) {
      // Irregular: reverse the order of the outputs so the pointer deltas are not constant.
      int hy = strided ? h : (h % 2 == 0 ? h : heads - h);
      dev.push_back(
          {dx + h * m * k, m, k, View(DType::kBF16, dw + h * n * k, n, k), dy + hy * m * n, n});
      host.push_back({x.data() + h * m * k, m, k, View(DType::kBF16, w.data() + h * n * k, n, k),
                      ref.data() + hy * m * n, n});
    }
    cuda_->BatchedMatmul(dev);
    reference::BatchedMatmul(host);
    EXPECT_LT(RelError(Download(dy, heads * m * n), ref), kBf16Bound);
  }
}

TEST_F(CudaOpsTest, RmsNormSiluMulAdd) {
  SCOPED_TRACE(seed_);
  const int64_t m = 6, n = 1000, ld = 1008;
  std::vector<float> x = RandVec(m * ld), wt = RandVec(n), u = RandVec(m * ld);
  const float* dx = Upload(x);
  const float* dw = Upload(wt);
  const float* du = Upload(u);
  float* out = Poisoned(m * n);
  cuda_->RmsNorm(dx, m, n, ld, dw, 1e-6f, out, n);
  std::vector<float> ref(m * n);
  reference::RmsNorm(x.data(), m, n, ld, wt.data(), 1e-6f, ref.data(), n);
  EXPECT_LT(RelError(Download(out, m * n), ref), kF32Bound);

  float* s = Poisoned(m * n);
  cuda_->SiluMul(dx, ld, du, ld, m, n, s, n);
  reference::SiluMul(x.data(), ld, u.data(), ld, m, n, ref.data(), n);
  EXPECT_LT(RelError(Download(s, m * n), ref), kF32Bound);

  float* y = Upload(u);
  cuda_->Add(y, ld, dx, ld, m, n);
  std::vector<float> ry = u;
  reference::Add(ry.data(), ld, x.data(), ld, m, n);
  EXPECT_EQ(Download(y, m * ld), ry);  // one f32 add per element: exact
}

TEST_F(CudaOpsTest, RopeHalfInterleavedYarn) {
  SCOPED_TRACE(seed_);
  const int64_t tokens = 5, heads = 3, head_dim = 64, ts = heads * head_dim + 8;
  for (bool interleaved : {false, true}) {
    SCOPED_TRACE(interleaved);
    RopeTable table;
    table.rotary_dim = interleaved ? 32 : 64;
    table.interleaved = interleaved;
    table.attention_factor = interleaved ? 1.2f : 1.0f;
    for (int i = 0; i < table.rotary_dim / 2; ++i)
      table.inv_freq.push_back(std::pow(10000.0f, -2.0f * i / table.rotary_dim) *
                               (interleaved ? 0.25f : 1.0f));
    std::vector<int32_t> pos(tokens);
    for (auto& p : pos) p = static_cast<int32_t>(rng_() % 30000);
    std::vector<float> x = RandVec(tokens * ts);
    float* dx = Upload(x);
    cuda_->Rope(dx, tokens, ts, heads, head_dim, Upload(pos), table);
    reference::Rope(x.data(), tokens, ts, heads, head_dim, pos.data(), table);
    EXPECT_LT(RelError(Download(dx, tokens * ts), x), 1e-5);  // sincos of angles up to 3e4
  }
}

TEST_F(CudaOpsTest, ScatterToCacheIsExactBf16) {
  SCOPED_TRACE(seed_);
  const int64_t tokens = 7, width = 100, lds = 104, cache = 4096;
  std::vector<float> src = RandVec(tokens * lds);
  std::vector<int64_t> offsets(tokens);
  for (int64_t t = 0; t < tokens; ++t)
    offsets[t] = (t * 3 % tokens) * 500 + 3;  // distinct, out of order
  std::vector<bf16> dst = RandBf16(cache);
  bf16* ddst = Upload(dst);
  cuda_->ScatterToCache(Upload(src), tokens, lds, width, ddst, Upload(offsets));
  reference::ScatterToCache(src.data(), tokens, lds, width, dst.data(), offsets.data());
  std::vector<bf16> out = Download(ddst, cache);
  for (int64_t i = 0; i < cache; ++i) ASSERT_EQ(out[i].bits, dst[i].bits) << i;
}

struct RouteCase {
  const char* name;
  RouterScoring scoring;
  int experts, top_k, groups, topk_groups;
  bool norm;
  float scaling;
};

TEST_F(CudaOpsTest, MoeRouteTable) {
  SCOPED_TRACE(seed_);
  const RouteCase cases[] = {
      {"qwen3-softmax-norm", RouterScoring::kSoftmax, 128, 8, 1, 1, true, 1.0f},
      {"mixtral-softmax", RouterScoring::kSoftmax, 8, 2, 1, 1, false, 1.0f},
      {"deepseek-v3", RouterScoring::kSigmoid, 256, 8, 8, 4, true, 2.5f},
      {"deepseek-bench", RouterScoring::kSigmoid, 64, 6, 8, 4, true, 1.0f},
      {"sigmoid-ungrouped", RouterScoring::kSigmoid, 40, 3, 1, 1, false, 1.0f},
  };
  const int64_t tokens = 37;
  for (const RouteCase& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<float> logits = RandVec(tokens * c.experts, 3.0f);
    std::vector<float> bias = RandVec(c.experts, 0.3f);
    RouterSpec spec;
    spec.scoring = c.scoring;
    spec.num_experts = c.experts;
    spec.top_k = c.top_k;
    spec.norm_topk_prob = c.norm;
    spec.num_groups = c.groups;
    spec.topk_groups = c.topk_groups;
    spec.routed_scaling_factor = c.scaling;
    RouterSpec dev_spec = spec;
    if (c.scoring == RouterScoring::kSigmoid) {
      spec.correction_bias = bias.data();
      dev_spec.correction_bias = Upload(bias);
    }
    int32_t* ids = Upload(std::vector<int32_t>(tokens * c.top_k, -1));
    float* w = Poisoned(tokens * c.top_k);
    cuda_->MoeRoute(Upload(logits), tokens, dev_spec, ids, w);
    std::vector<int32_t> rids(tokens * c.top_k);
    std::vector<float> rw(tokens * c.top_k);
    reference::MoeRoute(logits.data(), tokens, spec, rids.data(), rw.data());
    EXPECT_EQ(Download(ids, tokens * c.top_k), rids);
    EXPECT_LT(RelError(Download(w, tokens * c.top_k), rw), 1e-5);
  }
}

TEST_F(CudaOpsTest, WeightedCombine) {
  SCOPED_TRACE(seed_);
  const int64_t tokens = 9, hidden = 300, top_k = 4, rows = tokens * top_k;
  std::vector<float> r = RandVec(rows * hidden), w = RandVec(rows);
  std::vector<int32_t> idx(rows);
  std::iota(idx.begin(), idx.end(), 0);
  std::shuffle(idx.begin(), idx.end(), rng_);
  float* out = Poisoned(tokens * hidden);
  cuda_->WeightedCombine(Upload(r), hidden, tokens, top_k, Upload(idx), Upload(w), out);
  std::vector<float> ref(tokens * hidden);
  reference::WeightedCombine(r.data(), hidden, tokens, top_k, idx.data(), w.data(), ref.data());
  EXPECT_LT(RelError(Download(out, tokens * hidden), ref), kF32Bound);
}

// Experts with random weights on both sides; returns device and host views.
struct Experts {
  std::vector<std::vector<bf16>> host;
  std::vector<MlpWeights> dev_views, host_views;
};

Experts MakeExperts(GpuTest* t, int n, int64_t hidden, int64_t inter,
                    const std::function<bf16*(const std::vector<bf16>&)>& upload,
                    const std::function<std::vector<bf16>(size_t)>& rand) {
  Experts e;
  for (int i = 0; i < n; ++i) {
    MlpWeights d, h;
    WeightView* dv[] = {&d.gate, &d.up, &d.down};
    WeightView* hv[] = {&h.gate, &h.up, &h.down};
    int64_t shapes[3][2] = {{inter, hidden}, {inter, hidden}, {hidden, inter}};
    for (int j = 0; j < 3; ++j) {
      e.host.push_back(rand(shapes[j][0] * shapes[j][1]));
      *dv[j] = View(DType::kBF16, upload(e.host.back()), shapes[j][0], shapes[j][1]);
      *hv[j] = View(DType::kBF16, e.host.back().data(), shapes[j][0], shapes[j][1]);
    }
    e.dev_views.push_back(d);
    e.host_views.push_back(h);
  }
  (void)t;
  return e;
}

TEST_F(CudaOpsTest, GroupedExpertMlpKernelAndFallback) {
  SCOPED_TRACE(seed_);
  struct Dims {
    int64_t hidden, inter;
    int rows_scale;
  } dims[] = {{256, 128, 1}, {256, 128, 40}, {72, 36, 1}};  // last: inter % 8 != 0 -> fallback
  for (const Dims& d : dims) {
    SCOPED_TRACE(d.hidden * 1000 + d.inter * 10 + d.rows_scale);
    const int num_experts = 6;
    Experts ex = MakeExperts(
        this, num_experts, d.hidden, d.inter, [&](const std::vector<bf16>& v) { return Upload(v); },
        [&](size_t n) { return RandBf16(n, 0.1f); });
    std::vector<ExpertGroup> groups;
    int64_t row = 0;
    for (int e : {3, 0, 5, 1}) {  // unsorted, some experts unused
      int64_t rows = (1 + rng_() % 5) * d.rows_scale;
      groups.push_back({e, row, rows});
      row += rows;
    }
    std::vector<float> x = RandVec(row * d.hidden);
    float* out = Poisoned(row * d.hidden);
    cuda_->GroupedExpertMlp(Upload(x), d.hidden, groups, ex.dev_views, out);
    std::vector<float> ref(row * d.hidden);
    reference::GroupedExpertMlp(x.data(), d.hidden, groups, ex.host_views, ref.data());
    EXPECT_LT(RelError(Download(out, row * d.hidden), ref), kBf16TwoRoundings);
  }
}

TEST_F(CudaOpsTest, MoeForwardMatchesReferencePipeline) {
  SCOPED_TRACE(seed_);
  const int64_t hidden = 512, inter = 256, tokens = 45;
  const int num_experts = 16;
  Experts ex = MakeExperts(
      this, num_experts, hidden, inter, [&](const std::vector<bf16>& v) { return Upload(v); },
      [&](size_t n) { return RandBf16(n, 0.06f); });
  auto table = cuda_->UploadExperts(ex.dev_views);
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  RouterSpec spec;
  spec.scoring = RouterScoring::kSigmoid;
  spec.num_experts = num_experts;
  spec.top_k = 4;
  spec.norm_topk_prob = true;
  spec.num_groups = 4;
  spec.topk_groups = 2;
  spec.routed_scaling_factor = 2.0f;
  std::vector<float> x = RandVec(tokens * hidden), logits = RandVec(tokens * num_experts, 2.0f);
  float* out = Poisoned(tokens * hidden);
  cuda_->MoeForward(Upload(x), tokens, Upload(logits), spec, **table, out);
  // Reference pipeline: route, group rows by expert in token order, MLPs, combine.
  std::vector<int32_t> ids(tokens * spec.top_k), row_of(tokens * spec.top_k);
  std::vector<float> w(tokens * spec.top_k);
  reference::MoeRoute(logits.data(), tokens, spec, ids.data(), w.data());
  std::vector<ExpertGroup> groups;
  std::vector<float> xp;
  int64_t row = 0;
  for (int e = 0; e < num_experts; ++e) {
    int64_t begin = row;
    for (int64_t a = 0; a < tokens * spec.top_k; ++a) {
      if (ids[a] != e) continue;
      row_of[a] = static_cast<int32_t>(row++);
      xp.insert(xp.end(), x.begin() + (a / spec.top_k) * hidden,
                x.begin() + (a / spec.top_k + 1) * hidden);
    }
    if (row > begin) groups.push_back({e, begin, row - begin});
  }
  std::vector<float> rows(row * hidden), ref(tokens * hidden);
  reference::GroupedExpertMlp(xp.data(), hidden, groups, ex.host_views, rows.data());
  reference::WeightedCombine(rows.data(), hidden, tokens, spec.top_k, row_of.data(), w.data(),
                             ref.data());
  EXPECT_LT(RelError(Download(out, tokens * hidden), ref), kBf16TwoRoundings);
}

// Rows of a product are bit-identical whatever the batch around them.
TEST_F(CudaOpsTest, DeterministicGemmAndGroupedMlpAreBatchInvariant) {
  SetUpBackend(true);
  SCOPED_TRACE(seed_);
  const int64_t k = 1024, n = 768, max_m = 300;
  std::vector<float> x = RandVec(max_m * k);
  const float* dx = Upload(x);
  const bf16* dw = Upload(RandBf16(n * k, 0.05f));
  std::vector<float> first_rows;
  for (int64_t m : {1, 3, 64, 300}) {
    float* y = Poisoned(m * n);
    MatmulOutput o{View(DType::kBF16, dw, n, k), y, n};
    cuda_->Matmul(dx, m, k, std::span<const MatmulOutput>(&o, 1));
    std::vector<float> out = Download(y, n);  // row 0
    if (first_rows.empty()) first_rows = out;
    EXPECT_EQ(out, first_rows) << "m=" << m;
  }
  // Grouped MLP: the same token alone and among 200 rows of its expert.
  const int64_t hidden = 256, inter = 128;
  Experts ex = MakeExperts(
      this, 2, hidden, inter, [&](const std::vector<bf16>& v) { return Upload(v); },
      [&](size_t n2) { return RandBf16(n2, 0.1f); });
  std::vector<float> xs = RandVec(200 * hidden);
  const float* dxs = Upload(xs);
  std::vector<float> alone;
  for (int64_t rows : {1, 200}) {
    float* out = Poisoned(rows * hidden);
    ExpertGroup g{1, 0, rows};
    cuda_->GroupedExpertMlp(dxs, hidden, std::span<const ExpertGroup>(&g, 1), ex.dev_views, out);
    std::vector<float> r0 = Download(out, hidden);
    if (alone.empty()) alone = r0;
    EXPECT_EQ(r0, alone) << rows;
  }
}

#if STRATA_WITH_CUDA  // the graph cache exists in CUDA builds only
TEST_F(CudaOpsTest, GraphCaptureReplaysWithNewInputs) {
  SCOPED_TRACE(seed_);
  const int64_t m = 8, k = 256, n = 128;
  std::vector<float> x = RandVec(m * k), norm_w = RandVec(k);
  std::vector<bf16> w = RandBf16(n * k, 0.1f);
  float* dx = Upload(x);
  const float* dnw = Upload(norm_w);
  const bf16* dw = Upload(w);
  float* h = Upload(std::vector<float>(m * k, 0.5f));
  float* y = Upload(std::vector<float>(m * n, 0.5f));
  auto step = [&]() {
    cuda_->RmsNorm(dx, m, k, k, dnw, 1e-5f, h, k);
    MatmulOutput o{View(DType::kBF16, dw, n, k), y, n};
    cuda_->Matmul(h, m, k, std::span<const MatmulOutput>(&o, 1));
    cuda_->Add(y, n, h, k, m, n);
    return OkStatus();
  };
  cuda::GraphCache graphs(*cuda_);
  for (int iter = 0; iter < 3; ++iter) {
    x = RandVec(m * k);
    cuda_->CopyToDevice(dx, x.data(), x.size() * sizeof(float));
    ASSERT_TRUE(step().ok());
    std::vector<float> direct = Download(y, m * n);
    cuda_->CopyToDevice(y, std::vector<float>(m * n, -1.0f).data(), m * n * sizeof(float));
    Status s = graphs.Run(m, step);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(Download(y, m * n), direct) << "iteration " << iter;
  }
  EXPECT_EQ(graphs.size(), 1u);
}

#endif

TEST_F(CudaOpsTest, ErrorsBecomeStatusNotAborts) {
  auto huge = cuda_->Allocate(size_t{1} << 50);
  EXPECT_EQ(huge.status().code(), StatusCode::kResourceExhausted);
  float* y = Poisoned(4);
  std::vector<f16> w(16);
  MatmulOutput o{View(DType::kF16, Upload(w), 4, 4), y, 4};
  cuda_->Matmul(Poisoned(4), 1, 4, std::span<const MatmulOutput>(&o, 1));
  Status s = cuda_->Synchronize();
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(cuda_->Synchronize().ok());  // reported once
}

}  // namespace
}  // namespace strata::ops::testing
