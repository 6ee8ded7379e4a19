#include "common/config.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace strata {
namespace {

struct ServeConfig {
  int port = 8000;
  std::string host = "127.0.0.1";
  double temperature = 1.0;
  bool verbose = false;
};

void Bind(CLI::App& app, ServeConfig& cfg) {
  AddFlag(app, "port", &cfg.port, "port")->check(CLI::Range(1, 65535));
  AddFlag(app, "host", &cfg.host, "host");
  AddFlag(app, "temperature", &cfg.temperature, "t");
  AddSwitch(app, "verbose", &cfg.verbose, "v");
}

ParseOutcome Parse(CLI::App& app, std::vector<const char*> args) {
  args.insert(args.begin(), "strata");
  testing::internal::CaptureStderr();
  auto out = ParseCommandLine(app, static_cast<int>(args.size()), args.data());
  testing::internal::GetCapturedStderr();
  return out;
}

TEST(ConfigTest, EnvNames) {
  EXPECT_EQ(EnvNameForFlag("--max-num-seqs"), "STRATA_MAX_NUM_SEQS");
  EXPECT_EQ(EnvNameForFlag("port"), "STRATA_PORT");
}

TEST(ConfigTest, FlagsParse) {
  CLI::App app;
  ServeConfig cfg;
  Bind(app, cfg);
  auto out = Parse(app, {"--port", "9001", "--host", "0.0.0.0", "--verbose"});
  ASSERT_EQ(out.kind, ParseOutcome::Kind::kRun) << out.message;
  EXPECT_EQ(cfg.port, 9001);
  EXPECT_EQ(cfg.host, "0.0.0.0");
  EXPECT_TRUE(cfg.verbose);
}

TEST(ConfigTest, EnvironmentOverridesDefaultAndFlagOverridesEnvironment) {
  setenv("STRATA_PORT", "7000", 1);
  setenv("STRATA_TEMPERATURE", "0.5", 1);
  {
    CLI::App app;
    ServeConfig cfg;
    Bind(app, cfg);
    ASSERT_EQ(Parse(app, {}).kind, ParseOutcome::Kind::kRun);
    EXPECT_EQ(cfg.port, 7000);
    EXPECT_DOUBLE_EQ(cfg.temperature, 0.5);
  }
  {
    CLI::App app;
    ServeConfig cfg;
    Bind(app, cfg);
    ASSERT_EQ(Parse(app, {"--port", "7100"}).kind, ParseOutcome::Kind::kRun);
    EXPECT_EQ(cfg.port, 7100);
  }
  unsetenv("STRATA_PORT");
  unsetenv("STRATA_TEMPERATURE");
}

TEST(ConfigTest, BadValuesNameTheFlag) {
  {
    CLI::App app;
    ServeConfig cfg;
    Bind(app, cfg);
    auto out = Parse(app, {"--port", "notanumber"});
    EXPECT_EQ(out.kind, ParseOutcome::Kind::kError);
    EXPECT_EQ(out.exit_code, 2);
    EXPECT_NE(out.message.find("--port"), std::string::npos) << out.message;
  }
  {
    CLI::App app;
    ServeConfig cfg;
    Bind(app, cfg);
    auto out = Parse(app, {"--port", "70000"});
    EXPECT_EQ(out.kind, ParseOutcome::Kind::kError);
    EXPECT_NE(out.message.find("--port"), std::string::npos) << out.message;
  }
  {
    setenv("STRATA_PORT", "abc", 1);
    CLI::App app;
    ServeConfig cfg;
    Bind(app, cfg);
    auto out = Parse(app, {});
    unsetenv("STRATA_PORT");
    EXPECT_EQ(out.kind, ParseOutcome::Kind::kError);
    EXPECT_NE(out.message.find("--port"), std::string::npos) << out.message;
  }
}

TEST(ConfigTest, ByteSizesTakeUnits) {
  EXPECT_EQ(*ParseByteSize("1073741824"), 1073741824u);
  EXPECT_EQ(*ParseByteSize("0"), 0u);
  EXPECT_EQ(*ParseByteSize("8Gi"), 8ull << 30);
  EXPECT_EQ(*ParseByteSize("8GiB"), 8ull << 30);
  EXPECT_EQ(*ParseByteSize("8gib"), 8ull << 30);
  EXPECT_EQ(*ParseByteSize("512Mi"), 512ull << 20);
  EXPECT_EQ(*ParseByteSize("4Ki"), 4096u);
  EXPECT_EQ(*ParseByteSize("2Ti"), 2ull << 40);
  EXPECT_EQ(*ParseByteSize("2G"), 2000000000u);
  EXPECT_EQ(*ParseByteSize("2GB"), 2000000000u);
  EXPECT_EQ(*ParseByteSize("3k"), 3000u);
  EXPECT_EQ(*ParseByteSize("100B"), 100u);
  EXPECT_EQ(*ParseByteSize("1.5GiB"), 3ull << 29);
  EXPECT_EQ(*ParseByteSize("1.1k"), 1100u);  // exact, not 1099.99...
  EXPECT_EQ(*ParseByteSize("0.5"), 0u);      // a fraction of a byte is dropped
  EXPECT_EQ(*ParseByteSize("9223372036854775807"), 9223372036854775807u);
}

TEST(ConfigTest, ByteSizeTextReadsBack) {
  EXPECT_EQ(ByteSizeText(1ull << 30), "1Gi");
  EXPECT_EQ(ByteSizeText(32ull << 20), "32Mi");
  EXPECT_EQ(ByteSizeText(1536), "1536");
  EXPECT_EQ(ByteSizeText(3ull << 40), "3Ti");
  EXPECT_EQ(ByteSizeText(4096ull << 40), "4096Ti");
  EXPECT_EQ(ByteSizeText(0), "0");
  for (uint64_t bytes : {0ull, 1ull, 1000ull, 1536ull, 1ull << 30, 3ull << 29, 5ull << 40}) {
    EXPECT_EQ(*ParseByteSize(ByteSizeText(bytes)), bytes);
  }
}

TEST(ConfigTest, BadByteSizesSayWhy) {
  for (const char* bad : {"", "-5", "+5", "G", "1.", "1.5.2", "8Xi", "8Gx", "8 Gi", "8iG", "1e9",
                          "9223372036854775808", "99999999999999999999", "9000000Ti", "8Pi"}) {
    StatusOr<uint64_t> parsed = ParseByteSize(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(parsed.status().message().find(std::string("'") + bad + "'"), std::string::npos)
        << parsed.status().message();
  }
}

TEST(ConfigTest, ByteSizeFlagsParseUnitsAndNameTheFlagWhenBad) {
  {
    CLI::App app;
    int64_t kv = 1;
    uint64_t pool = 1;
    AddByteSizeFlag(app, "kv-cache-bytes", &kv, "KV");
    AddByteSizeFlag(app, "capacity-bytes", &pool, "pool");
    setenv("STRATA_CAPACITY_BYTES", "2Gi", 1);
    auto out = Parse(app, {"--kv-cache-bytes", "512Mi"});
    unsetenv("STRATA_CAPACITY_BYTES");
    ASSERT_EQ(out.kind, ParseOutcome::Kind::kRun) << out.message;
    EXPECT_EQ(kv, 512 << 20);
    EXPECT_EQ(pool, 2ull << 30);
  }
  {
    CLI::App app;
    uint64_t pool = 1;
    AddByteSizeFlag(app, "capacity-bytes", &pool, "pool");
    auto out = Parse(app, {"--capacity-bytes", "-5"});
    EXPECT_EQ(out.kind, ParseOutcome::Kind::kError);
    EXPECT_EQ(out.exit_code, 2);
    EXPECT_NE(out.message.find("--capacity-bytes"), std::string::npos) << out.message;
    EXPECT_NE(out.message.find("'-5' is not a byte count"), std::string::npos) << out.message;
    EXPECT_EQ(pool, 1u);
  }
}

TEST(ConfigTest, UnknownFlagIsAnErrorNamingIt) {
  CLI::App app;
  ServeConfig cfg;
  Bind(app, cfg);
  auto out = Parse(app, {"--no-such-flag"});
  EXPECT_EQ(out.kind, ParseOutcome::Kind::kError);
  EXPECT_EQ(out.exit_code, 2);
  EXPECT_NE(out.message.find("--no-such-flag"), std::string::npos) << out.message;
}

TEST(ConfigTest, FlagErrorFormat) {
  Status s = FlagError("--max-num-seqs", "must be at least 1");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "--max-num-seqs: must be at least 1");
}

}  // namespace
}  // namespace strata
