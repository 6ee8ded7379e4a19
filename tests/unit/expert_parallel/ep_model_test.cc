// EP groups of tiny DeepSeek-V3 and Qwen3-MoE checkpoints (made by gen-model) as threads over
// the in-process transport: greedy outputs across EP sizes, INT8 dispatch tolerance,
// microbatching on/off, EPLB on a skewed router with a live rebalance.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <thread>

#include "expert_parallel/group/ep_group.h"
#include "model/gen_model.h"
#include "model/model_runner.h"
#include "ops/gpu_info.h"

namespace strata::expert_parallel {
namespace {

namespace fs = std::filesystem;
using model::Arch;

// Sequences of one rank, decoded greedily together.
struct RankRun {
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::vector<int32_t>> outputs;
  std::vector<std::vector<float>> first_logits;  // the prefill step's last-token logits
};

int32_t Argmax(std::span<const float> row) {
  return static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
}

// Prefill every prompt in one batch, then `steps` decode steps of the whole batch.
Status DecodeBatch(model::ModelRunner& runner, int steps, RankRun* run) {
  const int bs = runner.block_size();
  std::vector<std::vector<int32_t>> tables;
  int32_t next_block = 0;
  for (const auto& p : run->prompts) {
    std::vector<int32_t> t(model::BlocksForTokens(p.size() + steps + 1, bs));
    for (auto& b : t) b = next_block++;
    tables.push_back(std::move(t));
  }
  run->outputs.assign(run->prompts.size(), {});
  run->first_logits.assign(run->prompts.size(), {});
  model::ForwardBatch batch;
  for (size_t s = 0; s < run->prompts.size(); ++s) {
    batch.sequences.push_back({run->prompts[s], 0, tables[s], model::LogitsMode::kLast});
  }
  model::ForwardResult result;
  STRATA_RETURN_IF_ERROR(runner.Forward(batch, &result));
  for (size_t s = 0; s < run->prompts.size(); ++s) {
    auto row = result.Row(s);
    run->first_logits[s].assign(row.begin(), row.end());
    run->outputs[s].push_back(Argmax(row));
  }
  for (int step = 0; step < steps; ++step) {
    batch.sequences.clear();
    for (size_t s = 0; s < run->prompts.size(); ++s) {
      batch.sequences.push_back({std::span<const int32_t>(&run->outputs[s].back(), 1),
                                 static_cast<int32_t>(run->prompts[s].size() + step), tables[s],
                                 model::LogitsMode::kLast});
    }
    STRATA_RETURN_IF_ERROR(runner.Forward(batch, &result));
    for (size_t s = 0; s < run->prompts.size(); ++s)
      run->outputs[s].push_back(Argmax(result.Row(s)));
  }
  return OkStatus();
}

class EpModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* assets = std::getenv("STRATA_TEST_ASSETS");
    if (!assets || !fs::exists(fs::path(assets) / "tokenizers")) return;
    root_ = new fs::path(fs::temp_directory_path() /
                         ("strata_ep_model_test_" + std::to_string(getpid())));
    fs::create_directories(*root_);
    auto make = [&](Arch arch, const std::string& tok, const std::string& name, double skew) {
      model::GenModelOptions o;
      o.arch = arch;
      o.preset = "tiny";
      o.tokenizer_dir = (fs::path(assets) / "tokenizers" / tok).string();
      o.out_dir = (*root_ / name).string();
      o.seed = 7;
      o.router_skew = skew;
      o.num_threads = 1;
      Status st = model::GenerateModel(o);
      if (!st.ok()) ADD_FAILURE() << name << ": " << st.message();
    };
    make(Arch::kDeepseekV3, "deepseek_v3", "deepseek_v3", 0.0);
    make(Arch::kQwen3Moe, "qwen3", "qwen3_moe", 0.0);
    make(Arch::kDeepseekV3, "deepseek_v3", "deepseek_v3_skew", 1.0);
  }
  static void TearDownTestSuite() {
    if (root_) fs::remove_all(*root_);
    delete root_;
    root_ = nullptr;
  }
  void SetUp() override {
    if (!root_)
      GTEST_SKIP() << "STRATA_TEST_ASSETS/tokenizers missing (run scripts/fetch-test-assets)";
  }
  static std::string Dir(const std::string& name) { return (*root_ / name).string(); }

