// GPU expert parallelism at EP=1 over NCCL, and microbatch pipelining on the GPU (issue 10), on
// one DeepSeek-V3 decode layer with the `layer` preset's dimensions (hidden 7168, 128 MLA heads,
// top-8 routing, moe_intermediate 2048, 1 shared expert), random device weights:
//
//   ep_overlap_bench OUT.json [--git-sha SHA] [--context N]
//
// 1. The NCCL EP=1 paths: the device-resident exchange (NcclDeviceExchange: device slots on the
//    caller's stream) against the HBM copy ceiling (a self-exchange reads and writes every byte),
//    and the host-staged collective (NcclCollective, what EpEndpoint uses with CPU ranks)
//    against the host <-> device copies it cannot avoid.
// 2. The layer as stages on the GPU -- attention, gate (router, routing, permutation, bf16 row
//    gather), dispatch (NCCL), experts (grouped GEMM of the 8 local experts of an EP=32 share),
//    combine (NCCL, bf16), weighted sum + shared expert -- for a batch split into two
//    microbatches, each on its own stream, backend and NCCL communicator (dispatch waits on the
//    host for the peers' byte counts). Timed: the batch whole (no microbatching), the two
//    microbatches one after the other, pipelined in the two-batch-overlap order (compute stages
//    take turns; one microbatch's exchange runs during the other's compute; one host thread), and
//    as two free-running streams (a host thread each); each with and without the exchanges. overlap
//    = 1 - (pipelined - pipelined without exchanges) / (serial - serial without exchanges): the
//    share of the communication time the other microbatch hides.
// Both run twice: with the rank's own slot sent through NCCL (a stand-in for the peer traffic
// of EP > 1: NCCL's send/receive kernels on the GPU) and copied directly (what EP=1 does).
#include <cuda_runtime.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <numeric>
#include <thread>

#include "bench/gpu/bench_util.h"
#include "bench/gpu/layer_bench.h"
#include "expert_parallel/collective.h"
#include "expert_parallel/nccl_collective.h"

