// Dispatch/combine with self-describing payloads (DeepEP's habit): every token's row encodes its
// source rank and index, each rank checks that what it received is exactly what the placement
// sends it, and the combined outputs are checked against a host reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>
#include <tuple>

#include "expert_parallel/ep_endpoint.h"
#include "expert_parallel/wire.h"
#include "tests/unit/expert_parallel/ep_test_util.h"

namespace strata::expert_parallel {
namespace {

using testing::MakeInprocGroup;
using testing::OnEachRank;

constexpr int64_t kHidden = 32;
constexpr int kExperts = 16;
constexpr int kLayers = 3;

// Values are integers in [-127, 127] with element 0 = 127, so INT8 (scale 1) and BF16 carry
// them exactly.
void TokenRow(int rank, int64_t t, float* row) {
  row[0] = 127;
  row[1] = static_cast<float>(rank);
  row[2] = static_cast<float>(t % 100);
  row[3] = static_cast<float>(t / 100);
  for (int64_t i = 4; i < kHidden; ++i)
    row[i] = static_cast<float>((rank * 31 + t * 7 + i) % 255 - 127);
}
// The test's "expert": out = x + expert + 1 (exact in bf16 for these values).
float ExpertFn(int expert, float x) { return x + static_cast<float>(expert + 1); }

struct RankBatch {
  int64_t num_tokens;
  std::vector<float> hidden;
  std::vector<int32_t> ids;
  std::vector<float> weights;
};

RankBatch MakeBatch(int rank, int64_t num_tokens, int top_k, uint32_t seed) {
  RankBatch b;
  b.num_tokens = num_tokens;
  b.hidden.resize(num_tokens * kHidden);
  std::mt19937 rng(seed * 977 + rank);
  std::vector<int32_t> perm(kExperts);
  for (int64_t t = 0; t < num_tokens; ++t) {
    TokenRow(rank, t, b.hidden.data() + t * kHidden);
    for (int e = 0; e < kExperts; ++e) perm[e] = e;
    std::shuffle(perm.begin(), perm.end(), rng);
    for (int j = 0; j < top_k; ++j) {
      b.ids.push_back(perm[j]);
      b.weights.push_back(1.0f / static_cast<float>(1 << (j + 1)));  // exact sums
    }
  }
  return b;
}

class DispatchCombineTest : public ::testing::TestWithParam<std::tuple<int, int, WireDType, int>> {
};

TEST_P(DispatchCombineTest, SelfDescribingPayloads) {
  const auto [size, top_k, dtype, redundant] = GetParam();
  EpOptions o;
  o.size = size;
  o.num_layers = kLayers;
  o.num_experts = kExperts;
  o.top_k = top_k;
  o.hidden = kHidden;
  o.max_tokens_per_rank = 40;
  o.dispatch_dtype = dtype;
  o.redundant_experts = redundant;
  o.timeout_ms = 20000;
  auto eps = MakeInprocGroup(o);
  ASSERT_TRUE(eps.ok()) << eps.status().message();
  auto placement = (*eps)[0]->placement();

  for (int round = 0; round < 2; ++round) {
    std::vector<RankBatch> batches;
    for (int r = 0; r < size; ++r) {
      // Rank 1 has no tokens in round 0; rank 0 has a full batch in round 1.
      int64_t n = (r == 1 && round == 0) ? 0 : (r == 0 && round == 1 ? 40 : 5 + 3 * r + round);
      batches.push_back(MakeBatch(r, n, top_k, round));
    }
    auto st = OnEachRank(size, [&](int r) -> Status {
      auto comm = (*eps)[r]->NewCommunicator(0);
      const RankBatch& b = batches[r];
      for (int layer = 0; layer < kLayers; ++layer) {
        DispatchInput in{b.hidden.data(),  b.num_tokens, kHidden, b.ids.data(),
                         b.weights.data(), top_k,        layer};
        Dispatched d;
        STRATA_RETURN_IF_ERROR(comm->Dispatch(in, &d));
        // Every received row names its source token; that token chose this expert, and the
        // placement sends that choice to this rank.
        int64_t expected_rows = 0;
        for (int s = 0; s < size; ++s) {
          const RankBatch& sb = batches[s];
          for (int64_t t = 0; t < sb.num_tokens; ++t) {
            for (int j = 0; j < top_k; ++j) {
              int e = sb.ids[t * top_k + j];
              if (placement->RankOfSlot(placement->SlotFor(layer, e, s, t)) == r) ++expected_rows;
            }
          }
        }
        if (d.num_rows() != expected_rows) {
          return InternalError("rank " + std::to_string(r) + " got " +
                               std::to_string(d.num_rows()) + " rows, expected " +
                               std::to_string(expected_rows));
        }
        std::vector<float> out(d.num_rows() * kHidden);
        std::vector<float> row(kHidden);
        for (const ops::ExpertGroup& g : d.groups) {
          for (int64_t i = g.row_begin; i < g.row_begin + g.num_rows; ++i) {
            const float* x = d.rows.data() + i * kHidden;
            int s = static_cast<int>(x[1]);
            int64_t t = static_cast<int64_t>(x[2]) + 100 * static_cast<int64_t>(x[3]);
            if (s < 0 || s >= size || t < 0 || t >= batches[s].num_tokens) {
              return InternalError("a row names a token that does not exist");
            }
            TokenRow(s, t, row.data());
            if (!std::equal(row.begin(), row.end(), x)) return InternalError("row corrupted");
            const int32_t* ids = batches[s].ids.data() + t * top_k;
            if (std::find(ids, ids + top_k, g.expert) == ids + top_k) {
              return InternalError("token sent to an expert it did not choose");
            }
            if (placement->RankOfSlot(placement->SlotFor(layer, g.expert, s, t)) != r) {
              return InternalError("choice computed on the wrong rank");
            }
            for (int64_t c = 0; c < kHidden; ++c) out[i * kHidden + c] = ExpertFn(g.expert, x[c]);
          }
        }
        std::vector<float> combined(b.num_tokens * kHidden);
        STRATA_RETURN_IF_ERROR(comm->Combine(in, d, out.data(), combined.data()));
        for (int64_t t = 0; t < b.num_tokens; ++t) {
          TokenRow(r, t, row.data());
          for (int64_t c = 0; c < kHidden; ++c) {
            float ref = 0;
            for (int j = 0; j < top_k; ++j) {
              ref += b.weights[t * top_k + j] * ExpertFn(b.ids[t * top_k + j], row[c]);
            }
            if (combined[t * kHidden + c] != ref) {
              return InternalError("rank " + std::to_string(r) + " token " + std::to_string(t) +
                                   " element " + std::to_string(c) + ": " +
                                   std::to_string(combined[t * kHidden + c]) +
                                   " != " + std::to_string(ref));
            }
          }
        }
      }
      return OkStatus();
    });
    for (int r = 0; r < size; ++r)
      EXPECT_TRUE(st[r].ok()) << "rank " << r << ": " << st[r].message();
  }
  // The load matrix every rank holds is the same, and adds up to all the choices sent.
  EpStats s0 = (*eps)[0]->stats();
  for (int r = 1; r < size; ++r) EXPECT_EQ((*eps)[r]->stats().received, s0.received);
}

INSTANTIATE_TEST_SUITE_P(Sizes, DispatchCombineTest,
                         ::testing::Values(std::make_tuple(1, 2, WireDType::kInt8, 0),
                                           std::make_tuple(1, 8, WireDType::kBf16, 0),
                                           std::make_tuple(2, 1, WireDType::kInt8, 0),
                                           std::make_tuple(2, 2, WireDType::kBf16, 0),
                                           std::make_tuple(2, 8, WireDType::kInt8, 2),
                                           std::make_tuple(4, 2, WireDType::kInt8, 0),
                                           std::make_tuple(4, 4, WireDType::kBf16, 4),
                                           std::make_tuple(4, 8, WireDType::kInt8, 4),
                                           std::make_tuple(4, 8, WireDType::kBf16, 0)));

EpOptions SmallOptions(int size) {
  EpOptions o;
  o.size = size;
  o.num_layers = 1;
  o.num_experts = 4;
  o.top_k = 2;
  o.hidden = 8;
  o.max_tokens_per_rank = 4;
  o.timeout_ms = 400;
  return o;
}

TEST(EpFailureTest, SilentRankTimesOutWithStatus) {
  auto eps = MakeInprocGroup(SmallOptions(2));
  ASSERT_TRUE(eps.ok()) << eps.status().message();
  auto comm = (*eps)[0]->NewCommunicator(0);
  std::vector<float> h(8, 1.0f), w(2, 0.5f);
  std::vector<int32_t> ids{0, 3};
  DispatchInput in{h.data(), 1, 8, ids.data(), w.data(), 2, 0};
  Dispatched d;
  auto start = MonoClock::now();
  Status st = comm->Dispatch(in, &d);  // rank 1 never joins
  EXPECT_EQ(st.code(), StatusCode::kDeadlineExceeded) << st.message();
  EXPECT_LT(MonoClock::now() - start, std::chrono::seconds(3));
  // The group stays failed: later calls fail at once.
  EXPECT_FALSE(comm->Dispatch(in, &d).ok());
}

// Data-parallel ranks: a rank that begins a step wakes its idle peer through the step listener
// (PeerStepPending), which joins with its own BeginStep; rank 0's broadcast reaches the others.
TEST(EpStepTest, PeerStepWakesAnIdleRankAndBroadcastArrives) {
  EpOptions o = SmallOptions(2);
  o.timeout_ms = 5000;
  auto eps = MakeInprocGroup(o);
  ASSERT_TRUE(eps.ok()) << eps.status().message();
  EpEndpoint& r0 = *(*eps)[0];
  EpEndpoint& r1 = *(*eps)[1];
  EXPECT_FALSE(r1.PeerStepPending());
  std::mutex mu;
  std::condition_variable cv;
  int wakes = 0;
  r1.SetStepListener([&] {
    std::lock_guard lock(mu);
    ++wakes;
    cv.notify_all();
  });
  std::thread idle([&] {  // rank 1 has no work: it waits for "a peer began a step"
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(5), [&] { return wakes > 0; }));
    lock.unlock();
    EXPECT_TRUE(r1.PeerStepPending());
    auto info = r1.BeginStep(0, false);
    ASSERT_TRUE(info.ok()) << info.status().message();
    EXPECT_EQ(info->max_tokens, 3);
    EXPECT_FALSE(r1.PeerStepPending());
  });
  auto info = r0.BeginStep(3, false);  // rank 0 has work
  idle.join();
  ASSERT_TRUE(info.ok()) << info.status().message();
  EXPECT_EQ(info->total_tokens, 3);
  r1.SetStepListener(nullptr);