  static model::RunnerOptions RunnerOpts() {
    model::RunnerOptions ro;
    ro.num_threads = 1;
    ro.num_kv_blocks = 64;
    ro.kv_block_size = 16;
    ro.prefault_weights = false;
    return ro;
  }

  // Prompts for rank r of a group of `size` (global sequence g = r * per_rank + i), so the same
  // sequences can be run at any EP size.
  static std::vector<std::vector<int32_t>> Prompts(int num_sequences, int vocab) {
    std::vector<std::vector<int32_t>> p;
    for (int g = 0; g < num_sequences; ++g) {
      std::vector<int32_t> ids;
      for (int i = 0; i < 5 + 3 * g; ++i)
        ids.push_back((17 + 31 * g + 7 * i * i) % (vocab - 10) + 1);
      p.push_back(std::move(ids));
    }
    return p;
  }

  // Runs the group; sequence g goes to rank g % size. Returns per-sequence outputs and logits.
  static StatusOr<RankRun> RunGroup(const std::string& dir, EpGroupOptions g, int num_sequences,
                                    int steps, std::vector<EpRunnerStats>* stats = nullptr,
                                    std::function<void(int, EpRunner&)> after = nullptr,
                                    const model::RunnerOptions& ro = RunnerOpts()) {
    STRATA_ASSIGN_OR_RETURN(auto runners, CreateThreadGroup(dir, ro, g));
    const int vocab = static_cast<int>(runners[0]->config().vocab_size);
    auto all = Prompts(num_sequences, vocab);
    std::vector<RankRun> runs(g.size);
    for (int s = 0; s < num_sequences; ++s) runs[s % g.size].prompts.push_back(all[s]);
    std::vector<Status> st(g.size);
    std::vector<std::thread> threads;
    for (int r = 0; r < g.size; ++r) {
      threads.emplace_back([&, r] {
        st[r] = DecodeBatch(*runners[r], steps, &runs[r]);
        if (st[r].ok() && after) after(r, *runners[r]);
        Status stop = runners[r]->Stop();
        if (st[r].ok()) st[r] = stop;
      });
    }
    for (auto& t : threads) t.join();
    for (int r = 0; r < g.size; ++r) {
      if (!st[r].ok())
        return Status(st[r].code(), "rank " + std::to_string(r) + ": " + st[r].message());
    }
    if (stats) {
      stats->clear();
      for (auto& r : runners) stats->push_back(r->stats());
    }
    RankRun merged;
    merged.outputs.resize(num_sequences);
    merged.first_logits.resize(num_sequences);
    for (int s = 0; s < num_sequences; ++s) {
      merged.outputs[s] = runs[s % g.size].outputs[s / g.size];
      merged.first_logits[s] = runs[s % g.size].first_logits[s / g.size];
    }
    return merged;
  }

  static fs::path* root_;
};
fs::path* EpModelTest::root_ = nullptr;

EpGroupOptions Group(int size, WireDType dtype, bool microbatch = false) {
  EpGroupOptions g;
  g.size = size;
  g.dispatch_dtype = dtype;
  g.runner.microbatch = microbatch;
  g.runner.microbatch_min_tokens = 1;
  g.max_tokens_per_rank = 128;
  g.timeout_ms = 60000;
  return g;
}

TEST_F(EpModelTest, Bf16GreedyOutputsAreTheSameAtEveryEpSize) {
  for (const char* name : {"deepseek_v3", "qwen3_moe"}) {
    SCOPED_TRACE(name);
    auto ep1 = RunGroup(Dir(name), Group(1, WireDType::kBf16), 8, 6);
    ASSERT_TRUE(ep1.ok()) << ep1.status().message();
    for (int size : {2, 4}) {
      auto epn = RunGroup(Dir(name), Group(size, WireDType::kBf16), 8, 6);
      ASSERT_TRUE(epn.ok()) << epn.status().message();
      EXPECT_EQ(epn->outputs, ep1->outputs) << "EP=" << size;
      EXPECT_EQ(epn->first_logits, ep1->first_logits) << "EP=" << size << " (bitwise)";
    }
  }
}

