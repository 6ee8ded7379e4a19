// RunBench end to end against the in-process fake server: a single run with warmup, aborts and
// goodput writes a result JSON and JSONL that add up; a rate sweep writes CSV, SVG and one JSON
// per point; bad flags are named.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bench/driver/bench.h"
#include "bench/driver/fake_server.h"
#include "tests/unit/bench/xml_check.h"

namespace strata::bench {
namespace {

namespace fs = std::filesystem;

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class BenchRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* assets = std::getenv("STRATA_TEST_ASSETS");
    tokenizer_ = assets ? std::string(assets) + "/tokenizers/qwen3" : "";
    if (tokenizer_.empty() || !fs::exists(tokenizer_ + "/tokenizer.json")) {
      GTEST_SKIP() << "test assets missing (STRATA_TEST_ASSETS/tokenizers/qwen3); run "
                      "scripts/fetch-test-assets";
    }
    dir_ = fs::temp_directory_path() / ("bench_run_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    null_ = std::fopen("/dev/null", "w");
  }
  void TearDown() override {
    if (null_) std::fclose(null_);
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  BenchConfig Config(const FakeOpenAiServer& server) {
    BenchConfig c;
    c.base_url = server.base_url() + "/v1";
    c.model = "fake";
    c.tokenizer = tokenizer_;
    c.workload.input_len = 32;
    c.workload.output_len = 6;
    c.workload.seed = 5;
    c.progress = "off";
    return c;
  }

  std::string tokenizer_;
  fs::path dir_;
  std::FILE* null_ = nullptr;
};

TEST_F(BenchRunTest, SingleRunWritesConsistentResults) {
  FakeServerOptions opt;
  opt.inter_token_delays_us = {1000};
  opt.fail_every = 7;
  auto server = FakeOpenAiServer::Start(opt);
  ASSERT_TRUE(server.ok());
  BenchConfig c = Config(**server);
  c.num_prompts = 30;
  c.warmup = 3;
  c.max_concurrency = 4;
  c.request_rate = "500";
  c.abort_fraction = 0.2;
  c.goodput = {"ttft:5000"};
  c.ignore_eos = true;
  c.result_json = (dir_ / "r.json").string();
  c.requests_jsonl = (dir_ / "r.jsonl").string();
  Status s = RunBench(c, null_);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ((*server)->num_generation_requests(), 33);  // warmup + measured
  auto j = nlohmann::json::parse(Slurp(c.result_json));
  int64_t completed = j["completed"], failed = j["failed"], aborted = j["aborted"];
  EXPECT_EQ(completed + failed + aborted, 30);
  EXPECT_GT(failed, 0);   // every 7th request of the server's count fails
  EXPECT_GT(aborted, 0);  // 20% abort
  EXPECT_EQ(j["total_output_tokens"], completed * 6);
  EXPECT_EQ(j["total_input_tokens"], completed * 32);
  EXPECT_EQ(j["request_rate"], 500.0);
  EXPECT_EQ(j["max_concurrency"], 4);
  EXPECT_EQ(j["backend"], "openai-chat");
  EXPECT_EQ(j["strata"]["server_version"]["version"], "fake-openai-server");
  EXPECT_EQ(j["strata"]["settings"]["ignore_eos"], true);
  EXPECT_NEAR(j["request_goodput"].get<double>(), j["request_throughput"].get<double>(), 1e-9);
  std::ifstream in(c.requests_jsonl);
  std::string line;
  int lines = 0, ok = 0;
  while (std::getline(in, line)) {
    auto row = nlohmann::json::parse(line);
    ++lines;
    ok += row["status"] == "ok";
  }
  EXPECT_EQ(lines, 30);
  EXPECT_EQ(ok, completed);
}

TEST_F(BenchRunTest, RateSweepWritesCsvSvgAndPoints) {
  FakeServerOptions opt;
  opt.first_token_delay_us = 2000;
  auto server = FakeOpenAiServer::Start(opt);
  ASSERT_TRUE(server.ok());
  BenchConfig c = Config(**server);
  c.endpoint = "completions";
  c.num_prompts = 20;
  c.sweep_rates = "100,400,inf";
  c.sweep_out = (dir_ / "sweep").string();
  c.goodput = {"ttft:1000", "tpot:1000"};
  Status s = RunBench(c, null_);
  ASSERT_TRUE(s.ok()) << s.ToString();
  std::string csv = Slurp(c.sweep_out + "/sweep.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 4);  // header + 3 points
  EXPECT_NE(csv.find("\"rate=inf\",inf,"), std::string::npos);
  std::string why;
  EXPECT_TRUE(IsWellFormedXml(Slurp(c.sweep_out + "/sweep.svg"), &why)) << why;
  for (const char* point : {"rate_100", "rate_400", "rate_inf"}) {
    auto j = nlohmann::json::parse(Slurp(c.sweep_out + "/" + point + ".json"));
    EXPECT_EQ(j["completed"], 20) << point;
    EXPECT_EQ(j["backend"], "openai");
    EXPECT_TRUE(fs::exists(c.sweep_out + "/" + point + ".requests.jsonl"));
  }
}

TEST_F(BenchRunTest, PrefixDatasetSendsEachRequestOnce) {
  auto server = FakeOpenAiServer::Start({});
  ASSERT_TRUE(server.ok());
  BenchConfig c = Config(**server);
  c.workload.dataset = "prefix";
  c.workload.prefix_groups = 2;
  c.workload.prefix_requests = 3;
  c.workload.prefix_len = 16;
  c.warmup = 1;  // num_prompts stays at its default of 1000
  c.result_json = (dir_ / "p.json").string();
  Status s = RunBench(c, null_);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ((*server)->num_generation_requests(), 6);
  auto j = nlohmann::json::parse(Slurp(c.result_json));
  EXPECT_EQ(j["completed"], 5);
  EXPECT_EQ(j["num_prompts"], 5);
  EXPECT_EQ(j["total_input_tokens"], 5 * (16 + 32));
}

TEST_F(BenchRunTest, BadSettingsNameTheirFlag) {
  auto server = FakeOpenAiServer::Start({});
  ASSERT_TRUE(server.ok());
  auto expect_flag = [&](BenchConfig c, const std::string& flag) {
    Status s = RunBench(c, null_);
    EXPECT_FALSE(s.ok()) << flag;
    EXPECT_NE(s.message().find("--" + flag), std::string::npos) << s.message();
  };
  BenchConfig c = Config(**server);
  c.request_rate = "fast";
  expect_flag(c, "request-rate");
  c = Config(**server);
  c.goodput = {"ttft"};
  expect_flag(c, "goodput");
  c = Config(**server);
  c.base_url = "https://x";
  expect_flag(c, "base-url");
  c = Config(**server);
  c.tokenizer = "/nonexistent";
  expect_flag(c, "tokenizer");
  c = Config(**server);
  c.tokenizer = "";
  expect_flag(c, "tokenizer");
  c = Config(**server);
  c.workload.dataset = "sharegpt:/nonexistent.json";
  expect_flag(c, "dataset");
  c = Config(**server);
  c.sweep_rates = "1,2";
  c.sweep_concurrency = "1";
  expect_flag(c, "sweep-rates");
  c = Config(**server);
  c.duration_s = 1;
  expect_flag(c, "duration");  // unlimited rate and concurrency for a duration
  c = Config(**server);
  c.extra_body = "[1]";
  expect_flag(c, "extra-body");
}

}  // namespace
}  // namespace strata::bench
