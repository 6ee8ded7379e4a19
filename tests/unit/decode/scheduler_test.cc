#include "decode/scheduler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <thread>

#include "common/clock.h"
#include "tests/unit/decode/fake_runner.h"

namespace strata::decode {
namespace {

using testing::FakeRunner;
using testing::ReferenceGreedy;

struct Outcome {
  std::vector<int32_t> tokens;
  FinishReason finish = FinishReason::kNone;
  Status error;
  int prompt_tokens = -1;
  int cached_tokens = -1;
  int num_final_events = 0;
  std::vector<GeneratedToken> prompt_logprobs;
  int num_prompt_logprob_events = 0;
};

class SchedulerHarness {
 public:
  SchedulerHarness(SchedulerOptions options, int block_size, int32_t num_blocks)
      : runner_(block_size, num_blocks), scheduler_(options, &runner_) {}

  Status Add(const std::string& id, std::vector<int32_t> prompt, SamplingParams sp,
             int64_t deadline_ns = 0) {
    GenerateRequest r;
    r.request_id = id;
    r.prompt_token_ids = std::move(prompt);
    r.sampling = sp;
    r.deadline_ns = deadline_ns;
    STRATA_RETURN_IF_ERROR(scheduler_.Validate(r));
    return scheduler_.Add(std::move(r), [this, id](TokenEvent ev) {
      Outcome& o = outcomes_[id];
      if (o.prompt_tokens < 0 && (ev.prompt_tokens > 0 || !ev.tokens.empty())) {
        o.prompt_tokens = ev.prompt_tokens;
        o.cached_tokens = ev.cached_tokens;
      }
      for (const auto& t : ev.tokens) o.tokens.push_back(t.token_id);
      if (!ev.prompt_logprobs.empty()) {
        o.prompt_logprobs = ev.prompt_logprobs;
        ++o.num_prompt_logprob_events;
      }
      if (ev.finish != FinishReason::kNone) {
        o.finish = ev.finish;
        o.error = ev.error;
        ++o.num_final_events;
      }
    });
  }

  void Step() {
    std::vector<PendingEvent> events;
    EXPECT_TRUE(scheduler_.Step(&events).ok());
    for (auto& e : events) (*e.callback)(std::move(e.event));
  }
  void RunToCompletion(int max_steps = 100000) {
    for (int i = 0; i < max_steps && scheduler_.HasWork(); ++i) Step();
    EXPECT_FALSE(scheduler_.HasWork());
  }