// The same on a GPU (skips without one): the device forward routes on the GPU and moves the
// tokens through the communicator in host memory; EP 2 (two ranks on the GPU, each with two
// microbatch streams) equals EP 1 bit for bit. Against the plain device forward (routed experts
// whole on the device, combined in f32) the EP path sends expert outputs back in BF16 (2^-8
// relative rounding): logits within 2% of the largest, the same top-1 wherever it leads by more
// than twice that.
TEST_F(EpModelTest, Bf16GreedyOutputsAreTheSameAtEveryEpSizeOnTheGpu) {
  if (ops::QueryGpus().devices.empty()) GTEST_SKIP() << "no CUDA device";
  model::RunnerOptions ro = RunnerOpts();
  ro.device = "cuda";
  for (const char* name : {"deepseek_v3", "qwen3_moe"}) {
    SCOPED_TRACE(name);
    auto ep1 = RunGroup(Dir(name), Group(1, WireDType::kBf16), 8, 6, nullptr, nullptr, ro);
    ASSERT_TRUE(ep1.ok()) << ep1.status().message();
    std::vector<EpRunnerStats> stats;
    auto ep2 = RunGroup(Dir(name), Group(2, WireDType::kBf16, true), 8, 6, &stats, nullptr, ro);
    ASSERT_TRUE(ep2.ok()) << ep2.status().message();
    EXPECT_EQ(ep2->outputs, ep1->outputs);
    EXPECT_EQ(ep2->first_logits, ep1->first_logits) << "(bitwise)";
    EXPECT_EQ(stats[0].microbatched_steps, stats[0].steps);  // two streams on the GPU
    EXPECT_GT(stats[0].ep.rounds, 0);
    auto plain = model::ModelRunner::Load(Dir(name), ro);
    ASSERT_TRUE(plain.ok()) << plain.status().message();
    RankRun whole;
    whole.prompts = Prompts(8, static_cast<int>((*plain)->config().vocab_size));
    ASSERT_TRUE(DecodeBatch(**plain, 0, &whole).ok());
    for (int s = 0; s < 8; ++s) {
      const auto& a = whole.first_logits[s];
      const auto& b = ep1->first_logits[s];
      float scale = 0, diff = 0;
      for (size_t i = 0; i < a.size(); ++i) {
        scale = std::max(scale, std::fabs(a[i]));
        diff = std::max(diff, std::fabs(a[i] - b[i]));
      }
      EXPECT_LE(diff, 0.02f * scale) << "sequence " << s;
      std::vector<float> sorted(a);
      std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<float>());
      if (sorted[0] - sorted[1] > 2 * 0.02f * scale) {
        EXPECT_EQ(Argmax(a), Argmax(b)) << "sequence " << s;
      }
    }
  }
}

// --ep-transport nccl: at EP 1 on a GPU machine the NCCL endpoint gives exactly the in-process
// one's outputs; without a GPU (or without NCCL in the build) it says why. NCCL ranks > 1 are
// processes, one GPU each (never threads; fewer GPUs than ranks is refused up front).
TEST_F(EpModelTest, NcclTransportMatchesInprocAtEp1OrSaysWhyNot) {
  EpGroupOptions nccl = Group(1, WireDType::kBf16, true);
  nccl.transport = "nccl";
  auto got = RunGroup(Dir("deepseek_v3"), nccl, 4, 3);
  if (ops::QueryGpus().devices.empty()) {
    ASSERT_FALSE(got.ok());
    EXPECT_TRUE(got.status().code() == StatusCode::kUnavailable ||
                got.status().code() == StatusCode::kInvalidArgument)
        << got.status().ToString();
    EXPECT_NE(got.status().message().find("nccl"), std::string::npos) << got.status().message();
  } else {
    ASSERT_TRUE(got.ok()) << got.status().message();
    auto inproc = RunGroup(Dir("deepseek_v3"), Group(1, WireDType::kBf16), 4, 3);
    ASSERT_TRUE(inproc.ok()) << inproc.status().message();
    EXPECT_EQ(got->outputs, inproc->outputs);
    EXPECT_EQ(got->first_logits, inproc->first_logits);
  }
  nccl.size = 2;
  EXPECT_EQ(RunGroup(Dir("deepseek_v3"), nccl, 4, 1).status().code(), StatusCode::kInvalidArgument);
  if (ops::QueryGpus().devices.size() < 2) {  // refused before any worker starts
    auto leader = StartLeader(Dir("deepseek_v3"), RunnerOpts(), nccl, {"/bin/false"});
    EXPECT_EQ(leader.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(leader.status().message().find("one GPU per rank"), std::string::npos)
        << leader.status().message();
  }
  EXPECT_FALSE(EffectiveGroupOptions(nccl).runner.microbatch);  // one stream per collective
  EXPECT_FALSE(EffectiveGroupOptions(Group(1, WireDType::kBf16, true)).runner.microbatch);
  EXPECT_TRUE(EffectiveGroupOptions(Group(2, WireDType::kBf16, true)).runner.microbatch);
  EpGroupOptions bad = Group(2, WireDType::kBf16);
  bad.transport = "rdma";
  Status st = ValidateGroupOptions(bad);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("ep-transport"), std::string::npos) << st.message();
}

