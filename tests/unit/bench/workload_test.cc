// Workloads made with the real DeepSeek-V3 / Qwen3 / Llama 3 tokenizers: exact token counts,
// shared prefixes, reproducibility; and the arrival process's statistics.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "bench/driver/arrivals.h"
#include "bench/driver/workload.h"

namespace strata::bench {
namespace {

std::string TokenizerDir(const std::string& name) {
  const char* assets = std::getenv("STRATA_TEST_ASSETS");
  if (assets == nullptr) return "";
  std::string dir = std::string(assets) + "/tokenizers/" + name;
  return std::filesystem::exists(dir + "/tokenizer.json") ? dir : "";
}

class WorkloadTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string dir = TokenizerDir(GetParam());
    if (dir.empty()) {
      GTEST_SKIP() << "test assets missing (STRATA_TEST_ASSETS/tokenizers/" << GetParam()
                   << "); run scripts/fetch-test-assets";
    }
    auto codec = LoadTokenCodec(dir);
    ASSERT_TRUE(codec.ok()) << codec.status().ToString();
    codec_ = std::move(*codec);
  }

  int Count(const std::string& text) {
    auto ids = codec_->Encode(text);
    EXPECT_TRUE(ids.ok());
    return ids.ok() ? static_cast<int>(ids->size()) : -1;
  }

  std::string TempPath(const std::string& name) {
    return (std::filesystem::temp_directory_path() /
            (GetParam() + "_" + std::to_string(::getpid()) + "_" + name))
        .string();
  }

  std::unique_ptr<TokenCodec> codec_;
};

TEST_P(WorkloadTest, RandomPromptsHaveExactTokenCounts) {
  WorkloadOptions o;
  o.dataset = "random";
  o.num_requests = 40;
  o.input_len = 200;
  o.output_len = 50;
  o.range_ratio = 0.5;
  o.seed = 11;
  auto specs = BuildWorkload(o, *codec_);
  ASSERT_TRUE(specs.ok()) << specs.status().ToString();
  ASSERT_EQ(specs->size(), 40u);
  int min_len = 1 << 30, max_len = 0;
  for (const auto& s : *specs) {
    EXPECT_EQ(Count(s.prompt), s.input_len);
    EXPECT_GE(s.input_len, 100);
    EXPECT_LE(s.input_len, 300);
    EXPECT_GE(s.output_len, 25);
    EXPECT_LE(s.output_len, 75);
    min_len = std::min(min_len, s.input_len);
    max_len = std::max(max_len, s.input_len);
  }
  EXPECT_LT(min_len, max_len);  // the range ratio spreads lengths
}

TEST_P(WorkloadTest, TinyAndLargePromptsAreExact) {
  PromptMaker maker(*codec_);
  std::mt19937_64 rng(5);
  for (int n : {1, 2, 3, 7, 64, 2048}) {
    auto text = maker.Make("", 0, n, rng);
    ASSERT_TRUE(text.ok()) << text.status().ToString();
    EXPECT_EQ(Count(*text), n);
  }
}

TEST_P(WorkloadTest, SameSeedSameWorkload) {
  WorkloadOptions o;
  o.dataset = "random";
  o.num_requests = 10;
  o.input_len = 64;
  o.range_ratio = 0.3;
  o.seed = 42;
  auto a = BuildWorkload(o, *codec_);
  auto b = BuildWorkload(o, *codec_);
  o.seed = 43;
  auto c = BuildWorkload(o, *codec_);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  int differing = 0;
  for (size_t i = 0; i < a->size(); ++i) {
    EXPECT_EQ((*a)[i].prompt, (*b)[i].prompt);
    EXPECT_EQ((*a)[i].input_len, (*b)[i].input_len);
    EXPECT_EQ((*a)[i].output_len, (*b)[i].output_len);
    differing += (*a)[i].prompt != (*c)[i].prompt;
  }
  EXPECT_EQ(differing, 10);
}

