// The NCCL collective at EP=1 on a GPU (label gpu; skips without one): dispatch/combine through
// grouped ncclSend/ncclRecv give exactly what the host path (no transport) gives.
#include <gtest/gtest.h>

#include <random>

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
  for (WireDType dtype : {WireDType::kInt8, WireDType::kBf16}) {
    EpOptions o = Options(dtype);
    NcclCollectiveOptions no;
    no.max_slot_bytes = size_t{1} << 20;  // above both slot capacities at these shapes
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

}  // namespace
}  // namespace strata::expert_parallel