// INT8 dispatch vs the exact f32 local path: logits within a tolerance, same top-1.
TEST_F(EpModelTest, Int8DispatchStaysCloseToExact) {
  for (const char* name : {"deepseek_v3", "qwen3_moe"}) {
    SCOPED_TRACE(name);
    auto runner = model::ModelRunner::Load(Dir(name), RunnerOpts());
    ASSERT_TRUE(runner.ok());
    RankRun exact;
    exact.prompts = Prompts(8, static_cast<int>((*runner)->config().vocab_size));
    ASSERT_TRUE(DecodeBatch(**runner, 0, &exact).ok());
    auto int8 = RunGroup(Dir(name), Group(2, WireDType::kInt8), 8, 0);
    ASSERT_TRUE(int8.ok()) << int8.status().message();
    double worst = 0;
    int agree = 0, decisive = 0;
    for (int s = 0; s < 8; ++s) {
      const auto& a = exact.first_logits[s];
      const auto& b = int8->first_logits[s];
      float scale = 0;
      for (float v : a) scale = std::max(scale, std::fabs(v));
      for (size_t i = 0; i < a.size(); ++i) {
        worst = std::max(worst, static_cast<double>(std::fabs(a[i] - b[i]) / scale));
      }
      std::vector<float> sorted(a);
      std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<float>());
      const bool same = Argmax(a) == Argmax(b);
      agree += same;
      // Where the exact top-1 leads by more than twice the tolerance, INT8 must keep it.
      if (sorted[0] - sorted[1] > 2 * 0.03 * scale) {
        ++decisive;
        EXPECT_TRUE(same) << "sequence " << s;
      }
    }
    // Stated tolerance: |logit difference| <= 3% of the largest |logit|; top-1 agreement on at
    // least 6 of 8 sequences (and on every sequence with a decisive margin).
    EXPECT_LE(worst, 0.03);
    EXPECT_GE(agree, 6);
    std::printf("[ %s ] top-1 agreement %d/8 (%d decisive)\n", name, agree, decisive);
    std::printf("[ %s ] INT8 dispatch: max |dlogit| / max |logit| = %.5f\n", name, worst);
  }
}

TEST_F(EpModelTest, MicrobatchingOnAndOffGiveTheSameOutputs) {
  for (WireDType dtype : {WireDType::kBf16, WireDType::kInt8}) {
    auto off = RunGroup(Dir("deepseek_v3"), Group(2, dtype, false), 8, 5);
    ASSERT_TRUE(off.ok()) << off.status().message();
    std::vector<EpRunnerStats> stats;
    auto on = RunGroup(Dir("deepseek_v3"), Group(2, dtype, true), 8, 5, &stats);
    ASSERT_TRUE(on.ok()) << on.status().message();
    EXPECT_EQ(on->outputs, off->outputs);
    EXPECT_EQ(on->first_logits, off->first_logits);
    EXPECT_EQ(stats[0].microbatched_steps, stats[0].steps);  // threshold 1: always on
    EXPECT_GE(stats[0].overlap.overlap(), 0.0);
  }
  // Below the threshold it stays off.
  EpGroupOptions g = Group(2, WireDType::kBf16, true);
  g.runner.microbatch_min_tokens = 1000;
  std::vector<EpRunnerStats> stats;
  ASSERT_TRUE(RunGroup(Dir("deepseek_v3"), g, 4, 2, &stats).ok());
  EXPECT_EQ(stats[0].microbatched_steps, 0);
}