  ASSERT_TRUE(r0.Broadcast("rank 0 is at somewhere:1").ok());
  auto got = r1.WaitBroadcast(5000);
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(*got, "rank 0 is at somewhere:1");
  EXPECT_EQ(r1.WaitBroadcast(50).status().code(), StatusCode::kDeadlineExceeded);
  // A failed group: nothing is pending, the wait ends with the failure.
  r0.Abort(InternalError("test"));
  auto start = MonoClock::now();
  EXPECT_FALSE(r1.WaitBroadcast(5000).ok());
  EXPECT_LT(MonoClock::now() - start, std::chrono::seconds(2));
  EXPECT_FALSE(r1.PeerStepPending());
}

TEST(EpFailureTest, DeadRankFailsTheGroupFast) {
  EpOptions o = SmallOptions(3);
  o.num_experts = 6;     // 2 slots per rank
  o.timeout_ms = 30000;  // far beyond the test's bound: failure must come from the transport
  auto eps = MakeInprocGroup(o);
  ASSERT_TRUE(eps.ok()) << eps.status().message();
  std::thread killer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    (*eps)[2].reset();  // rank 2 dies (its transport shuts down)
  });
  auto comm = (*eps)[0]->NewCommunicator(0);
  std::vector<float> h(8, 1.0f), w(2, 0.5f);
  std::vector<int32_t> ids{0, 3};
  DispatchInput in{h.data(), 1, 8, ids.data(), w.data(), 2, 0};
  Dispatched d;
  auto start = MonoClock::now();
  Status st = comm->Dispatch(in, &d);
  killer.join();
  EXPECT_FALSE(st.ok());
  EXPECT_TRUE(st.code() == StatusCode::kUnavailable || st.code() == StatusCode::kAborted)
      << st.message();
  EXPECT_LT(MonoClock::now() - start, std::chrono::seconds(5));
}