  FakeRunner runner_;
  Scheduler scheduler_;
  std::map<std::string, Outcome> outcomes_;
};

SamplingParams Greedy(int max_tokens) {
  SamplingParams sp;
  sp.temperature = 0.0f;
  sp.max_tokens = max_tokens;
  return sp;
}

std::vector<int32_t> RandomPrompt(std::mt19937& rng, int len) {
  std::uniform_int_distribution<int> tok(1, FakeRunner::kVocab - 1);
  std::vector<int32_t> p(len);
  for (auto& t : p) t = tok(rng);
  return p;
}

TEST(Scheduler, GreedyOutputsMatchTheReferenceUnderChunkingAndPreemption) {
  SchedulerOptions opt;
  opt.max_num_seqs = 8;
  opt.max_num_batched_tokens = 16;
  SchedulerHarness h(opt, /*block_size=*/4, /*num_blocks=*/40);
  std::mt19937 rng(1);
  std::map<std::string, std::vector<int32_t>> prompts;
  for (int i = 0; i < 16; ++i) {
    std::string id = "r" + std::to_string(i);
    prompts[id] = RandomPrompt(rng, 3 + (i * 7) % 40);
    ASSERT_TRUE(h.Add(id, prompts[id], Greedy(24)).ok());
  }
  h.RunToCompletion();
  for (const auto& [id, prompt] : prompts) {
    const Outcome& o = h.outcomes_[id];
    EXPECT_EQ(o.tokens, ReferenceGreedy(prompt, 24)) << id;
    EXPECT_EQ(o.finish, FinishReason::kLength) << id;
    EXPECT_EQ(o.num_final_events, 1) << id;
    EXPECT_EQ(o.prompt_tokens, static_cast<int>(prompt.size()));
  }
  EXPECT_GT(h.scheduler_.num_preemptions(), 0);  // the pool is too small for all at once
  EXPECT_LE(h.runner_.max_batch_tokens(), 16);
  EXPECT_LE(h.runner_.max_batch_size(), 8);
  EXPECT_GT(h.runner_.max_batch_size(), 1);  // continuous batching did batch
  EXPECT_EQ(h.scheduler_.block_pool().counts().used, 0);
  EXPECT_EQ(h.scheduler_.Stats().num_running, 0);
}

TEST(Scheduler, PrefixCacheReusesFullBlocks) {
  SchedulerOptions opt;
  SchedulerHarness h(opt, 4, 64);
  std::mt19937 rng(2);
  auto prompt = RandomPrompt(rng, 20);
  ASSERT_TRUE(h.Add("a", prompt, Greedy(5)).ok());
  h.RunToCompletion();
  auto longer = prompt;
  longer.push_back(7);
  longer.push_back(9);
  ASSERT_TRUE(h.Add("b", longer, Greedy(5)).ok());
  ASSERT_TRUE(h.Add("c", prompt, Greedy(5)).ok());  // the whole prompt is cached
  h.RunToCompletion();
  EXPECT_EQ(h.outcomes_["a"].cached_tokens, 0);
  EXPECT_EQ(h.outcomes_["b"].cached_tokens, 20);
  EXPECT_EQ(h.outcomes_["c"].cached_tokens, 16);  // the last token is always computed
  EXPECT_EQ(h.outcomes_["b"].tokens, ReferenceGreedy(longer, 5));
  EXPECT_EQ(h.outcomes_["c"].tokens, ReferenceGreedy(prompt, 5));
  auto stats = h.scheduler_.Stats();
  EXPECT_EQ(stats.prefix_cache_hit_tokens, 36);
  EXPECT_EQ(stats.prefix_cache_query_tokens, 20 + 22 + 20);
  EXPECT_EQ(h.scheduler_.block_pool().counts().used, 0);
}

TEST(Scheduler, StopsOnEosAndStopIdsUnlessIgnoreEos) {
  std::mt19937 rng(3);
  auto prompt = RandomPrompt(rng, 5);
  auto ref = ReferenceGreedy(prompt, 10);
  SchedulerOptions opt;
  opt.eos_token_ids = {ref[3]};
  SchedulerHarness h(opt, 4, 64);
  ASSERT_TRUE(h.Add("eos", prompt, Greedy(10)).ok());
  SamplingParams ignore = Greedy(10);
  ignore.ignore_eos = true;
  ASSERT_TRUE(h.Add("ignore", prompt, ignore).ok());
  SamplingParams stop_id = Greedy(10);
  stop_id.stop_token_ids = {ref[1]};
  ASSERT_TRUE(h.Add("stopid", prompt, stop_id).ok());
  h.RunToCompletion();
  auto first = [&](size_t n) { return std::vector<int32_t>(ref.begin(), ref.begin() + n); };
  // ref[3] may also appear earlier; the scheduler stops at its first occurrence.
  size_t eos_at = std::find(ref.begin(), ref.end(), ref[3]) - ref.begin();
  EXPECT_EQ(h.outcomes_["eos"].tokens, first(eos_at + 1));
  EXPECT_EQ(h.outcomes_["eos"].finish, FinishReason::kStop);
  EXPECT_EQ(h.outcomes_["ignore"].tokens, ref);
  EXPECT_EQ(h.outcomes_["ignore"].finish, FinishReason::kLength);
  EXPECT_EQ(h.outcomes_["stopid"].finish, FinishReason::kStop);
  EXPECT_EQ(h.outcomes_["stopid"].tokens.back(), ref[1]);
}

TEST(Scheduler, AbortAndDeadlineFreeTheirBlocks) {
  SchedulerOptions opt;
  SchedulerHarness h(opt, 4, 64);
  std::mt19937 rng(4);
  ASSERT_TRUE(h.Add("abort", RandomPrompt(rng, 30), Greedy(100)).ok());
  ASSERT_TRUE(
      h.Add("late", RandomPrompt(rng, 30), Greedy(100), MonotonicNanos() + 20'000'000).ok());
  ASSERT_TRUE(h.Add("keep", RandomPrompt(rng, 10), Greedy(3)).ok());
  for (int i = 0; i < 3; ++i) h.Step();
  EXPECT_GT(h.scheduler_.block_pool().counts().used, 0);
  h.scheduler_.Abort("abort");
  h.scheduler_.Abort("no-such-request");  // ignored
  h.Step();
  EXPECT_EQ(h.outcomes_["abort"].finish, FinishReason::kAbort);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  h.RunToCompletion();
  EXPECT_EQ(h.outcomes_["late"].finish, FinishReason::kError);
  EXPECT_EQ(h.outcomes_["late"].error.code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(h.outcomes_["keep"].finish, FinishReason::kLength);
  for (const auto& [id, o] : h.outcomes_) EXPECT_EQ(o.num_final_events, 1) << id;
  EXPECT_EQ(h.scheduler_.block_pool().counts().used, 0);
}

// Decode side of disaggregated serving: a reservation that ends while a prefill instance
// writes into it keeps its blocks until that writer is done, gone, or the grace has passed; one
// nobody began writing goes back at once; a writer cannot begin on an ended reservation.
TEST(Scheduler, EndedReservationsKeepTheirBlocksForTheirWriter) {
  SchedulerOptions opt;
  opt.kv_write_grace_ms = 50;
  SchedulerHarness h(opt, 4, 64);
  std::mt19937 rng(9);
  auto reserve = [&](const std::string& id) {
    GenerateRequest r;
    r.request_id = id;
    r.prompt_token_ids = RandomPrompt(rng, 16);
    r.sampling = Greedy(4);
    auto blocks = h.scheduler_.Reserve(
        std::move(r), [](TokenEvent) {}, MonotonicNanos() + 60'000'000'000);
    ASSERT_TRUE(blocks.ok());
    EXPECT_EQ(blocks->size(), 4u);
  };
  auto used = [&] { return h.scheduler_.block_pool().counts().used; };
  for (const char* id : {"idle", "done", "lost", "slow"}) reserve(id);
  EXPECT_TRUE(h.scheduler_.BeginKvWrite("done", 1).ok());
  EXPECT_TRUE(h.scheduler_.BeginKvWrite("lost", 2).ok());
  EXPECT_TRUE(h.scheduler_.BeginKvWrite("slow", 3).ok());
  EXPECT_EQ(h.scheduler_.BeginKvWrite("nope", 1).code(), StatusCode::kNotFound);
  EXPECT_EQ(used(), 16);
  for (const char* id : {"idle", "done", "lost", "slow"}) h.scheduler_.Abort(id);
  EXPECT_EQ(h.scheduler_.BeginKvWrite("idle", 4).code(), StatusCode::kNotFound)
      << "an aborted reservation takes no writer";
  h.Step();
  EXPECT_EQ(used(), 12) << "only the reservation nobody wrote into is free";
  h.scheduler_.EndKvWrite("done");
  EXPECT_EQ(used(), 8);
  h.scheduler_.DropKvWriter(2);
  EXPECT_EQ(used(), 4);
  EXPECT_GT(h.scheduler_.num_reserved(), 0) << "the engine keeps looking while blocks are held";
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  h.Step();
  EXPECT_EQ(used(), 0) << "the grace has passed";
  EXPECT_EQ(h.scheduler_.num_reserved(), 0);
}

// A reservation whose writer goes away before KvReady ends at the next step (its KV will not be
// complete), with kUnavailable, and frees its blocks; one with another writer is untouched.
TEST(Scheduler, AReservationWhoseWriterIsGoneEndsAtOnce) {
  SchedulerOptions opt;
  SchedulerHarness h(opt, 4, 64);
  std::mt19937 rng(10);
  std::map<std::string, TokenEvent> last;
  for (const char* id : {"lost", "kept"}) {
    GenerateRequest r;
    r.request_id = id;
    r.prompt_token_ids = RandomPrompt(rng, 8);
    r.sampling = Greedy(4);
    ASSERT_TRUE(h.scheduler_
                    .Reserve(
                        std::move(r), [&last, id](TokenEvent ev) { last[id] = ev; },
                        MonotonicNanos() + 60'000'000'000)
                    .ok());
  }
  ASSERT_TRUE(h.scheduler_.BeginKvWrite("lost", 7).ok());
  ASSERT_TRUE(h.scheduler_.BeginKvWrite("kept", 8).ok());
  h.scheduler_.DropKvWriter(7);
  h.Step();
  EXPECT_EQ(last["lost"].finish, FinishReason::kError);
  EXPECT_EQ(last["lost"].error.code(), StatusCode::kUnavailable);
  EXPECT_EQ(last.count("kept"), 0u);
  EXPECT_EQ(h.scheduler_.block_pool().counts().used, 2);
  EXPECT_TRUE(h.scheduler_.Activate("kept", 1).ok());
}

TEST(Scheduler, SeededSamplingDoesNotDependOnTheBatch) {
  std::mt19937 rng(5);
  auto prompt = RandomPrompt(rng, 9);
  SamplingParams sp;
  sp.temperature = 1.0f;
  sp.seed = 1234;
  sp.max_tokens = 20;
  SchedulerOptions opt;
  SchedulerHarness alone(opt, 4, 64);
  ASSERT_TRUE(alone.Add("x", prompt, sp).ok());
  alone.RunToCompletion();
  SchedulerOptions small = opt;
  small.max_num_batched_tokens = 8;
  SchedulerHarness crowded(small, 4, 24);
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(crowded.Add("o" + std::to_string(i), RandomPrompt(rng, 15), sp).ok());
  }
  ASSERT_TRUE(crowded.Add("x", prompt, sp).ok());
  crowded.RunToCompletion();
  EXPECT_EQ(alone.outcomes_["x"].tokens, crowded.outcomes_["x"].tokens);
  EXPECT_EQ(alone.outcomes_["x"].tokens.size(), 20u);
}

TEST(Scheduler, ValidationAndQueueBound) {
  SchedulerOptions opt;
  opt.max_model_len = 64;
  opt.max_waiting = 2;
  SchedulerHarness h(opt, 4, 8);  // 32 token slots
  EXPECT_EQ(h.Add("v", {1, 2, 999}, Greedy(4)).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(h.Add("e", {}, Greedy(4)).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(h.Add("ctx", {1, 2, 3}, Greedy(62)).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(h.Add("kv", {1, 2, 3}, Greedy(40)).code(), StatusCode::kInvalidArgument);
  SamplingParams bad = Greedy(4);
  bad.top_p = 0.0f;
  EXPECT_EQ(h.Add("top_p", {1, 2}, bad).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(h.Add("q1", {1, 2}, Greedy(2)).ok());
  ASSERT_TRUE(h.Add("q2", {1, 2}, Greedy(2)).ok());
  EXPECT_EQ(h.Add("q3", {1, 2}, Greedy(2)).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(h.Add("q1", {1, 2}, Greedy(2)).code(), StatusCode::kResourceExhausted);
  h.RunToCompletion();
  EXPECT_EQ(h.outcomes_.size(), 2u);
}

TEST(Scheduler, FifoAdmission) {
  SchedulerOptions opt;
  opt.max_num_seqs = 1;
  SchedulerHarness h(opt, 4, 64);
  std::vector<std::string> finish_order;
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(h.Add("f" + std::to_string(i), {1, 2, 3}, Greedy(3)).ok());
  }
  while (h.scheduler_.HasWork()) {
    h.Step();
    for (const auto& [id, o] : h.outcomes_) {
      if (o.finish != FinishReason::kNone &&
          std::find(finish_order.begin(), finish_order.end(), id) == finish_order.end()) {
        finish_order.push_back(id);
      }
    }
  }
  EXPECT_EQ(finish_order, (std::vector<std::string>{"f0", "f1", "f2", "f3"}));
}

// log_softmax over the logits FakeRunner gives for `seq` as a whole (a full recompute).
std::vector<double> ReferenceLogSoftmax(std::span<const int32_t> seq) {
  std::vector<float> logits(FakeRunner::kVocab);
  FakeRunner::Logits(seq, logits.data());
  double mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (float v : logits) sum += std::exp(v - mx);
  std::vector<double> out;
  for (float v : logits) out.push_back(v - mx - std::log(sum));
  return out;
}

TEST(Scheduler, PromptLogprobsEqualLogSoftmaxOfAFullRecompute) {
  SchedulerOptions opt;
  opt.max_num_batched_tokens = 8;  // prompts span several chunks
  opt.max_num_seqs = 4;
  SchedulerHarness h(opt, /*block_size=*/4, /*num_blocks=*/14);
  std::mt19937 rng(6);
  std::map<std::string, std::vector<int32_t>> prompts;
  auto shared = RandomPrompt(rng, 21);
  ASSERT_TRUE(h.Add("warm", shared, Greedy(2)).ok());  // caches the shared prompt's blocks
  h.RunToCompletion();
  SamplingParams sp = Greedy(10);
  sp.num_prompt_logprobs = 3;
  prompts["shared"] = shared;
  for (int i = 0; i < 4; ++i) prompts["p" + std::to_string(i)] = RandomPrompt(rng, 9 + i * 6);
  prompts["one"] = {5};  // a one-token prompt has no prompt logprobs
  for (const auto& [id, prompt] : prompts) ASSERT_TRUE(h.Add(id, prompt, sp).ok());
  ASSERT_TRUE(h.Add("plain", shared, Greedy(10)).ok());  // no prompt logprobs: uses the cache
  h.RunToCompletion();

  EXPECT_GT(h.scheduler_.num_preemptions(), 0);  // recomputed chunks must give the same rows
  EXPECT_GT(h.runner_.num_all_logits_chunks(), 8);
  EXPECT_GT(h.outcomes_["plain"].cached_tokens, 0);
  EXPECT_TRUE(h.outcomes_["plain"].prompt_logprobs.empty());
  EXPECT_TRUE(h.outcomes_["one"].prompt_logprobs.empty());
  EXPECT_EQ(h.outcomes_["one"].tokens, ReferenceGreedy({5}, 10));
  for (const auto& [id, prompt] : prompts) {
    const Outcome& o = h.outcomes_[id];
    EXPECT_EQ(o.tokens, ReferenceGreedy(prompt, 10)) << id;
    if (prompt.size() < 2) continue;
    EXPECT_EQ(o.cached_tokens, 0) << id;  // every prompt token was computed
    EXPECT_EQ(o.num_prompt_logprob_events, 1) << id;
    ASSERT_EQ(o.prompt_logprobs.size(), prompt.size() - 1) << id;
    for (size_t i = 0; i + 1 < prompt.size(); ++i) {
      auto ref = ReferenceLogSoftmax(std::span<const int32_t>(prompt.data(), i + 1));
      const GeneratedToken& g = o.prompt_logprobs[i];
      EXPECT_EQ(g.token_id, prompt[i + 1]) << id << " " << i;
      EXPECT_NEAR(g.logprob, ref[prompt[i + 1]], 1e-5) << id << " " << i;
      ASSERT_EQ(g.top_logprobs.size(), 3u) << id << " " << i;
      std::vector<int32_t> order(FakeRunner::kVocab);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(),
                       [&](int32_t a, int32_t b) { return ref[a] > ref[b]; });
      for (size_t k = 0; k < 3; ++k) {
        EXPECT_EQ(g.top_logprobs[k].token_id, order[k]) << id << " " << i;
        EXPECT_NEAR(g.top_logprobs[k].logprob, ref[order[k]], 1e-5) << id << " " << i;
      }
    }
  }
  EXPECT_EQ(h.scheduler_.block_pool().counts().used, 0);
  SamplingParams bad = Greedy(2);
  bad.num_prompt_logprobs = -2;
  EXPECT_EQ(h.Add("bad", {1, 2}, bad).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace strata::decode
