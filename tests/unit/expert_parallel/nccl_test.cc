// The NCCL collective at EP=1 on a GPU (label gpu; skips without one): dispatch/combine through
// grouped ncclSend/ncclRecv give exactly what the host path (no transport) gives; the
// device-resident exchange moves device slots on the caller's stream, two streams at once.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <random>
#include <thread>
#include <utility>

#include "expert_parallel/ep_endpoint.h"
#include "expert_parallel/nccl_collective.h"

namespace strata::expert_parallel {
namespace {

EpOptions Options(WireDType dtype) {
  EpOptions o;
  o.size = 1;
  o.num_layers = 2;
  o.num_experts = 16;
  o.top_k = 4;
  o.hidden = 64;
  o.max_tokens_per_rank = 32;
  o.num_streams = 1;
  o.dispatch_dtype = dtype;
  o.timeout_ms = 20000;
  return o;
}

TEST(NcclCollectiveTest, MatchesTheHostPathAtEp1) {
  if (CudaDeviceCount() == 0) GTEST_SKIP() << "no CUDA device";
  for (auto [dtype, self_copy] :
       {std::pair{WireDType::kInt8, false}, {WireDType::kBf16, false}, {WireDType::kBf16, true}}) {
    SCOPED_TRACE(self_copy ? "own slot copied" : "own slot through NCCL");
    EpOptions o = Options(dtype);
    NcclCollectiveOptions no;
    no.max_slot_bytes = size_t{1} << 20;  // above both slot capacities at these shapes
    no.self_copy = self_copy;
    auto coll = CreateNcclCollective(no);
    ASSERT_TRUE(coll.ok()) << coll.status().message();
    auto nccl = EpEndpoint::CreateWithCollective(o, std::move(*coll));
    ASSERT_TRUE(nccl.ok()) << nccl.status().message();
    auto host = EpEndpoint::Create(o, nullptr);
    ASSERT_TRUE(host.ok());
    auto step = (*nccl)->BeginStep(7, false);
    ASSERT_TRUE(step.ok()) << step.status().message();
    EXPECT_EQ(step->max_tokens, 7);
    auto a = (*nccl)->NewCommunicator(0), b = (*host)->NewCommunicator(0);
    std::mt19937 rng(5);
    std::normal_distribution<float> nd;
    for (int64_t T : {0, 1, 13, 32}) {
      std::vector<float> h(T * 64), w(T * 4);
      std::vector<int32_t> ids(T * 4);
      for (float& v : h) v = nd(rng);
      for (float& v : w) v = nd(rng);
      for (int64_t t = 0; t < T; ++t) {
        for (int j = 0; j < 4; ++j) ids[t * 4 + j] = static_cast<int32_t>((t * 5 + j * 3) % 16);
      }
      for (int layer = 0; layer < 2; ++layer) {
        DispatchInput in{h.data(), T, 64, ids.data(), w.data(), 4, layer};
        Dispatched da, db;
        ASSERT_TRUE(a->Dispatch(in, &da).ok());
        ASSERT_TRUE(b->Dispatch(in, &db).ok());
        ASSERT_EQ(da.rows, db.rows);
        ASSERT_EQ(da.groups.size(), db.groups.size());
        std::vector<float> out(da.rows.size());
        for (size_t i = 0; i < out.size(); ++i) out[i] = da.rows[i] * 0.5f + 1.0f;
        std::vector<float> ca(T * 64), cb(T * 64);
        ASSERT_TRUE(a->Combine(in, da, out.data(), ca.data()).ok());
        ASSERT_TRUE(b->Combine(in, db, out.data(), cb.data()).ok());
        EXPECT_EQ(ca, cb) << "T=" << T;
      }
    }
  }
}

// A device-resident dispatch-and-combine round trip at EP=1 on one stream: sizes travel from
// the device, the data lands byte for byte, and combine sends back what dispatch received.
void RoundTrip(cudaStream_t stream, NcclDeviceExchange& x, uint32_t seed) {
  constexpr size_t kSlot = 1 << 20;
  std::mt19937 rng(seed);
  uint8_t *send = nullptr, *recv = nullptr, *back = nullptr;
  uint64_t* d_bytes = nullptr;
  ASSERT_EQ(cudaMalloc(&send, kSlot), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&recv, kSlot), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&back, kSlot), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&d_bytes, sizeof(uint64_t)), cudaSuccess);
  for (size_t n : {size_t{0}, size_t{1}, size_t{4097}, kSlot}) {
    std::vector<uint8_t> data(n), got(n, 0), got_back(n, 0);
    for (auto& b : data) b = static_cast<uint8_t>(rng());
    const uint64_t bytes = n;
    ASSERT_EQ(cudaMemsetAsync(recv, 0xAB, kSlot, stream), cudaSuccess);  // poison
    ASSERT_EQ(cudaMemcpyAsync(send, data.data(), n, cudaMemcpyHostToDevice, stream), cudaSuccess);
    ASSERT_EQ(cudaMemcpyAsync(d_bytes, &bytes, 8, cudaMemcpyHostToDevice, stream), cudaSuccess);
    size_t recv_bytes = 12345;
    ASSERT_TRUE(x.ExchangeSizes(d_bytes, &recv_bytes).ok());
    ASSERT_EQ(recv_bytes, n);
    const size_t send_bytes = n;
    ASSERT_TRUE(x.Exchange(send, recv, kSlot, &send_bytes, &recv_bytes).ok());
    ASSERT_TRUE(x.Exchange(recv, back, kSlot, &recv_bytes, &send_bytes).ok());  // combine
    ASSERT_TRUE(x.Synchronize().ok());
    ASSERT_EQ(cudaMemcpy(got.data(), recv, n, cudaMemcpyDeviceToHost), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(got_back.data(), back, n, cudaMemcpyDeviceToHost), cudaSuccess);
    EXPECT_EQ(got, data) << n << " bytes";
    EXPECT_EQ(got_back, data) << n << " bytes";
  }
  const size_t over = kSlot + 1, zero = 0;
  EXPECT_EQ(x.Exchange(send, recv, kSlot, &over, &zero).code(), StatusCode::kInvalidArgument);
  cudaFree(send);
  cudaFree(recv);
  cudaFree(back);
  cudaFree(d_bytes);
}

TEST(NcclDeviceExchangeTest, MovesDeviceSlotsOnTwoStreamsAtOnce) {
  if (CudaDeviceCount() == 0) GTEST_SKIP() << "no CUDA device";
  cudaStream_t streams[2];
  std::unique_ptr<NcclDeviceExchange> ex[2];
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(cudaStreamCreateWithFlags(&streams[i], cudaStreamNonBlocking), cudaSuccess);
    NcclCollectiveOptions no;
    no.max_slot_bytes = size_t{1} << 20;
    no.timeout_ms = 20000;
    no.self_copy = i == 1;  // stream 0 through NCCL, stream 1 copies its own slot
    auto x = CreateNcclDeviceExchange(no, streams[i]);
    ASSERT_TRUE(x.ok()) << x.status().message();
    ex[i] = std::move(*x);
  }
  std::thread second([&] { RoundTrip(streams[1], *ex[1], 2); });
  RoundTrip(streams[0], *ex[0], 1);
  second.join();
  NcclCollectiveOptions bad;
  bad.max_slot_bytes = 1024;
  EXPECT_EQ(CreateNcclDeviceExchange(bad, nullptr).status().code(), StatusCode::kInvalidArgument);
  for (int i = 0; i < 2; ++i) {
    ex[i].reset();
    cudaStreamDestroy(streams[i]);
  }
}

}  // namespace
}  // namespace strata::expert_parallel