TEST(EpFailureTest, BadInputAbortsPeers) {
  auto eps = MakeInprocGroup(SmallOptions(2));
  ASSERT_TRUE(eps.ok());
  auto st = OnEachRank(2, [&](int r) -> Status {
    auto comm = (*eps)[r]->NewCommunicator(0);
    std::vector<float> h(8, 1.0f), w(2, 0.5f);
    std::vector<int32_t> ids{0, r == 0 ? 9 : 1};  // rank 0 routes to a nonexistent expert
    DispatchInput in{h.data(), 1, 8, ids.data(), w.data(), 2, 0};
    Dispatched d;
    return comm->Dispatch(in, &d);
  });
  EXPECT_EQ(st[0].code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st[1].code(), StatusCode::kAborted) << st[1].message();
}

TEST(EpFailureTest, TooManyTokensIsResourceExhausted) {
  auto eps = MakeInprocGroup(SmallOptions(1));
  ASSERT_TRUE(eps.ok());
  auto comm = (*eps)[0]->NewCommunicator(0);
  std::vector<float> h(8 * 5, 1.0f), w(10, 0.5f);
  std::vector<int32_t> ids(10, 1);
  DispatchInput in{h.data(), 5, 8, ids.data(), w.data(), 2, 0};
  Dispatched d;
  EXPECT_EQ(comm->Dispatch(in, &d).code(), StatusCode::kResourceExhausted);
}

