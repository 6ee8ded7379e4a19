// Report writers (result JSON, JSONL, CSV, SVG, table), metric definitions and flag parsing.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "bench/driver/api_target.h"
#include "bench/driver/metrics.h"
#include "bench/driver/progress.h"
#include "bench/driver/report.h"
#include "common/clock.h"
#include "tests/unit/bench/xml_check.h"

namespace strata::bench {
namespace {

RequestRecord Record(int64_t index, double ttft_ms, std::vector<double> itl_ms, int tokens) {
  RequestRecord r;
  r.index = index;
  r.input_len = 10;
  r.max_tokens = tokens;
  r.send_ns = 1'000'000'000 + index * 1'000'000;
  r.scheduled_ns = r.send_ns;
  r.first_token_ns = r.send_ns + static_cast<int64_t>(ttft_ms * 1e6);
  int64_t t = r.first_token_ns;
  for (double g : itl_ms) {
    r.itl_ns.push_back(static_cast<int64_t>(g * 1e6));
    t += r.itl_ns.back();
  }
  r.end_ns = t;
  r.num_chunks = static_cast<int>(itl_ms.size()) + 1;
  r.output_tokens = tokens;
  r.http_status = 200;
  r.success = true;
  return r;
}

TEST(MetricsTest, PercentileMatchesNumpyLinear) {
  EXPECT_DOUBLE_EQ(Percentile({1, 2, 3, 4}, 90), 3.7);
  EXPECT_DOUBLE_EQ(Percentile({15, 20, 35, 40, 50}, 40), 29.0);
  EXPECT_DOUBLE_EQ(Percentile({7}, 99), 7.0);
  EXPECT_DOUBLE_EQ(Percentile({}, 50), 0.0);
  Distribution d = Summarize(std::vector<double>{2, 4, 4, 4, 5, 5, 7, 9});
  EXPECT_DOUBLE_EQ(d.mean, 5.0);
  EXPECT_DOUBLE_EQ(d.std, 2.0);  // population std
  EXPECT_DOUBLE_EQ(d.median, 4.5);
}

TEST(MetricsTest, SummaryFollowsVllmDefinitions) {
  std::deque<RequestRecord> records;
  records.push_back(Record(0, 100, {10, 10, 10}, 4));  // TPOT 10, E2E 130
  records.push_back(Record(1, 300, {20, 20, 20}, 4));  // TPOT 20, E2E 360
  records.push_back(Record(2, 50, {}, 1));             // single token: no TPOT
  RequestRecord failed;
  failed.index = 3;
  failed.input_len = 10;
  failed.error = "HTTP 500";
  records.push_back(failed);
  RequestRecord aborted = Record(4, 10, {5}, 2);
  aborted.aborted = true;
  aborted.success = false;
  records.push_back(aborted);
  Slo slo;
  slo.ttft_ms = 200;
  Summary s = Summarize(records, 2.0, slo);
  EXPECT_EQ(s.completed, 3);
  EXPECT_EQ(s.failed, 1);
  EXPECT_EQ(s.aborted, 1);
  EXPECT_EQ(s.total_input_tokens, 30);
  EXPECT_EQ(s.total_output_tokens, 9);
  EXPECT_DOUBLE_EQ(s.request_throughput, 1.5);
  EXPECT_DOUBLE_EQ(s.output_throughput, 4.5);
  EXPECT_DOUBLE_EQ(s.total_token_throughput, 19.5);
  EXPECT_EQ(s.ttft_ms.count, 3);
  EXPECT_NEAR(s.ttft_ms.mean, 150.0, 1e-9);
  EXPECT_EQ(s.tpot_ms.count, 2);
  EXPECT_NEAR(s.tpot_ms.mean, 15.0, 1e-9);
  EXPECT_EQ(s.itl_ms.count, 6);
  EXPECT_NEAR(s.itl_ms.mean, 15.0, 1e-9);
  EXPECT_NEAR(s.e2el_ms.max, 360.0, 1e-9);
  EXPECT_EQ(s.num_good, 2);  // TTFT 100 and 50 make 200 ms
  EXPECT_DOUBLE_EQ(s.request_goodput, 1.0);
  EXPECT_DOUBLE_EQ(s.slo_attainment, 0.5);  // 2 good of 3 completed + 1 failed
  ASSERT_EQ(s.errors.size(), 1u);
  EXPECT_EQ(s.errors[0], "HTTP 500");
}

TEST(MetricsTest, ParseSloNamesBadItems) {
  auto slo = ParseSlo({"ttft:200", "tpot:12.5", "e2el:1000"});
  ASSERT_TRUE(slo.ok());
  EXPECT_EQ(slo->ttft_ms, 200);
  EXPECT_EQ(slo->tpot_ms, 12.5);
  EXPECT_EQ(slo->e2el_ms, 1000);
  for (const char* bad : {"ttft", "ttft:", "ttft:-1", "ttft:abc", "itl:5", "ttft:inf"}) {
    auto r = ParseSlo({bad});
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(ApiTargetTest, ParsesBaseUrls) {
  ApiTarget t;
  ASSERT_TRUE(ParseBaseUrl("http://localhost:8000/v1", &t).ok());
  EXPECT_EQ(t.host, "localhost");
  EXPECT_EQ(t.port, 8000);
  EXPECT_EQ(t.root_path, "");
  t.kind = EndpointKind::kCompletions;
  EXPECT_EQ(t.GenerationPath(), "/v1/completions");
  ASSERT_TRUE(ParseBaseUrl("http://10.0.0.1/proxy/v1/", &t).ok());
  EXPECT_EQ(t.port, 80);
  EXPECT_EQ(t.root_path, "/proxy");
  EXPECT_EQ(t.VersionPath(), "/proxy/version");
  ASSERT_TRUE(ParseBaseUrl("http://[::1]:9000", &t).ok());
  EXPECT_EQ(t.host, "::1");
  EXPECT_EQ(t.port, 9000);
  for (const char* bad : {"https://x", "ftp://x", "http://", "http://h:0", "http://h:99999",
                          "http://h:8x", "http://[::1"}) {
    EXPECT_EQ(ParseBaseUrl(bad, &t).code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(ApiTargetTest, RequestBodiesAreVllmShaped) {
  ApiTarget t;
  ASSERT_TRUE(ParseBaseUrl("http://h:1", &t).ok());
  t.model = "m";
  t.ignore_eos = true;
  t.extra_body = {{"temperature", 0}};
  RequestSpec spec;
  spec.prompt = "hello \"world\"";
  spec.output_len = 9;
  auto chat = nlohmann::json::parse(BuildRequestBody(t, spec));
  EXPECT_EQ(chat["messages"][0]["content"], spec.prompt);
  EXPECT_EQ(chat["max_completion_tokens"], 9);
  EXPECT_EQ(chat["stream"], true);
  EXPECT_EQ(chat["stream_options"]["include_usage"], true);
  EXPECT_EQ(chat["ignore_eos"], true);
  EXPECT_EQ(chat["temperature"], 0);
  t.kind = EndpointKind::kCompletions;
  auto comp = nlohmann::json::parse(BuildRequestBody(t, spec));
  EXPECT_EQ(comp["prompt"], spec.prompt);
  EXPECT_EQ(comp["max_tokens"], 9);
  std::string http = BuildHttpRequest(t, "{}", "id-1");
  EXPECT_EQ(http.rfind("POST /v1/completions HTTP/1.1\r\n", 0), 0u);
  EXPECT_NE(http.find("Content-Length: 2\r\n"), std::string::npos);
  EXPECT_NE(http.find("X-Request-Id: id-1\r\n"), std::string::npos);
  EXPECT_EQ(http.substr(http.size() - 6), "\r\n\r\n{}");
}

TEST(ReportTest, ResultJsonHasVllmFieldNames) {
  std::deque<RequestRecord> records = {Record(0, 100, {10}, 2), Record(1, 120, {12}, 2)};
  Summary s = Summarize(records, 1.0, Slo{});
  RunHeader h;
  h.date = NowDateString();
  h.backend = "openai-chat";
  h.git_sha = "abc";
  h.settings = {{"seed", 1}};
  PointSettings p{INFINITY, 1.0, 0, 2, ""};
  nlohmann::json j = nlohmann::json::parse(ResultJson(h, p, s, Slo{}).dump());
  for (const char* key : {"date",
                          "backend",
                          "model_id",
                          "tokenizer_id",
                          "num_prompts",
                          "request_rate",
                          "burstiness",
                          "max_concurrency",
                          "duration",
                          "completed",
                          "failed",
                          "total_input_tokens",
                          "total_output_tokens",
                          "request_throughput",
                          "request_goodput",
                          "output_throughput",
                          "total_token_throughput",
                          "max_output_tokens_per_s",
                          "max_concurrent_requests",
                          "mean_ttft_ms",
                          "median_ttft_ms",
                          "std_ttft_ms",
                          "p90_ttft_ms",
                          "p99_ttft_ms",
                          "p99.9_ttft_ms",
                          "mean_tpot_ms",
                          "median_tpot_ms",
                          "p99_tpot_ms",
                          "mean_itl_ms",
                          "median_itl_ms",
                          "p99_itl_ms",
                          "mean_e2el_ms",
                          "median_e2el_ms",
                          "p99_e2el_ms"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["request_rate"], "inf");
  EXPECT_TRUE(j["max_concurrency"].is_null());
  EXPECT_TRUE(j["request_goodput"].is_null());  // no SLO given
  EXPECT_EQ(j["completed"], 2);
  EXPECT_NEAR(j["mean_ttft_ms"].get<double>(), 110.0, 1e-9);
  EXPECT_EQ(j["strata"]["git_sha"], "abc");
  EXPECT_EQ(j["strata"]["settings"]["seed"], 1);
}

TEST(ReportTest, JsonlHasOneValidObjectPerRequest) {
  std::deque<RequestRecord> records = {Record(0, 100, {10, 20}, 3), Record(1, 50, {}, 1)};
  records[1].success = false;
  records[1].error = "boom \"quoted\"\n";
  std::string path =
      (std::filesystem::temp_directory_path() / ("req_" + std::to_string(::getpid()) + ".jsonl"))
          .string();
  ASSERT_TRUE(WriteRequestsJsonl(path, records, 1'000'000'000).ok());
  std::ifstream in(path);
  std::string line;
  std::vector<nlohmann::json> rows;
  while (std::getline(in, line)) rows.push_back(nlohmann::json::parse(line));
  std::filesystem::remove(path);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["status"], "ok");
  EXPECT_NEAR(rows[0]["ttft_ms"].get<double>(), 100.0, 1e-6);
  EXPECT_EQ(rows[0]["itl_ms"].size(), 2u);
  EXPECT_NEAR(rows[0]["itl_ms"][1].get<double>(), 20.0, 1e-6);
  EXPECT_NEAR(rows[0]["tpot_ms"].get<double>(), 15.0, 1e-6);
  EXPECT_EQ(rows[1]["status"], "failed");
  EXPECT_EQ(rows[1]["error"], "boom \"quoted\"\n");
  EXPECT_FALSE(WriteRequestsJsonl("/nonexistent-dir/x.jsonl", records, 0).ok());
}

std::vector<SweepPoint> ThreePoints() {
  std::vector<SweepPoint> pts;
  double ttfts[] = {50, 120, 400};
  for (int i = 0; i < 3; ++i) {
    std::deque<RequestRecord> recs = {Record(0, ttfts[i], {8.0 + 4 * i, 8.0 + 4 * i}, 3)};
    SweepPoint p;
    p.point = {static_cast<double>(1 << i), 1.0, 0, 1, "rate=" + std::to_string(1 << i)};
    p.summary = Summarize(recs, 1.0 / (i + 1), Slo{});
    pts.push_back(p);
  }
  return pts;
}

TEST(ReportTest, SweepCsvIsRectangular) {
  Slo slo;
  slo.ttft_ms = 100;
  std::string csv = SweepCsv(ThreePoints(), slo);
  std::istringstream in(csv);
  std::string line;
  std::vector<std::string> lines;
  while (std::getline(in, line)) lines.push_back(line);
  ASSERT_EQ(lines.size(), 4u);
  auto count = [](const std::string& l) { return std::count(l.begin(), l.end(), ',') + 1; };
  for (const auto& l : lines) EXPECT_EQ(count(l), count(lines[0])) << l;
  EXPECT_EQ(lines[1].rfind("\"rate=1\",1.0000,", 0), 0u) << lines[1];
}

TEST(ReportTest, SweepSvgIsWellFormedAndMarksTheSloCrossing) {
  Slo slo;
  slo.ttft_ms = 100;
  slo.tpot_ms = 10;
  std::string svg = SweepSvg(ThreePoints(), slo, "sweep <test> & more");
  std::string why;
  EXPECT_TRUE(IsWellFormedXml(svg, &why)) << why;
  EXPECT_NE(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  EXPECT_NE(svg.find("sweep &lt;test&gt; &amp; more"), std::string::npos);
  // TTFT 120 at rate=2 is the first past 100 ms; TPOT 12 at rate=2 the first past 10 ms.
  std::regex crossed("SLO crossed at rate=2");
  auto n =
      std::distance(std::sregex_iterator(svg.begin(), svg.end(), crossed), std::sregex_iterator());
  EXPECT_EQ(n, 2);
  EXPECT_EQ(svg.find("SLO crossed at rate=4"), std::string::npos);
  EXPECT_EQ(std::count(svg.begin(), svg.end(), '\n') > 20, true);
  std::string plain = SweepSvg(ThreePoints(), Slo{}, "no slo");
  EXPECT_TRUE(IsWellFormedXml(plain, &why)) << why;
  EXPECT_EQ(plain.find("SLO"), std::string::npos);
  EXPECT_NE(plain.find("class=\"point\""), std::string::npos);
}

TEST(ReportTest, SummaryTableLooksLikeVllms) {
  std::deque<RequestRecord> records = {Record(0, 100, {10}, 2)};
  Summary s = Summarize(records, 1.0, Slo{});
  std::string table = SummaryTable({4.0, 1.0, 8, 1, ""}, s, Slo{});
  EXPECT_NE(table.find("============ Serving Benchmark Result ============"), std::string::npos);
  EXPECT_NE(table.find("Successful requests:                     1"), std::string::npos);
  EXPECT_NE(table.find("Maximum request concurrency:             8"), std::string::npos);
  EXPECT_NE(table.find("Mean TTFT (ms):                          100.00"), std::string::npos);
  EXPECT_NE(table.find("-----Time per Output Token (excl. 1st token)------"), std::string::npos);
}

TEST(XmlCheckTest, RejectsBrokenXml) {
  std::string why;
  EXPECT_TRUE(IsWellFormedXml("<a x=\"1\"><b/>t &amp; u</a>", &why)) << why;
  EXPECT_FALSE(IsWellFormedXml("<a><b></a></b>", &why));
  EXPECT_FALSE(IsWellFormedXml("<a x=1></a>", &why));
  EXPECT_FALSE(IsWellFormedXml("<a>&</a>", &why));
  EXPECT_FALSE(IsWellFormedXml("<a>", &why));
  EXPECT_FALSE(IsWellFormedXml("<a></a><b></b>", &why));
}

}  // namespace
}  // namespace strata::bench

namespace strata::bench {
namespace {

TEST(ProgressTest, LineShowsCountsRatesAndMedianTtft) {
  LiveStats live;
  live.start_ns = MonotonicNanos() - 2'000'000'000;  // started 2 s ago
  live.finished = 3;
  live.succeeded = 2;
  live.failed = 1;
  live.output_tokens = 100;
  live.AddTtft(10);
  live.AddTtft(30);
  std::FILE* null_out = std::fopen("/dev/null", "w");
  ASSERT_NE(null_out, nullptr);
  {
    ProgressReporter tty(live, 10, 0, /*tty=*/true, 5, null_out);
    std::string line = tty.Line();
    EXPECT_NE(line.find("[#######"), std::string::npos) << line;  // 30% of 24 columns
    EXPECT_NE(line.find("3/10 done"), std::string::npos) << line;
    EXPECT_NE(line.find("1.0 req/s"), std::string::npos) << line;
    EXPECT_NE(line.find("50 tok/s"), std::string::npos) << line;
    EXPECT_NE(line.find("p50 TTFT 20.0 ms"), std::string::npos) << line;
    EXPECT_NE(line.find("failed 1"), std::string::npos) << line;
    ProgressReporter plain(live, 0, 4.0, /*tty=*/false, 5, null_out);
    EXPECT_EQ(plain.Line().find('['), std::string::npos);
    EXPECT_NE(plain.Line().find("3 done"), std::string::npos);
  }
  std::fclose(null_out);
}

}  // namespace
}  // namespace strata::bench
