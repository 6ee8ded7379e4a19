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