TEST_P(WorkloadTest, PrefixGroupsSharePrefixes) {
  WorkloadOptions o;
  o.dataset = "prefix";
  o.prefix_groups = 3;
  o.prefix_requests = 4;
  o.prefix_len = 100;
  o.input_len = 30;
  o.output_len = 8;
  o.seed = 1;
  auto specs = BuildWorkload(o, *codec_);
  ASSERT_TRUE(specs.ok()) << specs.status().ToString();
  ASSERT_EQ(specs->size(), 12u);
  // Group requests by their first 40 bytes: three groups of four.
  std::map<std::string, std::vector<const RequestSpec*>> groups;
  for (const auto& s : *specs) {
    EXPECT_EQ(s.input_len, 130);
    EXPECT_EQ(Count(s.prompt), 130);
    groups[s.prompt.substr(0, 40)].push_back(&s);
  }
  ASSERT_EQ(groups.size(), 3u);
  for (const auto& [head, members] : groups) {
    ASSERT_EQ(members.size(), 4u);
    // Members share a prefix that encodes to (almost all of) the 100 prefix tokens.
    size_t common = members[0]->prompt.size();
    for (const auto* m : members) {
      size_t k = 0;
      while (k < common && k < m->prompt.size() && m->prompt[k] == members[0]->prompt[k]) ++k;
      common = k;
    }
    EXPECT_GE(Count(members[0]->prompt.substr(0, common)), 99);
  }
}

TEST_P(WorkloadTest, ShareGptTakesHumanPromptAndGptLength) {
  std::string path = TempPath("sharegpt.json");
  {
    std::ofstream out(path);
    out << R"([
      {"id":"a","conversations":[{"from":"human","value":"What is the capital of France? Answer briefly."},
                                 {"from":"gpt","value":"The capital of France is Paris, a city on the Seine."}]},
      {"id":"b","conversations":[{"from":"human","value":"hi"},{"from":"gpt","value":"Hello there, how can I help you today?"}]},
      {"id":"c","conversations":[{"from":"gpt","value":"starts with gpt: skipped"},{"from":"human","value":"x y z w v"}]},
      {"id":"d","conversations":[{"from":"human","value":"only one turn"}]},
      {"id":"e","conversations":[{"from":"human","value":"Write a haiku about the sea, please, with care."},
                                 {"from":"gpt","value":"Waves fold into foam / salt wind carries gull voices / the tide keeps its time"}]}
    ])";
  }
  WorkloadOptions o;
  o.dataset = "sharegpt:" + path;
  o.num_requests = 10;
  o.seed = 3;
  auto specs = BuildWorkload(o, *codec_);
  std::filesystem::remove(path);
  ASSERT_TRUE(specs.ok()) << specs.status().ToString();
  ASSERT_EQ(specs->size(), 2u);  // "hi" is under 4 tokens; c and d have no human->gpt pair
  for (const auto& s : *specs) {
    EXPECT_EQ(Count(s.prompt), s.input_len);
    bool france = s.prompt.find("France") != std::string::npos;
    EXPECT_EQ(s.output_len,
              Count(france ? "The capital of France is Paris, a city on the Seine."
                           : "Waves fold into foam / salt wind carries gull voices / the tide "
                             "keeps its time"));
  }
  o.output_len_fixed = true;
  o.output_len = 77;
  o.dataset = "sharegpt:/nonexistent/file.json";
  auto missing = BuildWorkload(o, *codec_);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

TEST_P(WorkloadTest, TraceHashIdsGiveSharedPrefixesAndArrivals) {
  std::string path = TempPath("trace.jsonl");
  {
    std::ofstream out(path);
    out << R"({"timestamp": 1000, "input_length": 40, "output_length": 5, "hash_ids": [1, 2, 3]})"
        << "\n"
        << R"({"timestamp": 1500, "input_length": 35, "output_length": 6, "hash_ids": [1, 2, 4]})"
        << "\n\n"
        << R"({"timestamp": 1200, "input_length": 20, "output_length": 7, "hash_ids": [1, 2]})"
        << "\n"
        << R"({"timestamp": 3000, "input_length": 40, "output_length": 8, "hash_ids": [9, 2, 3]})"
        << "\n";
  }
  WorkloadOptions o;
  o.dataset = "trace:" + path;
  o.num_requests = 100;
  o.trace_block_size = 10;
  o.seed = 9;
  auto specs = BuildWorkload(o, *codec_);
  ASSERT_TRUE(specs.ok()) << specs.status().ToString();
  ASSERT_EQ(specs->size(), 4u);
  // Sorted by timestamp: 1000, 1200, 1500, 3000.
  EXPECT_DOUBLE_EQ((*specs)[0].arrival_s, 0.0);
  EXPECT_DOUBLE_EQ((*specs)[1].arrival_s, 0.2);
  EXPECT_DOUBLE_EQ((*specs)[2].arrival_s, 0.5);
  EXPECT_DOUBLE_EQ((*specs)[3].arrival_s, 2.0);
  const std::vector<int> want_in = {40, 20, 35, 40}, want_out = {5, 7, 6, 8};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ((*specs)[i].input_len, want_in[i]);
    EXPECT_EQ(Count((*specs)[i].prompt), want_in[i]) << i;
    EXPECT_EQ((*specs)[i].output_len, want_out[i]);
  }
  const std::string& a = (*specs)[0].prompt;  // [1,2,3]
  const std::string& b = (*specs)[1].prompt;  // [1,2]: all of it is a's first two blocks
  const std::string& c = (*specs)[2].prompt;  // [1,2,4]
  const std::string& d = (*specs)[3].prompt;  // [9,2,3]: different first block
  EXPECT_EQ(a.substr(0, b.size()), b);
  EXPECT_EQ(c.substr(0, b.size()), b);
  EXPECT_NE(d.substr(0, 10), a.substr(0, 10));
  auto bad = [&](const std::string& line) {
    std::ofstream(path) << line << "\n";
    return BuildWorkload(o, *codec_).status();
  };
  EXPECT_EQ(bad(R"({"timestamp": 1, "input_length": 4})").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad("not json").code(), StatusCode::kDataLoss);
  std::filesystem::remove(path);
}

