// The driver against a fake OpenAI server in this process that streams on a known schedule: the
// measured TTFT, ITL, TPOT, E2E and goodput must match the schedule, token counts must match
// what was sent, and failures, timeouts and aborts must be counted as such.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "bench/driver/fake_server.h"
#include "bench/driver/metrics.h"
#include "bench/driver/runner.h"

namespace strata::bench {
namespace {

// Timer tolerance: delays are tens of ms, measurements must be within this of the schedule.
constexpr double kTolMs = 2.0;

std::unique_ptr<FakeOpenAiServer> StartServer(FakeServerOptions opt) {
  auto server = FakeOpenAiServer::Start(std::move(opt));
  EXPECT_TRUE(server.ok()) << server.status().ToString();
  return server.ok() ? std::move(*server) : nullptr;
}

ApiTarget TargetFor(const FakeOpenAiServer& server, EndpointKind kind = EndpointKind::kChat) {
  ApiTarget t;
  EXPECT_TRUE(ParseBaseUrl(server.base_url() + "/v1", &t).ok());
  t.kind = kind;
  t.model = "fake";
  return t;
}

std::vector<RequestSpec> Specs(int n, int output_len, const std::string& prompt = "a b c d e") {
  std::vector<RequestSpec> specs(n);
  for (auto& s : specs) {
    s.prompt = prompt;
    s.input_len = 5;
    s.output_len = output_len;
  }
  return specs;
}

RunResult RunOrDie(const ApiTarget& target, const RunPlan& plan, int io_threads = 1) {
  auto runner = Runner::Create(target, io_threads);
  EXPECT_TRUE(runner.ok()) << runner.status().ToString();
  auto result = (*runner)->Run(plan);
  EXPECT_TRUE(result.ok()) << result.status().ToString();
  return std::move(*result);
}

#define CHECK_NEAR_OR_RETURN(got, want, tol)                                                  \
  do {                                                                                        \
    double g_ = (got), w_ = (want);                                                           \
    if (!(std::fabs(g_ - w_) <= (tol))) {                                                     \
      return std::string(#got) + " = " + std::to_string(g_) + ", want " + std::to_string(w_); \
    }                                                                                         \
  } while (0)

// One timed run; returns the first timing mismatch, or "" when every figure matches.
std::string TimedRunMismatch() {
  FakeServerOptions opt;
  opt.tokens_per_response = 6;
  opt.first_token_delay_us = 40000;
  opt.inter_token_delays_us = {10000, 20000};
  opt.cached_tokens = 3;
  opt.record_send_times = true;
  auto server = StartServer(opt);
  if (server == nullptr) return "no server";
  auto specs = Specs(8, 6);
  RunPlan plan;
  plan.specs = &specs;
  plan.num_requests = 8;
  plan.request_rate = INFINITY;
  plan.max_concurrency = 4;
  RunResult result = RunOrDie(TargetFor(*server), plan);
  EXPECT_EQ(result.records.size(), 8u);
  std::vector<double> want_ttft, want_itl, want_tpot, want_e2el;
  for (const auto& r : result.records) {
    // Structure: exact whatever the machine's load.
    EXPECT_TRUE(r.success) << r.error;
    EXPECT_EQ(r.http_status, 200);
    EXPECT_EQ(r.output_tokens, 6);
    EXPECT_EQ(r.num_chunks, 6);
    EXPECT_EQ(r.usage_prompt_tokens, 5);
    EXPECT_EQ(r.cached_tokens, 3);
    EXPECT_EQ(r.finish_reason, "length");
    std::vector<int64_t> sent = server->SendTimes("bench-" + std::to_string(r.index));
    EXPECT_EQ(sent.size(), 6u);
    EXPECT_EQ(r.itl_ns.size(), 5u);
    if (sent.size() != 6 || r.itl_ns.size() != 5) return "wrong event count";
    int64_t got = r.first_token_ns;
    for (size_t k = 0; k < sent.size(); ++k) {
      if (k > 0) got += r.itl_ns[k - 1];
      EXPECT_GE(got, sent[k]) << "token " << k << " seen before it was sent";
      CHECK_NEAR_OR_RETURN((got - sent[k]) * 1e-6, 0.0, kTolMs);
      if (k > 0) want_itl.push_back((sent[k] - sent[k - 1]) * 1e-6);
    }
    CHECK_NEAR_OR_RETURN((r.end_ns - sent.back()) * 1e-6, 0.0, kTolMs);
    want_ttft.push_back((sent[0] - r.send_ns) * 1e-6);
    want_e2el.push_back((sent.back() - r.send_ns) * 1e-6);
    want_tpot.push_back((sent.back() - sent[0]) * 1e-6 / 5);
    // The schedule itself (the server is late only when the machine is very busy).
    EXPECT_NEAR(r.TtftMs(), 40.0, 25.0);
    EXPECT_NEAR(r.E2eMs(), 110.0, 25.0);
  }

  Summary s = Summarize(result.records, result.DurationSeconds(), Slo{});
  EXPECT_EQ(s.completed, 8);
  EXPECT_EQ(s.failed, 0);
  EXPECT_EQ(s.total_input_tokens, 40);
  EXPECT_EQ(s.total_output_tokens, 48);
  EXPECT_EQ(s.total_cached_tokens, 24);
  EXPECT_EQ(s.max_concurrent_requests, 4);
  Distribution ttft = Summarize(want_ttft), itl = Summarize(want_itl), tpot = Summarize(want_tpot),
               e2el = Summarize(want_e2el);
  CHECK_NEAR_OR_RETURN(s.ttft_ms.mean, ttft.mean, kTolMs);
  CHECK_NEAR_OR_RETURN(s.ttft_ms.p99, ttft.p99, kTolMs);
  CHECK_NEAR_OR_RETURN(s.tpot_ms.median, tpot.median, kTolMs / 5);
  CHECK_NEAR_OR_RETURN(s.tpot_ms.p99, tpot.p99, kTolMs / 5);
  CHECK_NEAR_OR_RETURN(s.itl_ms.mean, itl.mean, kTolMs);
  CHECK_NEAR_OR_RETURN(s.itl_ms.median, itl.median, kTolMs);
  CHECK_NEAR_OR_RETURN(s.itl_ms.p90, itl.p90, kTolMs);
  CHECK_NEAR_OR_RETURN(s.e2el_ms.mean, e2el.mean, kTolMs);
  CHECK_NEAR_OR_RETURN(s.e2el_ms.p99, e2el.p99, kTolMs);

  // Goodput: an SLO between the real values splits the requests exactly as the real values do.
  double ttft_slo = ttft.median + 0.5 * (ttft.max - ttft.median);
  int64_t want_good = 0;
  for (double v : want_ttft) want_good += v <= ttft_slo;
  Slo slo;
  slo.ttft_ms = ttft_slo;
  if (ttft.max - ttft.median > 2 * kTolMs + 1) {  // a gap wide enough to split cleanly
    Summary g = Summarize(result.records, result.DurationSeconds(), slo);
    CHECK_NEAR_OR_RETURN(g.num_good, want_good, 0);
    CHECK_NEAR_OR_RETURN(g.request_goodput, want_good / g.duration_s, 1e-9);
  }
  slo = Slo{};
  slo.tpot_ms = tpot.max + kTolMs;
  CHECK_NEAR_OR_RETURN(Summarize(result.records, result.DurationSeconds(), slo).num_good, 8, 0);
  slo.ttft_ms = ttft.min - kTolMs;  // nobody makes it
  Summary none = Summarize(result.records, result.DurationSeconds(), slo);
  EXPECT_EQ(none.num_good, 0);
  EXPECT_EQ(none.request_goodput, 0.0);
  EXPECT_EQ(none.slo_attainment, 0.0);
  return "";
}

// The server writes each token at a scheduled time and records when it really wrote it. The
// driver's timestamps must match those write times within kTolMs, and so must TTFT, ITL, TPOT,
// E2E and goodput computed from them. This machine is shared: a run where a thread was not
// scheduled for a few ms is repeated (a wrong definition fails every attempt).
TEST(DriverFakeServerTest, TimingsMatchTheServerSchedule) {
  std::string mismatch;
  for (int attempt = 0; attempt < 4; ++attempt) {
    mismatch = TimedRunMismatch();
    if (mismatch.empty()) break;
    std::printf("attempt %d: %s\n", attempt, mismatch.c_str());
  }
  EXPECT_EQ(mismatch, "");
}

TEST(DriverFakeServerTest, CompletionsEndpointAndKeepAlive) {
  FakeServerOptions opt;
  opt.tokens_per_response = 0;  // honour max_tokens
  auto server = StartServer(opt);
  ASSERT_NE(server, nullptr);
  auto specs = Specs(20, 7);
  RunPlan plan;
  plan.specs = &specs;
  plan.num_requests = 20;
  plan.request_rate = INFINITY;
  plan.max_concurrency = 1;
  RunResult result = RunOrDie(TargetFor(*server, EndpointKind::kCompletions), plan);
  ASSERT_EQ(result.records.size(), 20u);
  for (const auto& r : result.records) {
    ASSERT_TRUE(r.success) << r.error;
    EXPECT_EQ(r.output_tokens, 7);
  }
  EXPECT_EQ(server->num_connections(), 1);  // one keep-alive connection served them all
  EXPECT_EQ(server->num_generation_requests(), 20);
}

TEST(DriverFakeServerTest, FailuresAreCountedWithTheirReason) {
  FakeServerOptions opt;
  opt.tokens_per_response = 4;
  opt.fail_every = 3;
  auto server = StartServer(opt);
  ASSERT_NE(server, nullptr);
  auto specs = Specs(12, 4);
  RunPlan plan;
  plan.specs = &specs;
  plan.num_requests = 12;
  plan.request_rate = INFINITY;
  plan.max_concurrency = 1;
  RunResult result = RunOrDie(TargetFor(*server), plan);
  Summary s = Summarize(result.records, result.DurationSeconds(), Slo{});
  EXPECT_EQ(s.completed, 8);
  EXPECT_EQ(s.failed, 4);
  EXPECT_EQ(s.aborted, 0);
  EXPECT_EQ(s.total_output_tokens, 32);
  ASSERT_EQ(s.errors.size(), 1u);
  EXPECT_NE(s.errors[0].find("HTTP 500"), std::string::npos) << s.errors[0];
  EXPECT_NE(s.errors[0].find("injected failure"), std::string::npos) << s.errors[0];
}

TEST(DriverFakeServerTest, ErrorEventInsideTheStreamFails) {
  FakeServerOptions opt;
  opt.tokens_per_response = 5;
  opt.stream_error_every = 2;
  auto server = StartServer(opt);
  ASSERT_NE(server, nullptr);
  auto specs = Specs(6, 5);
  RunPlan plan;
  plan.specs = &specs;
  plan.num_requests = 6;
  plan.request_rate = INFINITY;
  plan.max_concurrency = 2;
  RunResult result = RunOrDie(TargetFor(*server), plan);
  Summary s = Summarize(result.records, result.DurationSeconds(), Slo{});
  EXPECT_EQ(s.completed, 3);
  EXPECT_EQ(s.failed, 3);
  ASSERT_FALSE(s.errors.empty());
  EXPECT_NE(s.errors[0].find("injected stream error"), std::string::npos) << s.errors[0];
}

TEST(DriverFakeServerTest, AbortsAreCountedApartFromFailures) {
  FakeServerOptions opt;
  opt.tokens_per_response = 10;
  opt.first_token_delay_us = 5000;
  opt.inter_token_delays_us = {5000};
  auto server = StartServer(opt);
  ASSERT_NE(server, nullptr);
  auto specs = Specs(8, 10);
  specs[1].abort_after_tokens = 3;
  specs[4].abort_after_tokens = 1;
  RunPlan plan;
  plan.specs = &specs;
  plan.num_requests = 8;
  plan.request_rate = INFINITY;
  plan.max_concurrency = 8;
  RunResult result = RunOrDie(TargetFor(*server), plan);
  Summary s = Summarize(result.records, result.DurationSeconds(), Slo{});
  EXPECT_EQ(s.completed, 6);
  EXPECT_EQ(s.failed, 0);
  EXPECT_EQ(s.aborted, 2);
  for (const auto& r : result.records) {
    if (r.index == 1 || r.index == 4) {
      EXPECT_TRUE(r.aborted);
      EXPECT_EQ(r.num_chunks, r.index == 1 ? 3 : 1);
      EXPECT_TRUE(r.error.empty());
    }
  }
  server->Stop();  // the server notices the cut streams on its next write
  EXPECT_EQ(server->num_client_disconnects(), 2);
}

TEST(DriverFakeServerTest, AbortFractionIsSeededAndApplied) {
  FakeServerOptions opt;
  opt.tokens_per_response = 8;
  opt.inter_token_delays_us = {2000};
  auto server = StartServer(opt);
  ASSERT_NE(server, nullptr);
  auto specs = Specs(40, 8);
  RunPlan plan;
  plan.specs = &specs;
  plan.num_requests = 40;
  plan.request_rate = INFINITY;
  plan.max_concurrency = 10;
  plan.abort_fraction = 0.5;
  plan.seed = 7;
  auto aborted_set = [&] {
    RunResult result = RunOrDie(TargetFor(*server), plan);
    std::vector<int64_t> ids;
    for (const auto& r : result.records) {
      EXPECT_TRUE(r.success || r.aborted) << r.error;
      if (r.aborted) ids.push_back(r.index);
    }
    std::sort(ids.begin(), ids.end());
    return ids;
  };
  auto first = aborted_set();
  EXPECT_GT(first.size(), 10u);
  EXPECT_LT(first.size(), 30u);
  EXPECT_EQ(aborted_set(), first);  // same seed, same requests aborted
}

TEST(DriverFakeServerTest, TimeoutFailsTheRequest) {
  FakeServerOptions opt;
  opt.tokens_per_response = 2;
  opt.first_token_delay_us = 400000;
  auto server = StartServer(opt);
  ASSERT_NE(server, nullptr);
  auto specs = Specs(2, 2);
  RunPlan plan;
  plan.specs = &specs;
  plan.num_requests = 2;
  plan.request_rate = INFINITY;
  plan.timeout_s = 0.05;
  RunResult result = RunOrDie(TargetFor(*server), plan);
  for (const auto& r : result.records) {
    EXPECT_FALSE(r.success);
    EXPECT_NE(r.error.find("timeout"), std::string::npos) << r.error;
    EXPECT_NEAR(r.E2eMs(), 50.0, 5.0);
  }
}

TEST(DriverFakeServerTest, ConnectionRefusedFailsFast) {
  ApiTarget t;
  ASSERT_TRUE(ParseBaseUrl("http://127.0.0.1:1", &t).ok());
  t.model = "x";
  auto specs = Specs(3, 2);
  RunPlan plan;
  plan.specs = &specs;
  plan.num_requests = 3;
  plan.request_rate = INFINITY;
  RunResult result = RunOrDie(t, plan);
  ASSERT_EQ(result.records.size(), 3u);
  for (const auto& r : result.records) {
    EXPECT_FALSE(r.success);
    EXPECT_NE(r.error.find("connect"), std::string::npos) << r.error;
  }
}

TEST(DriverFakeServerTest, RateLimitedRunTakesAboutTheExpectedTime) {
  FakeServerOptions opt;
  opt.tokens_per_response = 2;
  auto server = StartServer(opt);
  ASSERT_NE(server, nullptr);
  auto specs = Specs(10, 2);
  RunPlan plan;
  plan.specs = &specs;
  plan.num_requests = 100;
  plan.request_rate = 200;  // mean gap 5 ms
  plan.burstiness = 1.0;
  plan.seed = 3;
  RunResult result = RunOrDie(TargetFor(*server), plan, /*io_threads=*/2);
  ASSERT_EQ(result.records.size(), 100u);
  for (const auto& r : result.records) {
    EXPECT_TRUE(r.success) << r.error;
    EXPECT_GE(r.send_ns, r.scheduled_ns);
  }
  // 100 exponential gaps of mean 5 ms: 0.5 s, sd 0.05 s.
  EXPECT_NEAR(result.DurationSeconds(), 0.5, 0.2);
}

TEST(DriverFakeServerTest, DurationModeStopsReleasing) {
  FakeServerOptions opt;
  opt.tokens_per_response = 2;
  opt.first_token_delay_us = 20000;
  opt.inter_token_delays_us = {20000};
  auto server = StartServer(opt);
  ASSERT_NE(server, nullptr);
  auto specs = Specs(3, 2);
  RunPlan plan;
  plan.specs = &specs;
  plan.duration_s = 0.4;
  plan.request_rate = INFINITY;
  plan.max_concurrency = 2;
  RunResult result = RunOrDie(TargetFor(*server), plan);
  // Each request takes ~40 ms; two at a time for 0.4 s is ~20 (the last ones finish after).
  EXPECT_GE(result.records.size(), 16u);
  EXPECT_LE(result.records.size(), 22u);
  for (const auto& r : result.records) EXPECT_TRUE(r.success) << r.error;
  EXPECT_LT(result.DurationSeconds(), 0.5);
}

}  // namespace
}  // namespace strata::bench