// Chunked prefill of long pseudo-random prompts: a stationary routing load (decode of random
// weights tends to repeat tokens, so its load drifts). Appends every chunk's last-token logits.
Status ChunkedPrefill(EpRunner& runner, int rank, int num_sequences, int chunk, int steps,
                      std::vector<std::vector<float>>* logits) {
  const int vocab = static_cast<int>(runner.config().vocab_size);
  const int bs = runner.block_size();
  std::vector<std::vector<int32_t>> prompts(num_sequences), tables(num_sequences);
  int32_t next_block = 0;
  for (int s = 0; s < num_sequences; ++s) {
    uint32_t x = 2654435761u * (rank * 97 + s + 1);
    for (int i = 0; i < chunk * steps; ++i) {
      x = x * 1664525u + 1013904223u;
      prompts[s].push_back(static_cast<int32_t>((x >> 8) % (vocab - 2)) + 1);
    }
    for (int b = 0; b < model::BlocksForTokens(chunk * steps, bs); ++b) {
      tables[s].push_back(next_block++);
    }
  }
  model::ForwardResult result;
  for (int step = 0; step < steps; ++step) {
    model::ForwardBatch batch;
    for (int s = 0; s < num_sequences; ++s) {
      batch.sequences.push_back({std::span<const int32_t>(prompts[s].data() + step * chunk, chunk),
                                 step * chunk, tables[s], model::LogitsMode::kLast});
    }
    STRATA_RETURN_IF_ERROR(runner.Forward(batch, &result));
    for (int s = 0; s < num_sequences; ++s) {
      auto row = result.Row(s);
      logits->emplace_back(row.begin(), row.end());
    }
  }
  return runner.Stop();
}

TEST_F(EpModelTest, EplbBalancesASkewedRouterWithoutChangingOutputs) {
  const std::string dir = Dir("deepseek_v3_skew");
  auto run = [&](EpGroupOptions g, std::vector<EpRunnerStats>* stats,
                 std::vector<std::vector<float>>* logits) -> Status {
    STRATA_ASSIGN_OR_RETURN(auto runners, CreateThreadGroup(dir, RunnerOpts(), g));
    std::vector<std::vector<std::vector<float>>> per_rank(g.size);
    std::vector<Status> st(g.size);
    std::vector<std::thread> threads;
    for (int r = 0; r < g.size; ++r) {
      threads.emplace_back(
          [&, r] { st[r] = ChunkedPrefill(*runners[r], r, 4, 8, 24, &per_rank[r]); });
    }
    for (auto& t : threads) t.join();
    for (auto& s : st) STRATA_RETURN_IF_ERROR(s);
    for (auto& r : runners) stats->push_back(r->stats());
    for (auto& p : per_rank) logits->insert(logits->end(), p.begin(), p.end());
    return OkStatus();
  };
  EpGroupOptions g = Group(4, WireDType::kBf16);
  g.max_tokens_per_rank = 64;
  g.redundant_experts = 8;  // 16 slots, 4 per rank
  std::vector<EpRunnerStats> before, after;
  std::vector<std::vector<float>> plain, balanced;
  Status st = run(g, &before, &plain);
  ASSERT_TRUE(st.ok()) << st.message();
  g.eplb_window_steps = 4;
  st = run(g, &after, &balanced);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(balanced, plain);  // the live rebalance changes no logit
  ASSERT_GE(after[0].ep.swaps, 1);
  for (int r = 1; r < 4; ++r) {
    EXPECT_EQ(after[r].ep.received_since_swap, after[0].ep.received_since_swap);
  }
  // Per MoE layer, max/mean receive load over the ranks: uniform placement (whole run) and
  // after the last swap.
  const int layers = static_cast<int>(after[0].ep.received.size() / 4);
  int moe_layers = 0;
  for (int l = 0; l < layers; ++l) {
    std::vector<double> b(4), a(4);
    for (int r = 0; r < 4; ++r) {
      b[r] = static_cast<double>(before[0].ep.received[l * 4 + r]);
      a[r] = static_cast<double>(after[0].ep.received_since_swap[l * 4 + r]);
    }
    if (b[0] + b[1] + b[2] + b[3] == 0) continue;  // a dense layer
    ++moe_layers;
    std::printf(
        "[ layer %d ] max/mean rank load: uniform %.3f, after EPLB %.3f (%.0f entries, "
        "%lld swaps)\n",
        l, MaxMeanRatio(b), MaxMeanRatio(a), a[0] + a[1] + a[2] + a[3],
        static_cast<long long>(after[0].ep.swaps));
    EXPECT_GT(MaxMeanRatio(b), 1.15) << "the skewed router should unbalance the uniform placement";
    EXPECT_LE(MaxMeanRatio(a), 1.15) << "layer " << l;
  }
  EXPECT_GE(moe_layers, 1);
}

}  // namespace
}  // namespace strata::expert_parallel