INSTANTIATE_TEST_SUITE_P(RealTokenizers, WorkloadTest,
                         ::testing::Values("deepseek_v3", "qwen3", "llama3"));

TEST(WorkloadOptionsTest, RejectsBadOptions) {
  WorkloadOptions o;
  o.dataset = "bogus";
  EXPECT_EQ(ValidateWorkloadOptions(o).code(), StatusCode::kInvalidArgument);
  o.dataset = "sharegpt:";
  EXPECT_FALSE(ValidateWorkloadOptions(o).ok());
  o.dataset = "random";
  o.range_ratio = 1.0;
  EXPECT_FALSE(ValidateWorkloadOptions(o).ok());
  o.range_ratio = 0;
  o.dataset = "prefix";
  o.prefix_len = 0;
  EXPECT_FALSE(ValidateWorkloadOptions(o).ok());
  o.prefix_len = 10;
  EXPECT_TRUE(ValidateWorkloadOptions(o).ok());
}

// Gamma(shape b, scale 1/(r b)) gaps: mean 1/r, coefficient of variation 1/sqrt(b).
TEST(ArrivalProcessTest, MeanAndSpreadFollowRateAndBurstiness) {
  for (double burstiness : {0.5, 1.0, 4.0}) {
    auto arrivals = ArrivalProcess::Create(20.0, burstiness, 123);
    ASSERT_TRUE(arrivals.ok());
    const int n = 200000;
    double sum = 0, sq = 0;
    for (int i = 0; i < n; ++i) {
      double g = arrivals->NextGapSeconds();
      ASSERT_GE(g, 0.0);
      sum += g;
      sq += g * g;
    }
    double mean = sum / n;
    double cv = std::sqrt(sq / n - mean * mean) / mean;
    EXPECT_NEAR(mean, 0.05, 0.05 * 0.02) << "burstiness " << burstiness;
    EXPECT_NEAR(cv, 1.0 / std::sqrt(burstiness), 0.03) << "burstiness " << burstiness;
  }
}

TEST(ArrivalProcessTest, SeededAndValidated) {
  auto a = ArrivalProcess::Create(5, 1, 7), b = ArrivalProcess::Create(5, 1, 7);
  ASSERT_TRUE(a.ok() && b.ok());
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a->NextGapSeconds(), b->NextGapSeconds());
  auto inf = ArrivalProcess::Create(INFINITY, 1, 7);
  ASSERT_TRUE(inf.ok());
  EXPECT_TRUE(inf->unlimited());
  EXPECT_EQ(inf->NextGapSeconds(), 0.0);
  EXPECT_FALSE(ArrivalProcess::Create(0, 1, 1).ok());
  EXPECT_FALSE(ArrivalProcess::Create(-1, 1, 1).ok());
  EXPECT_FALSE(ArrivalProcess::Create(NAN, 1, 1).ok());
  EXPECT_FALSE(ArrivalProcess::Create(1, 0, 1).ok());
}

}  // namespace
}  // namespace strata::bench