namespace strata::bench::gpu {
namespace {

using json = nlohmann::json;
using expert_parallel::NcclCollectiveOptions;
using expert_parallel::NcclDeviceExchange;

constexpr int64_t kHidden = 7168;
constexpr int kTopK = 8, kLocalExperts = 8;

void Fail(const Status& s, const char* what) {
  std::fprintf(stderr, "ep_overlap_bench: %s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}
#define OK_OR_FAIL(expr)             \
  do {                               \
    Status st_ = (expr);             \
    if (!st_.ok()) Fail(st_, #expr); \
  } while (0)

double NowMs() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// ---------------------------------------------------------------- 1. the exchanges alone

void BenchExchanges(double hbm_gbps, bool self_copy, json& out) {
  cudaStream_t s;
  BENCH_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  const size_t max_bytes = size_t{64} << 20;
  NcclCollectiveOptions no;
  no.max_slot_bytes = max_bytes;
  no.self_copy = self_copy;
  auto ex = expert_parallel::CreateNcclDeviceExchange(no, s);
  if (!ex.ok()) Fail(ex.status(), "CreateNcclDeviceExchange");
  auto coll = expert_parallel::CreateNcclCollective(no);
  if (!coll.ok()) Fail(coll.status(), "CreateNcclCollective");
  bf16* send = RandomBf16(max_bytes / 2, 301, 1.0f, s);
  uint8_t* recv = DeviceAlloc<uint8_t>(max_bytes);
  std::vector<uint8_t> host_send(max_bytes, 7), host_recv(max_bytes);
  uint8_t* staging = DeviceAlloc<uint8_t>(max_bytes);
  const char* mode = self_copy ? "own slot copied" : "own slot through NCCL";
  // Dispatch bytes of the layer at batches 16 / 64 / 128 / 512 (batch * 8 rows * 7168 * bf16).
  for (size_t rows : {128, 512, 1024, 4096}) {
    const size_t bytes = rows * kHidden * 2;
    const double dev_ms = MedianMs(
        s, [&](int) { OK_OR_FAIL((*ex)->Exchange(send, recv, max_bytes, &bytes, &bytes)); });
    // Host-staged: the bytes go host -> device, through NCCL, device -> host (or, with the own
    // slot copied, host to host).
    std::vector<double> host_ms, floor_ms;
    for (int i = 0; i < 13; ++i) {
      size_t got = 0;
      int64_t wait_ns = 0;
      double t0 = NowMs();
      OK_OR_FAIL((*coll)->AllToAll(host_send.data(), host_recv.data(), max_bytes, &bytes, &got,
                                   nullptr, &wait_ns));
      double t1 = NowMs();
      BENCH_CHECK(cudaMemcpyAsync(staging, host_send.data(), bytes, cudaMemcpyHostToDevice, s));
      BENCH_CHECK(cudaMemcpyAsync(host_recv.data(), staging, bytes, cudaMemcpyDeviceToHost, s));
      BENCH_CHECK(cudaStreamSynchronize(s));
      double t2 = NowMs();
      if (i >= 3) {
        host_ms.push_back(t1 - t0);
        floor_ms.push_back(t2 - t1);
      }
    }
    const double dev_gbps = 2.0 * bytes / (dev_ms * 1e-3) / 1e9;
    const double host = Median(host_ms), floor = Median(floor_ms);
    out.push_back({{"mode", mode},
                   {"bytes", bytes},
                   {"rows", rows},
                   {"device_exchange_us", dev_ms * 1e3},
                   {"device_exchange_gbps_read_plus_write", dev_gbps},
                   {"hbm_copy_gbps", hbm_gbps},
                   {"device_ratio", dev_gbps / hbm_gbps},
                   {"host_staged_us", host * 1e3},
                   {"host_h2d_plus_d2h_us", floor * 1e3},
                   {"host_staged_vs_h2d_plus_d2h", floor / host}});
    std::printf(
        "NCCL EP=1 [%s] %6.2f MB: device exchange %7.1f us = %5.0f GB/s (r+w) = %.2f of HBM; "
        "host-staged %7.1f us vs H2D+D2H copies %7.1f us (x%.2f)\n",
        mode, bytes / 1e6, dev_ms * 1e3, dev_gbps, dev_gbps / hbm_gbps, host * 1e3, floor * 1e3,
        floor / host);
  }
  cudaFree(send);
  cudaFree(recv);
  cudaFree(staging);
  ex->reset();
  cudaStreamDestroy(s);
}

// ---------------------------------------------------------------- 2. the layer pipeline

// One microbatch: its backend (stream), exchange and buffers.
struct Microbatch {
  std::unique_ptr<ops::CudaBackend> be;
  cudaStream_t s = nullptr;
  std::unique_ptr<NcclDeviceExchange> ex;
  DeepSeekBatch a;
  int64_t rows = 0;  // b * top_k
  size_t slot_bytes = 0;
  int tile_rows = 0;
  ops::cuda::GroupedGemmGroups gg;
  int32_t *ids = nullptr, *row_of = nullptr, *token_of = nullptr, *offsets = nullptr,
          *identity = nullptr;
  float *route_w = nullptr, *rows_f32 = nullptr;
  bf16 *xp = nullptr, *xp_recv = nullptr, *h = nullptr, *out_bf16 = nullptr, *back = nullptr;
  uint64_t* d_bytes = nullptr;
  cudaEvent_t ev[4];
  double dispatch_ms = 0, combine_ms = 0;  // event-timed, last run
};

std::unique_ptr<Microbatch> MakeMicrobatch(int b, int context, int64_t inter, uint64_t seed,
                                           bool self_copy) {
  auto m = std::make_unique<Microbatch>();
  ops::CudaBackendOptions bo;
  auto be = ops::CreateCudaBackend(bo);
  if (!be.ok()) Fail(be.status(), "CreateCudaBackend");
  m->be = std::move(*be);
  m->s = static_cast<cudaStream_t>(m->be->stream());
  m->a = MakeDeepSeekBatch(b, context, inter, seed, m->s);
  m->rows = static_cast<int64_t>(b) * kTopK;
  m->slot_bytes = m->rows * kHidden * sizeof(bf16);
  NcclCollectiveOptions no;
  no.max_slot_bytes = m->slot_bytes;
  no.self_copy = self_copy;
  auto ex = expert_parallel::CreateNcclDeviceExchange(no, m->s);
  if (!ex.ok()) Fail(ex.status(), "CreateNcclDeviceExchange");
  m->ex = std::move(*ex);
  m->ids = DeviceAlloc<int32_t>(m->rows);
  m->route_w = DeviceAlloc<float>(m->rows);
  m->row_of = DeviceAlloc<int32_t>(m->rows);
  m->token_of = DeviceAlloc<int32_t>(m->rows);
  m->offsets = DeviceAlloc<int32_t>(kLocalExperts + 1);
  std::vector<int32_t> iota(m->rows);
  std::iota(iota.begin(), iota.end(), 0);
  m->identity = Upload(iota, m->s);
  m->xp = DeviceAlloc<bf16>(m->rows * kHidden);
  m->xp_recv = DeviceAlloc<bf16>(m->rows * kHidden);
  m->h = DeviceAlloc<bf16>(m->rows * inter);
  m->rows_f32 = DeviceAlloc<float>(m->rows * kHidden);
  m->out_bf16 = DeviceAlloc<bf16>(m->rows * kHidden);
  m->back = DeviceAlloc<bf16>(m->rows * kHidden);
  m->d_bytes = Upload(std::vector<uint64_t>{m->slot_bytes}, m->s);  // EP=1: every row to rank 0
  m->tile_rows = ops::cuda::GroupedGemmTileRows((m->rows + kLocalExperts - 1) / kLocalExperts);
  m->gg.max_tiles = static_cast<int>((m->rows + m->tile_rows - 1) / m->tile_rows + kLocalExperts);
  m->gg.row_begin = DeviceAlloc<int32_t>(kLocalExperts);
  m->gg.num_rows = DeviceAlloc<int32_t>(kLocalExperts);
  m->gg.expert_of_group = DeviceAlloc<int32_t>(kLocalExperts);
  m->gg.tiles = DeviceAlloc<int2>(m->gg.max_tiles);
  m->gg.num_tiles = DeviceAlloc<int32_t>(1);
  for (cudaEvent_t& e : m->ev) BENCH_CHECK(cudaEventCreate(&e));
  return m;
}

void FreeMicrobatch(Microbatch& m) {
  for (void* p :
       {static_cast<void*>(m.ids), static_cast<void*>(m.route_w), static_cast<void*>(m.row_of),
        static_cast<void*>(m.token_of), static_cast<void*>(m.offsets),
        static_cast<void*>(m.identity), static_cast<void*>(m.xp), static_cast<void*>(m.xp_recv),
        static_cast<void*>(m.h), static_cast<void*>(m.rows_f32), static_cast<void*>(m.out_bf16),
        static_cast<void*>(m.back), static_cast<void*>(m.d_bytes),
        const_cast<void*>(static_cast<const void*>(m.gg.row_begin)),
        const_cast<void*>(static_cast<const void*>(m.gg.num_rows)),
        const_cast<void*>(static_cast<const void*>(m.gg.expert_of_group)),
        const_cast<void*>(static_cast<const void*>(m.gg.tiles)),
        const_cast<void*>(static_cast<const void*>(m.gg.num_tiles))}) {
    cudaFree(p);
  }
  for (cudaEvent_t e : m.ev) cudaEventDestroy(e);
  FreeBatch(m.a);
  m.ex.reset();
  m.be.reset();
}

// The layer's stages for one microbatch, each enqueued on the microbatch's stream. Dispatch
// waits on the host for the byte counts (NCCL receives need them), so the stream is drained
// up to there; the pipelined schedule below hands the GPU to the other microbatch meanwhile.
struct Stages {
  Microbatch& m;
  const DeepSeekLayerWeights& w;
  const ops::cuda::ExpertWeightTable& t;
  bool exchange;
  size_t sent = 0, got = 0;
  const bf16* expert_in = nullptr;

  // Attention block, then the gate: norm, router of the 8 local experts, routing, permutation,
  // bf16 rows.
  void AttentionAndGate() {
    ops::CudaBackend& be = *m.be;
    DeepSeekBatch& a = m.a;
    RunAttentionBlock(be, w, a);
    RunMoeNorm(be, w, a);
    ops::WeightView router;
    router.dtype = ops::DType::kF32;
    router.data = w.router_ep;
    router.rows = kLocalExperts;
    router.cols = kHidden;
    ops::MatmulOutput r{router, a.logits, kLocalExperts};
    be.Matmul(a.xn, a.b, kHidden, std::span<const ops::MatmulOutput>(&r, 1));
    ops::RouterSpec spec;
    spec.scoring = ops::RouterScoring::kSigmoid;
    spec.num_experts = kLocalExperts;
    spec.top_k = kTopK;
    spec.norm_topk_prob = true;
    spec.routed_scaling_factor = 2.5f;
    be.MoeRoute(a.logits, a.b, spec, m.ids, m.route_w);
    BENCH_CHECK(ops::cuda::LaunchMoePermute(m.ids, a.b, kTopK, kLocalExperts, m.offsets, m.row_of,
                                            m.token_of, m.s));
    BENCH_CHECK(ops::cuda::LaunchGatherRowsBf16(a.xn, kHidden, m.token_of, m.rows, m.xp, m.s));
  }

  void Dispatch() {
    expert_in = m.xp;
    if (!exchange) return;
    sent = m.slot_bytes;
    BENCH_CHECK(cudaEventRecord(m.ev[0], m.s));
    OK_OR_FAIL(m.ex->ExchangeSizes(m.d_bytes, &got));
    if (got != sent) Fail(DataLossError("dispatch byte count"), "ExchangeSizes");
    OK_OR_FAIL(m.ex->Exchange(m.xp, m.xp_recv, m.slot_bytes, &sent, &got));
    BENCH_CHECK(cudaEventRecord(m.ev[1], m.s));
    expert_in = m.xp_recv;
  }

  // The 8 local experts (at EP=1 the received rows keep the permutation's expert offsets), and
  // their outputs in bf16 for the way back.
  void Experts() {
    BENCH_CHECK(ops::cuda::LaunchBuildExpertTiles(
        m.offsets, kLocalExperts, m.tile_rows, const_cast<int32_t*>(m.gg.row_begin),
        const_cast<int32_t*>(m.gg.num_rows), const_cast<int32_t*>(m.gg.expert_of_group),
        const_cast<int2*>(m.gg.tiles), const_cast<int32_t*>(m.gg.num_tiles), m.s));
    BENCH_CHECK(ops::cuda::LaunchGroupedGateUp(expert_in, kHidden, w.inter, m.gg, t, m.tile_rows,
                                               m.h, m.s));
    BENCH_CHECK(
        ops::cuda::LaunchGroupedDown(m.h, w.inter, kHidden, m.gg, t, m.tile_rows, m.rows_f32, m.s));
    BENCH_CHECK(ops::cuda::LaunchConvertToBf16(m.rows_f32, m.rows, kHidden, kHidden, m.out_bf16,
                                               kHidden, m.s));
  }

  void Combine() {
    if (!exchange) return;
    BENCH_CHECK(cudaEventRecord(m.ev[2], m.s));
    OK_OR_FAIL(m.ex->Exchange(m.out_bf16, m.back, m.slot_bytes, &got, &sent));
    BENCH_CHECK(cudaEventRecord(m.ev[3], m.s));
  }

  // The weighted sum in top-k order, the shared expert and the residuals.
  void Finish() {
    ops::CudaBackend& be = *m.be;
    DeepSeekBatch& a = m.a;
    BENCH_CHECK(ops::cuda::LaunchEmbedding(exchange ? m.back : m.out_bf16, ops::DType::kBF16,
                                           kHidden, kHidden, m.identity, m.rows, m.rows_f32,
                                           kHidden, m.s));
    BENCH_CHECK(ops::cuda::LaunchWeightedCombine(m.rows_f32, kHidden, a.b, kTopK, m.row_of,
                                                 m.route_w, a.moe, m.s));
    RunSharedExpert(be, w, a);
    be.Add(a.x, kHidden, a.moe, kHidden, a.b, kHidden);
    be.Add(a.x, kHidden, a.so, kHidden, a.b, kHidden);
  }

  // Waits for the stream; reads the exchange times.
  void Done() {
    OK_OR_FAIL(m.be->Synchronize());
    if (!exchange) return;
    float d = 0, c = 0;
    BENCH_CHECK(cudaEventElapsedTime(&d, m.ev[0], m.ev[1]));
    BENCH_CHECK(cudaEventElapsedTime(&c, m.ev[2], m.ev[3]));
    m.dispatch_ms = d;
    m.combine_ms = c;
  }
};

// The whole layer for one microbatch; returns when its stream is done.
void RunLayer(Microbatch& m, const DeepSeekLayerWeights& w, const ops::cuda::ExpertWeightTable& t,
              bool exchange) {
  Stages st{m, w, t, exchange};
  st.AttentionAndGate();
  st.Dispatch();
  st.Experts();
  st.Combine();
  st.Finish();
  st.Done();
}

// Two microbatches in the two-batch-overlap order, from one host thread: compute stages take
// turns (A0 A1 B0 B1 C0 C1, each waiting for the one before on the other stream) and each
// microbatch's dispatch / combine runs while the other computes.
void RunStaggered(Microbatch& m0, Microbatch& m1, const DeepSeekLayerWeights& w,
                  const ops::cuda::ExpertWeightTable& t, bool exchange, cudaEvent_t* turn) {
  Stages a{m0, w, t, exchange}, b{m1, w, t, exchange};
  auto hand_over = [&](Microbatch& from, Microbatch& to, int i) {
    BENCH_CHECK(cudaEventRecord(turn[i], from.s));
    BENCH_CHECK(cudaStreamWaitEvent(to.s, turn[i], 0));
  };
  a.AttentionAndGate();
  hand_over(m0, m1, 0);
  b.AttentionAndGate();
  a.Dispatch();  // the host waits for A0 while the GPU runs A1
  hand_over(m1, m0, 1);
  a.Experts();
  b.Dispatch();  // ... for A1 while it runs B0
  a.Combine();
  hand_over(m0, m1, 2);
  b.Experts();
  hand_over(m1, m0, 3);
  a.Finish();
  b.Combine();
  hand_over(m0, m1, 4);
  b.Finish();
  a.Done();
  b.Done();
}

// A host thread that runs one job at a time when asked (spinning: the GPU machine has cores).
class Worker {
 public:
  Worker() : thread_([this] { Loop(); }) {}
  ~Worker() {
    quit_.store(true);
    thread_.join();
  }
  void Start(std::function<void()> job) {
    job_ = std::move(job);
    pending_.store(true, std::memory_order_release);
  }
  void Wait() {
    while (pending_.load(std::memory_order_acquire)) {
    }
  }

 private:
  void Loop() {
    while (!quit_.load()) {
      if (pending_.load(std::memory_order_acquire)) {
        job_();
        pending_.store(false, std::memory_order_release);
      }
    }
  }
  std::function<void()> job_;
  std::atomic<bool> pending_{false}, quit_{false};
  std::thread thread_;
};

void BenchPipeline(const DeepSeekExperts& experts, int context, bool self_copy, json& out) {
  cudaStream_t s0;
  BENCH_CHECK(cudaStreamCreateWithFlags(&s0, cudaStreamNonBlocking));
  const DeepSeekLayerWeights w = MakeDeepSeekLayerWeights(s0, experts.inter);
  BENCH_CHECK(cudaStreamSynchronize(s0));
  const ops::cuda::ExpertWeightTable& t = experts.table;  // the first 8 experts are used
  Worker worker;
  cudaEvent_t turn[5];
  for (cudaEvent_t& e : turn) BENCH_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  constexpr int kWarmup = 3, kReps = 21;
  const char* mode = self_copy ? "own slot copied" : "own slot through NCCL";
  for (int batch : {64, 128, 256, 512, 1024}) {
    auto whole = MakeMicrobatch(batch, context, experts.inter, 400, self_copy);
    auto m0 = MakeMicrobatch(batch / 2, context, experts.inter, 500, self_copy);
    auto m1 = MakeMicrobatch(batch / 2, context, experts.inter, 600, self_copy);
    auto time = [&](const std::function<void()>& fn) {
      std::vector<double> ms;
      for (int i = 0; i < kWarmup + kReps; ++i) {
        double t0 = NowMs();
        fn();
        if (i >= kWarmup) ms.push_back(NowMs() - t0);
      }
      return Median(ms);
    };
    auto serial = [&](bool x) {
      RunLayer(*m0, w, t, x);
      RunLayer(*m1, w, t, x);
    };
    auto concurrent = [&](bool x) {
      worker.Start([&] { RunLayer(*m1, w, t, x); });
      RunLayer(*m0, w, t, x);
      worker.Wait();
    };
    auto pipelined = [&](bool x) { RunStaggered(*m0, *m1, w, t, x, turn); };
    const double t_whole = time([&] { RunLayer(*whole, w, t, true); });
    const double whole_comm = whole->dispatch_ms + whole->combine_ms;
    const double t_serial = time([&] { serial(true); });
    const double mb_comm = m0->dispatch_ms + m0->combine_ms + m1->dispatch_ms + m1->combine_ms;
    const double t_serial_nx = time([&] { serial(false); });
    const double t_pipe = time([&] { pipelined(true); });
    const double t_pipe_nx = time([&] { pipelined(false); });
    const double t_conc = time([&] { concurrent(true); });
    const double t_conc_nx = time([&] { concurrent(false); });
    const double comm = t_serial - t_serial_nx, exposed = t_pipe - t_pipe_nx;
    const double overlap = comm > 0 ? 1.0 - exposed / comm : 0.0;
    const double conc_overlap = comm > 0 ? 1.0 - (t_conc - t_conc_nx) / comm : 0.0;
    out.push_back({{"mode", mode},
                   {"batch", batch},
                   {"microbatch", batch / 2},
                   {"context", context},
                   {"whole_batch_us", t_whole * 1e3},
                   {"whole_batch_exchange_events_us", whole_comm * 1e3},
                   {"serial_us", t_serial * 1e3},
                   {"serial_without_exchange_us", t_serial_nx * 1e3},
                   {"pipelined_us", t_pipe * 1e3},
                   {"pipelined_without_exchange_us", t_pipe_nx * 1e3},
                   {"communication_us", comm * 1e3},
                   {"exchange_events_us", mb_comm * 1e3},
                   {"exposed_communication_us", exposed * 1e3},
                   {"overlap", overlap},
                   {"concurrent_us", t_conc * 1e3},
                   {"concurrent_without_exchange_us", t_conc_nx * 1e3},
                   {"concurrent_overlap", conc_overlap},
                   {"pipelined_speedup_vs_whole", t_whole / t_pipe}});
    std::printf(
        "[%s] layer batch %4d (2 x %3d), ctx %d: whole %.0f us; serial %.0f us (%.0f without "
        "exchanges); pipelined %.0f us (%.0f without); communication %.0f us, exposed %.0f us "
        "-> overlap %.2f (free-running streams %.0f us, %.2f); pipelined vs whole x%.2f\n",
        mode, batch, batch / 2, context, t_whole * 1e3, t_serial * 1e3, t_serial_nx * 1e3,
        t_pipe * 1e3, t_pipe_nx * 1e3, comm * 1e3, exposed * 1e3, overlap, t_conc * 1e3,
        conc_overlap, t_whole / t_pipe);
    for (auto* m : {whole.get(), m0.get(), m1.get()}) FreeMicrobatch(*m);
  }
  cudaStreamDestroy(s0);
}

}  // namespace
}  // namespace strata::bench::gpu

int main(int argc, char** argv) {
  using namespace strata::bench::gpu;
  if (argc < 2) {
    std::fprintf(stderr, "usage: ep_overlap_bench OUT.json [--git-sha SHA] [--context N]\n");
    return 2;
  }
  std::string path = argv[1], sha = "unknown";
  int context = 4096;
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--git-sha") == 0 && i + 1 < argc) {
      sha = argv[++i];
    } else if (std::strcmp(argv[i], "--context") == 0 && i + 1 < argc) {
      context = std::atoi(argv[++i]);
      if (context < 1) {
        std::fprintf(stderr, "ep_overlap_bench: --context must be >= 1\n");
        return 2;
      }
    } else {
      std::fprintf(stderr, "ep_overlap_bench: unknown argument '%s'\n", argv[i]);
      return 2;
    }
  }
  if (strata::expert_parallel::CudaDeviceCount() == 0) {
    std::fprintf(stderr, "ep_overlap_bench: no CUDA device\n");
    return 2;
  }
  cudaStream_t s;
  BENCH_CHECK(cudaStreamCreate(&s));
  cudaDeviceProp prop{};
  BENCH_CHECK(cudaGetDeviceProperties(&prop, 0));
  json j;
  j["benchmark"] = "ep_overlap_bench";
  j["gpu"] = prop.name;
  j["git_sha"] = sha;
  j["model"] =
      "DeepSeek-V3 layer, `layer` preset dims: hidden 7168, 128 MLA heads, top-8 of 8 local "
      "experts (EP=32 share), moe_intermediate 2048, 1 shared expert; random weights";
  j["ep"] = 1;
  j["dispatch_dtype"] = "bf16";
  const double hbm = MeasureHbmCopyGbps(s);
  j["hbm_copy_gbps"] = hbm;
  std::printf("%s: HBM copy %.0f GB/s (read + write)\n", prop.name, hbm);
  j["nccl_ep1_exchange"] = json::array();
  for (bool self_copy : {false, true}) BenchExchanges(hbm, self_copy, j["nccl_ep1_exchange"]);
  DeepSeekExperts experts = MakeDeepSeekExperts(s, 8);
  BENCH_CHECK(cudaStreamSynchronize(s));
  j["layer_microbatch_pipeline"] = json::array();
  for (bool self_copy : {false, true}) {
    BenchPipeline(experts, context, self_copy, j["layer_microbatch_pipeline"]);
  }
  std::ofstream f(path);
  f << j.dump(2) << "\n";
  std::printf("wrote %s\n", path.c_str());
  return f.good() ? 0 : 1;
}
