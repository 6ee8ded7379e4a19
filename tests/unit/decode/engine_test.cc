#include "decode/engine.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <map>
#include <random>

#include "tests/unit/decode/fake_runner.h"

namespace strata::decode {
namespace {

using testing::FakeRunner;
using testing::ReferenceGreedy;

// Collects events per request, thread-safely, and waits for final events.
class Collector {
 public:
  GenerationService::EventCallback Callback(const std::string& id) {
    return [this, id](TokenEvent ev) {
      std::lock_guard lock(mu_);
      auto& r = results_[id];
      for (const auto& t : ev.tokens) r.first.push_back(t.token_id);
      if (ev.finish != FinishReason::kNone) {
        r.second = ev.finish;
        ++num_done_;
        cv_.notify_all();
      }
    };
  }
  bool WaitFor(int n, int timeout_ms = 20000) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                        [&] { return num_done_ >= n; });
  }
  std::pair<std::vector<int32_t>, FinishReason> Get(const std::string& id) {
    std::lock_guard lock(mu_);
    return results_[id];
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::pair<std::vector<int32_t>, FinishReason>> results_;
  int num_done_ = 0;
};

GenerateRequest Request(const std::string& id, std::vector<int32_t> prompt, int max_tokens) {
  GenerateRequest r;
  r.request_id = id;
  r.prompt_token_ids = std::move(prompt);
  r.sampling.temperature = 0.0f;
  r.sampling.max_tokens = max_tokens;
  return r;
}

TEST(Engine, ConcurrentSubmittersGetTheReferenceOutputs) {
  SchedulerOptions opt;
  opt.max_num_batched_tokens = 32;
  Engine engine(opt, std::make_unique<FakeRunner>(4, 48));
  EXPECT_TRUE(engine.Ready());
  Collector c;
  std::vector<std::thread> threads;
  std::vector<std::vector<int32_t>> prompts(32);
  for (int i = 0; i < 32; ++i) {
    prompts[i] = {1 + i % 60, 2, 3 + i % 50, 4, 5};
  }
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < 32; i += 4) {
        ASSERT_TRUE(engine
                        .Submit(Request("r" + std::to_string(i), prompts[i], 12),
                                c.Callback("r" + std::to_string(i)))
                        .ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(c.WaitFor(32));
  for (int i = 0; i < 32; ++i) {
    auto [tokens, finish] = c.Get("r" + std::to_string(i));
    EXPECT_EQ(tokens, ReferenceGreedy(prompts[i], 12)) << i;
    EXPECT_EQ(finish, FinishReason::kLength);
  }
  auto stats = engine.Stats();
  EXPECT_EQ(stats.kv_blocks_used, 0);
  EXPECT_EQ(stats.num_running, 0);
}

TEST(Engine, ThousandMixedRequestsWithAbortsLeakNoBlock) {
  SchedulerOptions opt;
  opt.max_num_seqs = 32;
  opt.max_waiting = 2000;
  Engine engine(opt, std::make_unique<FakeRunner>(4, 64));
  Collector c;
  std::mt19937 rng(7);
  std::vector<std::string> to_abort;
  for (int i = 0; i < 1000; ++i) {
    std::string id = "m" + std::to_string(i);
    std::vector<int32_t> prompt(1 + rng() % 20);
    for (auto& t : prompt) t = 1 + static_cast<int32_t>(rng() % 63);
    ASSERT_TRUE(engine.Submit(Request(id, prompt, 1 + rng() % 8), c.Callback(id)).ok());
    if (rng() % 3 == 0) to_abort.push_back(id);
    if (i % 50 == 49) {
      for (const auto& a : to_abort) engine.Abort(a);
      to_abort.clear();
    }
  }
  for (const auto& a : to_abort) engine.Abort(a);
  ASSERT_TRUE(c.WaitFor(1000));
  // Stats are refreshed after each step; the final step may still be publishing.
  for (int i = 0; i < 100 && engine.Stats().kv_blocks_used != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(engine.Stats().kv_blocks_used, 0);
  EXPECT_EQ(engine.Stats().num_waiting, 0);
}

TEST(Engine, DrainAndShutdown) {
  Engine engine({}, std::make_unique<FakeRunner>(4, 64));
  Collector c;
  ASSERT_TRUE(engine.Submit(Request("a", {1, 2, 3}, 5), c.Callback("a")).ok());
  EXPECT_EQ(engine.Drain(5000), 0);
  EXPECT_FALSE(engine.Ready());
  EXPECT_EQ(engine.Submit(Request("b", {1}, 1), c.Callback("b")).code(), StatusCode::kUnavailable);
  EXPECT_EQ(c.Get("a").second, FinishReason::kLength);
  engine.Shutdown();
  engine.Shutdown();
}

TEST(Engine, ShutdownAbortsInFlightRequests) {
  auto engine = std::make_unique<Engine>(SchedulerOptions{}, std::make_unique<FakeRunner>(4, 256));
  Collector c;
  for (int i = 0; i < 4; ++i) {
    auto r = Request("s" + std::to_string(i), {1, 2, 3}, 900);
    r.sampling.ignore_eos = true;
    ASSERT_TRUE(engine->Submit(r, c.Callback("s" + std::to_string(i))).ok());
  }
  engine->Shutdown();
  ASSERT_TRUE(c.WaitFor(4, 1000));
  for (int i = 0; i < 4; ++i) {
    auto f = c.Get("s" + std::to_string(i)).second;
    EXPECT_TRUE(f == FinishReason::kAbort || f == FinishReason::kLength);
  }
}

}  // namespace
}  // namespace strata::decode