TEST(WireTest, Int8RoundTripIsWithinHalfAStep) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  std::vector<float> x(257), y(257);
  for (float& v : x) v = nd(rng);
  std::vector<uint8_t> q(257);
  float scale = 0;
  EncodeRow(WireDType::kInt8, x.data(), 257, q.data(), &scale);
  DecodeRow(WireDType::kInt8, q.data(), scale, 257, y.data());
  float absmax = 0;
  for (float v : x) absmax = std::max(absmax, std::fabs(v));
  EXPECT_FLOAT_EQ(scale, absmax / 127.0f);
  for (int i = 0; i < 257; ++i) EXPECT_LE(std::fabs(x[i] - y[i]), scale * 0.5f + 1e-6f);
  std::vector<float> zero(16, 0.0f);
  EncodeRow(WireDType::kInt8, zero.data(), 16, q.data(), &scale);
  DecodeRow(WireDType::kInt8, q.data(), scale, 16, y.data());
  for (int i = 0; i < 16; ++i) EXPECT_EQ(y[i], 0.0f);
}

// The quantized values are nearbyint(x * 127 / absmax): ties to even, signs kept.
TEST(WireTest, Int8RoundsLikeNearbyint) {
  std::vector<float> x = {-127.0f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.49f, 126.5f, -0.49f};
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> ud(-127.0f, 127.0f);
  for (int i = 0; i < 500; ++i) x.push_back(ud(rng));
  std::vector<uint8_t> q(x.size());
  float scale = 0;
  EncodeRow(WireDType::kInt8, x.data(), static_cast<int64_t>(x.size()), q.data(), &scale);
  ASSERT_EQ(scale, 1.0f);
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(static_cast<int8_t>(q[i]), static_cast<int8_t>(std::nearbyint(x[i]))) << x[i];
  }
}

TEST(WireTest, ParseRejectsGarbage) {
  WireShape shape{2, 4, 8, 2, 4, WireDType::kInt8};
  std::vector<uint8_t> buf(shape.DispatchCapacity(), 0);
  EXPECT_EQ(ParseDispatch(shape, buf.data(), buf.size()).status().code(), StatusCode::kDataLoss);
  DispatchView v = LayoutDispatch(shape, buf.data(), 1, 2);
  *v.header = DispatchHeader();
  v.header->dtype = static_cast<uint32_t>(WireDType::kInt8);
  v.header->num_rows = 1;
  v.header->num_entries = 2;
  v.entries[0] = 0;
  v.entries[1] = 1;
  v.entries[2] = 0;
  v.entries[3] = 7;  // expert out of range
  EXPECT_EQ(ParseDispatch(shape, buf.data(), shape.DispatchBytes(1, 2)).status().code(),
            StatusCode::kDataLoss);
  v.entries[3] = 3;
  EXPECT_TRUE(ParseDispatch(shape, buf.data(), shape.DispatchBytes(1, 2)).ok());
  EXPECT_FALSE(ParseDispatch(shape, buf.data(), shape.DispatchBytes(1, 2) + 8).ok());
  v.header->num_rows = 100;  // over capacity
  EXPECT_FALSE(ParseDispatch(shape, buf.data(), shape.DispatchBytes(100, 2)).ok());
}

}  // namespace
}  // namespace strata::expert_parallel
