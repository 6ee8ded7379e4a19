// EP groups of separate processes over UCX on 127.0.0.1 (`strata generate --ep N` spawns
// `strata ep-worker` processes): greedy outputs equal across EP sizes and transports (BF16
// dispatch), INT8 runs and reports its statistics, a killed worker fails the group fast.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/clock.h"
#include "model/gen_model.h"

namespace strata {
namespace {

namespace fs = std::filesystem;

struct RunResult {
  int exit_code = -1;
  std::string out, err;
  double seconds = 0;
};

std::string Slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class EpIntegrationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* assets = std::getenv("STRATA_TEST_ASSETS");
    if (!assets || !fs::exists(fs::path(assets) / "tokenizers")) return;
    root_ = new fs::path(fs::temp_directory_path() /
                         ("strata_ep_integration_" + std::to_string(getpid())));
    fs::create_directories(*root_);
    model::GenModelOptions o;
    o.arch = model::Arch::kDeepseekV3;
    o.tokenizer_dir = (fs::path(assets) / "tokenizers" / "deepseek_v3").string();
    o.out_dir = (*root_ / "deepseek_v3").string();
    o.seed = 11;
    o.num_threads = 1;
    Status st = model::GenerateModel(o);
    if (!st.ok()) ADD_FAILURE() << st.message();
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

  static std::vector<std::string> Generate(const std::vector<std::string>& extra, int max_tokens) {
    std::vector<std::string> a = {STRATA_BIN,     "generate",
                                  "--model",      (*root_ / "deepseek_v3").string(),
                                  "--prompt",     "The expert parallel group",
                                  "--max-tokens", std::to_string(max_tokens),
                                  "--ignore-eos", "--json",
                                  "--threads",    "1"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }

  // Runs argv with an optional UCX_TLS; `on_start(pid)` runs while it does.
  static RunResult Run(const std::vector<std::string>& argv, const std::string& tls,
                       std::function<void(pid_t)> on_start = nullptr) {
    static int n = 0;
    const fs::path out = *root_ / ("out" + std::to_string(n) + ".txt");
    const fs::path err = *root_ / ("err" + std::to_string(n++) + ".txt");
    Stopwatch watch;
    pid_t pid = fork();
    if (pid == 0) {
      if (!tls.empty()) setenv("UCX_TLS", tls.c_str(), 1);
      freopen(out.c_str(), "w", stdout);
      freopen(err.c_str(), "w", stderr);
      std::vector<char*> args;
      for (const auto& s : argv) args.push_back(const_cast<char*>(s.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    if (on_start) on_start(pid);
    int status = 0;
    waitpid(pid, &status, 0);
    RunResult r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = Slurp(out);
    r.err = Slurp(err);
    r.seconds = watch.ElapsedSeconds();
    return r;
  }

  static nlohmann::json Json(const RunResult& r) {
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.out << r.err;
    return j;
  }

  static fs::path* root_;
};
fs::path* EpIntegrationTest::root_ = nullptr;

TEST_F(EpIntegrationTest, Bf16GreedyOutputsMatchAcrossEpSizesAndTransports) {
  auto ref = Json(Run(Generate({"--ep", "1", "--ep-dispatch-dtype", "bf16"}, 12), ""));
  ASSERT_TRUE(ref.contains("token_ids"));
  struct Case {
    std::string ep, tls;
  };
  for (const Case& c : {Case{"2", "tcp"}, Case{"2", "sm,tcp"}, Case{"4", "sm,tcp"}}) {
    SCOPED_TRACE("EP " + c.ep + " over " + c.tls);
    auto argv = Generate({"--ep", c.ep, "--ep-dispatch-dtype", "bf16", "--ep-ucx-tls", c.tls}, 12);
    RunResult run = Run(argv, c.tls);
    if (run.exit_code != 0 && run.err.find("peer closed the connection") != std::string::npos) {
      // Seen on a loaded 2-core machine until the ranks said bye before leaving (a rank that
      // saw the stop closed its connections under ranks still finishing that step). Kept as a
      // guard: one retry, and a group that fails twice fails the test.
      std::cerr << "EP " << c.ep << " over " << c.tls << ": retrying once after:\n" << run.err;
      run = Run(argv, c.tls);
    }
    auto j = Json(run);
    EXPECT_EQ(j["token_ids"], ref["token_ids"]);
    ASSERT_TRUE(j.contains("ep"));
    EXPECT_GT(j["ep"]["dispatch_bytes"].get<int64_t>(), 0);
    EXPECT_FALSE(j["ep"]["layers"].empty());
  }
  // The in-process transport (ranks as threads) agrees too.
  auto inproc = Json(Run(
      Generate({"--ep", "2", "--ep-dispatch-dtype", "bf16", "--ep-transport", "inproc"}, 12), ""));
  EXPECT_EQ(inproc["token_ids"], ref["token_ids"]);
}

TEST_F(EpIntegrationTest, Int8DispatchRunsAndReportsLoad) {
  auto j = Json(Run(Generate({"--ep", "2", "--ep-ucx-tls", "tcp"}, 6), "tcp"));
  ASSERT_TRUE(j.contains("ep"));
  EXPECT_EQ(j["ep"]["dispatch_dtype"], "int8");
  EXPECT_EQ(j["token_ids"].size(), 6u);
  for (const auto& l : j["ep"]["layers"]) EXPECT_GE(l["max_mean_ratio"].get<double>(), 1.0);
}

TEST_F(EpIntegrationTest, KilledWorkerFailsTheGroupFast) {
  std::vector<std::string> argv =
      Generate({"--ep", "2", "--ep-ucx-tls", "tcp", "--ep-timeout-ms", "60000"}, 1800);
  double killed_at = 0;
  Stopwatch watch;
  RunResult r = Run(argv, "tcp", [&](pid_t leader) {
    // Wait for the worker (the leader's child), let it serve a while, kill it.
    pid_t worker = 0;
    for (int i = 0; i < 200 && worker == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      std::ifstream children("/proc/" + std::to_string(leader) + "/task/" + std::to_string(leader) +
                             "/children");
      children >> worker;
    }
    ASSERT_GT(worker, 0) << "no worker process appeared";
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    killed_at = watch.ElapsedSeconds();
    kill(worker, SIGKILL);
  });
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_NE(r.err.find("rank 1"), std::string::npos) << r.err;
  // Failure comes from the transport's peer-failure callback, far sooner than the 60 s deadline.
  EXPECT_LT(r.seconds - killed_at, 10.0) << r.err;
}

}  // namespace
}  // namespace strata
