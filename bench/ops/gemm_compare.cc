// gemm_compare: Strata's CPU matmul (bf16 weights packed at load, f32 activations) against
// OpenBLAS and oneDNN's bf16 matmul (weights pre-packed in its own layout) on the
// shapes the bench presets run, one thread each (issue 4: "use oneDNN or OpenBLAS where they
// are faster than your own"). Debian's OpenBLAS 0.3.21 is built without bfloat16 (no
// cblas_sbgemm), so it runs cblas_sgemm on an f32 copy of the weights (twice the bytes). Built
// when both libraries are installed (libopenblas-dev, libdnnl-dev); prints one JSON object.
//
//   OMP_NUM_THREADS=1 gemm_compare [--reps N]
#include <cblas.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <iostream>
#include <oneapi/dnnl/dnnl.hpp>
#include <random>
#include <vector>

#include "common/half.h"
#include "common/version.h"
#include "ops/backend.h"

namespace strata::bench {
namespace {

struct Shape {
  const char* what;
  int64_t m, k, n;
};

template <typename Fn>
double BestMs(int reps, Fn&& fn) {
  fn();  // warm-up
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(
        best,
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

int Main(int argc, char** argv) {
  int reps = 5;
  CLI::App app{"Strata's CPU matmul vs OpenBLAS sbgemm and oneDNN bf16 matmul"};
  app.add_option("--reps", reps, "Timed repetitions (best is kept)");
  CLI11_PARSE(app, argc, argv);
  openblas_set_num_threads(1);
  auto be = ops::CreateCpuBackend({1, ops::CpuKernels::kAuto});
  if (!be.ok()) {
    std::cerr << be.status().ToString() << "\n";
    return 1;
  }
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  const std::vector<Shape> shapes = {
      {"prefill 512 tokens x dense MLP up (1024 -> 2816)", 512, 1024, 2816},
      {"prefill 512 tokens x attention output (2048 -> 1024)", 512, 2048, 1024},
      {"prefill expert: 48 rows x expert up (1024 -> 512)", 48, 1024, 512},
      {"decode 1 token x dense MLP up (1024 -> 2816)", 1, 1024, 2816},
      {"decode 1 token x expert down (512 -> 1024)", 1, 512, 1024},
      {"decode 8 tokens x dense MLP up (1024 -> 2816)", 8, 1024, 2816},
  };
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  nlohmann::json rows = nlohmann::json::array();
  for (const Shape& s : shapes) {
    std::vector<float> x(s.m * s.k), y(s.m * s.n);
    for (float& v : x) v = nd(rng);
    std::vector<bf16> w(s.n * s.k);
    for (bf16& v : w) v = FloatToBf16(nd(rng) * 0.05f);
    // Strata: the weight packed as the model packs it at load.
    ops::WeightView wv{ops::DType::kBF16, w.data(), s.n, s.k, 0};
    std::vector<uint8_t> packed((*be)->PackedWeightBytes(wv) + 64);
    ops::WeightView pw =
        (*be)->PackedWeightBytes(wv) > 0 ? (*be)->PackWeight(wv, packed.data()) : wv;
    ops::MatmulOutput out{pw, y.data(), s.n};
    const double ours = BestMs(reps, [&] {
      (*be)->Matmul(x.data(), s.m, s.k, std::span<const ops::MatmulOutput>(&out, 1));
    });
    // OpenBLAS: f32 sgemm against an f32 copy of the weights.
    std::vector<float> wf(w.size());
    for (size_t i = 0; i < w.size(); ++i) wf[i] = Bf16ToFloat(w[i]);
    const double openblas = BestMs(reps, [&] {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s.m, s.n, s.k, 1.0f, x.data(), s.k,
                  wf.data(), s.k, 0.0f, y.data(), s.n);
    });
    std::vector<bf16> xb(s.m * s.k);
    // oneDNN: bf16 x bf16 -> f32, weights reordered once into the layout it prefers;
    // activations converted to bf16 inside the timed region, as Strata's are.
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    dnnl::memory::desc src_md({s.m, s.k}, dt::bf16, tag::ab);
    dnnl::memory::desc wei_any({s.k, s.n}, dt::bf16, tag::any);
    dnnl::memory::desc dst_md({s.m, s.n}, dt::f32, tag::ab);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, wei_any, dst_md), eng);
    dnnl::memory wei_user({{s.k, s.n}, dt::bf16, tag::ba}, eng, w.data());
    dnnl::memory wei(pd.weights_desc(), eng);
    dnnl::reorder(wei_user, wei).execute(strm, wei_user, wei);
    dnnl::memory src(src_md, eng, xb.data()), dst(dst_md, eng, y.data());
    dnnl::matmul mm(pd);
    const double onednn = BestMs(reps, [&] {
      for (size_t i = 0; i < xb.size(); ++i) xb[i] = FloatToBf16(x[i]);
      mm.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}});
      strm.wait();
    });
    const double gflop = 2.0 * s.m * s.k * s.n / 1e9;
    nlohmann::json r{{"shape", s.what},
                     {"m", s.m},
                     {"k", s.k},
                     {"n", s.n},
                     {"strata_gflops", gflop / (ours * 1e-3)},
                     {"openblas_sgemm_f32_gflops", gflop / (openblas * 1e-3)},
                     {"onednn_gflops", gflop / (onednn * 1e-3)}};
    std::cerr << r.dump() << "\n";
    rows.push_back(r);
  }
  nlohmann::json out{{"benchmark", "gemm_compare"},
                     {"git_sha", kGitSha},
                     {"threads", 1},
                     {"openblas", OPENBLAS_VERSION},
                     {"onednn", std::to_string(dnnl_version()->major) + "." +
                                    std::to_string(dnnl_version()->minor) + "." +
                                    std::to_string(dnnl_version()->patch)},
                     {"rows", rows}};
  std::cout << out.dump(2) << "\n";
  return 0;
}

}  // namespace
}  // namespace strata::bench

int main(int argc, char** argv) { return strata::bench::Main(argc, argv); }
