// Supervisor tests: real child processes (/bin/sh -c scripts), short backoffs and grace periods.
#include "supervisor/supervisor.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

namespace strata::supervisor {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

ChildSpec Sh(std::string name, std::string script, bool restart = true) {
  ChildSpec spec;
  spec.name = std::move(name);
  spec.argv = {"/bin/sh", "-c", std::move(script)};
  spec.restart = restart;
  return spec;
}

SupervisorOptions FastOptions() {
  SupervisorOptions options;
  options.initial_backoff_ms = 10;
  options.max_backoff_ms = 80;
  options.max_restarts = 100;
  options.grace_period_ms = 300;
  options.kill_wait_ms = 2'000;
  options.ready_poll_ms = 10;
  return options;
}

template <typename Pred>
bool WaitUntil(Pred pred, int64_t timeout_ms) {
  auto deadline = MonoClock::now() + milliseconds(timeout_ms);
  while (MonoClock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return pred();
}

// No such process (the supervisor reaped it).
bool Gone(pid_t pid) { return ::kill(pid, 0) == -1 && errno == ESRCH; }

// Gone, or a zombie waiting for a parent other than us (an orphan under an init that may not
// reap promptly): either way no longer running.
bool NotRunning(pid_t pid) {
  if (Gone(pid)) return true;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string content((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  size_t paren = content.rfind(')');
  return paren == std::string::npos || content.substr(paren + 2, 1) == "Z";
}

// How many of this process's descriptors are pidfds.
int CountPidfds() {
  int count = 0;
  for (const auto& entry : fs::directory_iterator("/proc/self/fd")) {
    std::error_code error;
    fs::path target = fs::read_symlink(entry.path(), error);
    if (!error && target.string() == "anon_inode:[pidfd]") ++count;
  }
  return count;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "strata_supervisor_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string P(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

// The tests that depend on noticing exits run both with pidfds and with the polling fallback.
class SupervisorReapingTest : public SupervisorTest, public ::testing::WithParamInterface<bool> {
 protected:
  SupervisorOptions Options() const {
    SupervisorOptions options = FastOptions();
    options.use_pidfds = GetParam();
    return options;
  }
};

INSTANTIATE_TEST_SUITE_P(Reaping, SupervisorReapingTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? std::string("Pidfd") : std::string("Polling");
                         });

const ChildState& Find(const std::vector<ChildState>& states, const std::string& name) {
  for (const ChildState& s : states) {
    if (s.name == name) return s;
  }
  static ChildState missing;
  ADD_FAILURE() << "no child named " << name;
  return missing;
}

TEST_F(SupervisorTest, StartsChildrenInOrderGatedByReadiness) {
  // "first" writes its line late; without the readiness gate "second" would write first.
  ChildSpec first = Sh("first", "sleep 0.2; echo first >> " + P("order") + "; exec sleep 30");
  std::string order_path = P("order");
  first.ready = [order_path] { return ReadFile(order_path).find("first") != std::string::npos; };
  first.ready_timeout_ms = 5'000;
  ChildSpec second = Sh("second", "echo second >> " + P("order") + "; exec sleep 30");

  Supervisor supervisor(FastOptions());
  ASSERT_TRUE(supervisor.Start({first, second}).ok());
  ASSERT_TRUE(
      WaitUntil([&] { return ReadFile(order_path).find("second") != std::string::npos; }, 5'000));
  EXPECT_EQ(ReadFile(order_path), "first\nsecond\n");
  auto states = supervisor.Children();
  ASSERT_EQ(states.size(), 2u);
  EXPECT_EQ(states[0].name, "first");
  EXPECT_EQ(states[0].phase, ChildPhase::kRunning);
  EXPECT_GT(states[0].pid, 0);
  EXPECT_EQ(states[1].phase, ChildPhase::kRunning);
  EXPECT_TRUE(supervisor.Stop().ok());
  EXPECT_TRUE(Gone(states[0].pid));
  EXPECT_TRUE(Gone(states[1].pid));
}

TEST_P(SupervisorReapingTest, RestartsAChildThatExitsAndCountsRestarts) {
  Supervisor supervisor(Options());
  ASSERT_TRUE(supervisor.Start({Sh("flaky", "exit 3"), Sh("steady", "exec sleep 30")}).ok());
  pid_t steady_pid = Find(supervisor.Children(), "steady").pid;
  Status run_status;
  std::thread runner([&] { run_status = supervisor.Run(); });
  bool saw_exit_code = false;
  EXPECT_TRUE(WaitUntil(
      [&] {
        const ChildState flaky = Find(supervisor.Children(), "flaky");
        if (flaky.last_exit && flaky.last_exit->kind == ExitInfo::Kind::kExited &&
            flaky.last_exit->value == 3) {
          saw_exit_code = true;
        }
        return flaky.num_restarts >= 3;
      },
      5'000));
  supervisor.RequestStop();
  runner.join();
  EXPECT_TRUE(run_status.ok()) << run_status.ToString();
  EXPECT_TRUE(saw_exit_code);
  auto states = supervisor.Children();
  EXPECT_GE(Find(states, "flaky").num_restarts, 3);
  EXPECT_EQ(Find(states, "steady").num_restarts, 0);  // untouched by its sibling's restarts
  EXPECT_EQ(Find(states, "steady").phase, ChildPhase::kStopped);
  EXPECT_TRUE(Gone(steady_pid));
}

TEST_F(SupervisorTest, BackoffDoublesToItsMaximumAndResetsAfterAStableRun) {
  {
    Supervisor supervisor(FastOptions());  // 10 ms doubling to 80 ms; reset after 30 s
    ASSERT_TRUE(supervisor.Start({Sh("crasher", "exit 1")}).ok());
    std::thread runner([&] { (void)supervisor.Run(); });
    EXPECT_TRUE(WaitUntil([&] { return supervisor.Children()[0].num_restarts >= 5; }, 5'000));
    EXPECT_EQ(supervisor.Children()[0].next_backoff_ms, 80);
    supervisor.RequestStop();
    runner.join();
  }
  {
    SupervisorOptions options = FastOptions();
    options.backoff_reset_after_ms = 50;  // every run below lasts 100 ms: counts as stable
    Supervisor supervisor(options);
    ASSERT_TRUE(supervisor.Start({Sh("slow_crasher", "sleep 0.1; exit 1")}).ok());
    std::thread runner([&] { (void)supervisor.Run(); });
    EXPECT_TRUE(WaitUntil([&] { return supervisor.Children()[0].num_restarts >= 3; }, 5'000));
    // Reset to 10 ms at each death, used, then doubled: never beyond 20 ms.
    EXPECT_EQ(supervisor.Children()[0].next_backoff_ms, 20);
    supervisor.RequestStop();
    runner.join();
  }
}

TEST_P(SupervisorReapingTest, GivesUpOnACrashLoopAndStopsEverything) {
  SupervisorOptions options = Options();
  options.initial_backoff_ms = 50;
  options.max_backoff_ms = 1'000;
  options.max_restarts = 3;
  options.restart_window_ms = 10'000;
  Supervisor supervisor(options);
  ASSERT_TRUE(supervisor.Start({Sh("steady", "exec sleep 30"), Sh("crasher", "exit 1")}).ok());
  pid_t steady_pid = Find(supervisor.Children(), "steady").pid;
  Stopwatch watch;
  Status status = supervisor.Run();
  double elapsed_s = watch.ElapsedSeconds();
  EXPECT_EQ(status.code(), StatusCode::kAborted) << status.ToString();
  EXPECT_NE(status.message().find("crasher"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("crash-looping"), std::string::npos) << status.message();
  // Backoffs 50 + 100 + 200 ms before the three restarts, then the fourth death gives up.
  EXPECT_GE(elapsed_s, 0.35);
  EXPECT_LT(elapsed_s, 3.0);
  auto states = supervisor.Children();
  EXPECT_EQ(Find(states, "crasher").num_restarts, 3);
  EXPECT_EQ(Find(states, "crasher").phase, ChildPhase::kExited);
  EXPECT_EQ(Find(states, "steady").phase, ChildPhase::kStopped);
  EXPECT_TRUE(Gone(steady_pid));
}

TEST_F(SupervisorTest, RestartsOutsideTheWindowDoNotCountTowardsACrashLoop) {
  SupervisorOptions options = FastOptions();
  options.max_restarts = 1;
  options.restart_window_ms = 50;  // each run lasts >= 100 ms, so the window never holds two
  Supervisor supervisor(options);
  ASSERT_TRUE(supervisor.Start({Sh("slow_crasher", "sleep 0.1; exit 1")}).ok());
  Status run_status;
  std::thread runner([&] { run_status = supervisor.Run(); });
  EXPECT_TRUE(WaitUntil([&] { return supervisor.Children()[0].num_restarts >= 3; }, 5'000));
  supervisor.RequestStop();
  runner.join();
  EXPECT_TRUE(run_status.ok()) << run_status.ToString();
}

TEST_P(SupervisorReapingTest, StopTerminatesAllAndKillsAChildThatIgnoresSigterm) {
  ChildSpec polite = Sh("polite", "exec sleep 30");
  // SIG_IGN survives exec, so `sleep` itself ignores SIGTERM (no grandchild to chase).
  ChildSpec stubborn = Sh("stubborn", "trap '' TERM; touch " + P("trapped") + "; exec sleep 30");
  std::string trapped = P("trapped");
  stubborn.ready = [trapped] { return fs::exists(trapped); };
  Supervisor supervisor(Options());  // grace 300 ms
  ASSERT_TRUE(supervisor.Start({polite, stubborn}).ok());
  auto before = supervisor.Children();
  pid_t polite_pid = Find(before, "polite").pid;
  pid_t stubborn_pid = Find(before, "stubborn").pid;
  ASSERT_FALSE(Gone(polite_pid));
  ASSERT_FALSE(Gone(stubborn_pid));
  EXPECT_EQ(CountPidfds(), GetParam() ? 2 : 0);  // the path under test is the one taken

  Stopwatch watch;
  EXPECT_TRUE(supervisor.Stop().ok());
  double elapsed_s = watch.ElapsedSeconds();
  EXPECT_GE(elapsed_s, 0.3);  // waited out the grace period for the stubborn one
  EXPECT_LT(elapsed_s, 2.0);
  EXPECT_TRUE(Gone(polite_pid));
  EXPECT_TRUE(Gone(stubborn_pid));
  auto after = supervisor.Children();
  ASSERT_TRUE(Find(after, "polite").last_exit.has_value());
  EXPECT_EQ(Find(after, "polite").last_exit->ToString(), "signal SIGTERM");
  ASSERT_TRUE(Find(after, "stubborn").last_exit.has_value());
  EXPECT_EQ(Find(after, "stubborn").last_exit->ToString(), "signal SIGKILL");
  EXPECT_EQ(Find(after, "stubborn").phase, ChildPhase::kStopped);
  EXPECT_EQ(Find(after, "stubborn").pid, 0);
  EXPECT_TRUE(supervisor.Stop().ok());  // idempotent
  EXPECT_EQ(CountPidfds(), 0);
}

TEST_F(SupervisorTest, StopReachesWhatAChildForked) {
  ChildSpec parent = Sh("parent", "sleep 30 & echo $! > " + P("grandchild.tmp") + "; mv " +
                                      P("grandchild.tmp") + " " + P("grandchild") + "; wait");
  std::string grandchild_file = P("grandchild");
  parent.ready = [grandchild_file] { return fs::exists(grandchild_file); };
  Supervisor supervisor(FastOptions());
  ASSERT_TRUE(supervisor.Start({parent}).ok());
  pid_t grandchild = std::stoi(ReadFile(grandchild_file));
  ASSERT_FALSE(NotRunning(grandchild));
  EXPECT_TRUE(supervisor.Stop().ok());
  EXPECT_TRUE(WaitUntil([&] { return NotRunning(grandchild); }, 2'000));
}

TEST_P(SupervisorReapingTest, AChildWithRestartOffIsNotRestarted) {
  Supervisor supervisor(Options());
  ASSERT_TRUE(
      supervisor.Start({Sh("once", "exit 7", /*restart=*/false), Sh("steady", "exec sleep 30")})
          .ok());
  pid_t steady_pid = Find(supervisor.Children(), "steady").pid;
  Status run_status;
  std::thread runner([&] { run_status = supervisor.Run(); });
  EXPECT_TRUE(WaitUntil(
      [&] { return Find(supervisor.Children(), "once").phase == ChildPhase::kExited; }, 5'000));
  std::this_thread::sleep_for(milliseconds(150));  // many backoff periods
  auto states = supervisor.Children();
  EXPECT_EQ(Find(states, "once").num_restarts, 0);
  EXPECT_EQ(Find(states, "once").pid, 0);
  EXPECT_EQ(Find(states, "once").phase, ChildPhase::kExited);
  ASSERT_TRUE(Find(states, "once").last_exit.has_value());
  EXPECT_EQ(Find(states, "once").last_exit->ToString(), "exit code 7");
  EXPECT_EQ(Find(states, "steady").pid, steady_pid);
  EXPECT_EQ(Find(states, "steady").phase, ChildPhase::kRunning);
  supervisor.RequestStop();
  runner.join();
  EXPECT_TRUE(run_status.ok()) << run_status.ToString();
  EXPECT_TRUE(Gone(steady_pid));
}

TEST_P(SupervisorReapingTest, RunReturnsWhenNoChildIsLeft) {
  {
    Supervisor supervisor(Options());
    ASSERT_TRUE(
        supervisor
            .Start({Sh("a", "exit 0", /*restart=*/false), Sh("b", "sleep 0.05", /*restart=*/false)})
            .ok());
    EXPECT_TRUE(supervisor.Run().ok());
  }
  {
    Supervisor supervisor(Options());
    ASSERT_TRUE(supervisor
                    .Start({Sh("good", "exit 0", /*restart=*/false),
                            Sh("bad", "exit 2", /*restart=*/false)})
                    .ok());
    Status status = supervisor.Run();
    EXPECT_EQ(status.code(), StatusCode::kAborted);
    EXPECT_NE(status.message().find("'bad' (exit code 2)"), std::string::npos) << status.message();
    EXPECT_EQ(status.message().find("good"), std::string::npos) << status.message();
  }
}

TEST_F(SupervisorTest, ChildrenDieWithAKilledSupervisor) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  pid_t supervisor_pid = ::fork();
  ASSERT_GE(supervisor_pid, 0);
  if (supervisor_pid == 0) {
    // The supervisor process: start a child, report its pid, wait to be killed.
    ::close(pipe_fds[0]);
    Supervisor supervisor(FastOptions());
    if (!supervisor.Start({Sh("orphan", "exec sleep 30")}).ok()) ::_exit(1);
    pid_t child = supervisor.Children()[0].pid;
    if (::write(pipe_fds[1], &child, sizeof(child)) != sizeof(child)) ::_exit(1);
    ::sleep(30);
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  pid_t child = 0;
  ASSERT_EQ(::read(pipe_fds[0], &child, sizeof(child)), static_cast<ssize_t>(sizeof(child)));
  ::close(pipe_fds[0]);
  ASSERT_GT(child, 0);
  ASSERT_FALSE(NotRunning(child));
  ASSERT_EQ(::kill(supervisor_pid, SIGKILL), 0);
  int wait_status = 0;
  ASSERT_EQ(::waitpid(supervisor_pid, &wait_status, 0), supervisor_pid);
  EXPECT_TRUE(WaitUntil([&] { return NotRunning(child); }, 3'000));
}

TEST_F(SupervisorTest, StopSignalFdTurnsSigtermIntoAStop) {
  auto signals = StopSignalFd::Create();
  ASSERT_TRUE(signals.ok()) << signals.status().ToString();
  Supervisor supervisor(FastOptions());
  ASSERT_TRUE(supervisor.Start({Sh("sleeper", "exec sleep 30")}, (*signals)->fd()).ok());
  pid_t child = supervisor.Children()[0].pid;
  // Directed at this thread, which blocks it: it waits in the signalfd.
  pthread_t self = ::pthread_self();
  std::thread sender([self] {
    std::this_thread::sleep_for(milliseconds(100));
    ::pthread_kill(self, SIGTERM);
  });
  Stopwatch watch;
  Status status = supervisor.Run((*signals)->fd());
  sender.join();
  EXPECT_TRUE(status.ok()) << status.ToString();
  EXPECT_LT(watch.ElapsedSeconds(), 2.0);
  EXPECT_EQ((*signals)->ReadSignal(), SIGTERM);
  EXPECT_TRUE(Gone(child));
  // The child did not inherit the blocked mask: SIGTERM killed it.
  ASSERT_TRUE(supervisor.Children()[0].last_exit.has_value());
  EXPECT_EQ(supervisor.Children()[0].last_exit->ToString(), "signal SIGTERM");
}

TEST_F(SupervisorTest, ChildGetsEnvironmentArgvAndDevNullStdin) {
  ChildSpec child = Sh(
      "env",
      "printf '%s|%s' \"$STRATA_SUPERVISOR_TEST\" \"$1\" > " + P("out") + "; cat > " + P("stdin"),
      /*restart=*/false);
  child.argv.push_back("sh");  // $0
  child.argv.push_back("first-arg");
  child.env = {{"STRATA_SUPERVISOR_TEST", "hello world"}};
  Supervisor supervisor(FastOptions());
  ASSERT_TRUE(supervisor.Start({child}).ok());
  EXPECT_TRUE(supervisor.Run().ok());  // cat sees EOF at once from /dev/null
  EXPECT_EQ(ReadFile(P("out")), "hello world|first-arg");
  EXPECT_EQ(ReadFile(P("stdin")), "");
}

TEST_F(SupervisorTest, ChildInheritsNoDescriptorsBeyondStdio) {
  int leaky[2];
  ASSERT_EQ(::pipe(leaky), 0);  // deliberately without O_CLOEXEC
  Supervisor supervisor(FastOptions());
  ASSERT_TRUE(supervisor.Start({Sh("sleeper", "exec sleep 30")}).ok());
  pid_t child = supervisor.Children()[0].pid;
  // While sh execs sleep, the dynamic loader briefly holds a descriptor of its own; a leaked
  // one would stay.
  std::vector<std::string> fds;
  std::string targets;
  auto only_stdio = [&] {
    fds.clear();
    targets.clear();
    for (const auto& entry : fs::directory_iterator("/proc/" + std::to_string(child) + "/fd")) {
      std::error_code error;
      fds.push_back(entry.path().filename().string());
      targets += entry.path().filename().string() + " -> " +
                 fs::read_symlink(entry.path(), error).string() + "\n";
    }
    std::sort(fds.begin(), fds.end());
    return fds == std::vector<std::string>{"0", "1", "2"};
  };
  EXPECT_TRUE(WaitUntil(only_stdio, 2'000)) << targets;
  EXPECT_EQ(fs::read_symlink("/proc/" + std::to_string(child) + "/fd/0"), "/dev/null");
  EXPECT_TRUE(supervisor.Stop().ok());
  ::close(leaky[0]);
  ::close(leaky[1]);
}

TEST_F(SupervisorTest, StartRejectsBadSpecsBeforeSpawningAnything) {
  auto start_error = [](std::vector<ChildSpec> specs) {
    Supervisor supervisor(FastOptions());
    return supervisor.Start(std::move(specs));
  };
  EXPECT_EQ(start_error({}).code(), StatusCode::kInvalidArgument);
  ChildSpec empty_argv;
  empty_argv.name = "x";
  EXPECT_EQ(start_error({empty_argv}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(start_error({Sh("", "true")}).code(), StatusCode::kInvalidArgument);
  Status dup = start_error({Sh("a", "true"), Sh("a", "true")});
  EXPECT_EQ(dup.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(dup.message().find("duplicate child name 'a'"), std::string::npos);
  ChildSpec bad_env = Sh("e", "true");
  bad_env.env = {{"A=B", "c"}};
  EXPECT_EQ(start_error({bad_env}).code(), StatusCode::kInvalidArgument);

  // A missing program is found out before the first child is spawned.
  std::string marker = P("spawned");
  ChildSpec missing;
  missing.name = "missing";
  missing.argv = {"strata-no-such-program-xyz"};
  Status not_found = start_error({Sh("first", "touch " + marker + "; exec sleep 30"), missing});
  EXPECT_EQ(not_found.code(), StatusCode::kNotFound);
  EXPECT_NE(not_found.message().find("strata-no-such-program-xyz"), std::string::npos);
  EXPECT_NE(not_found.message().find("'missing'"), std::string::npos);
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_FALSE(fs::exists(marker));

  std::string plain_file = P("plain");
  std::ofstream(plain_file) << "data";
  fs::permissions(plain_file, fs::perms::owner_read | fs::perms::owner_write);
  ChildSpec not_executable;
  not_executable.name = "file";
  not_executable.argv = {plain_file};
  EXPECT_EQ(start_error({not_executable}).code(), StatusCode::kNotFound);

  SupervisorOptions bad_options = FastOptions();
  bad_options.max_backoff_ms = 1;  // below initial_backoff_ms
  Supervisor supervisor(bad_options);
  Status options_error = supervisor.Start({Sh("a", "true")});
  EXPECT_EQ(options_error.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(options_error.message().find("max_backoff_ms"), std::string::npos);
}

TEST_F(SupervisorTest, ExecFailureStopsTheChildrenAlreadyStarted) {
  std::string garbage = P("garbage");
  {
    std::ofstream out(garbage);
    out << "\x7f\x01\x02 not a program";
  }
  fs::permissions(garbage, fs::perms::owner_all);
  Supervisor supervisor(FastOptions());
  ChildSpec bad;
  bad.name = "bad";
  bad.argv = {garbage};
  Status status = supervisor.Start({Sh("first", "exec sleep 30"), bad});
  EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
  EXPECT_NE(status.message().find("Exec format error"), std::string::npos) << status.message();
  auto states = supervisor.Children();
  EXPECT_EQ(Find(states, "first").phase, ChildPhase::kStopped);
  ASSERT_TRUE(Find(states, "bad").last_exit.has_value());
  EXPECT_EQ(Find(states, "bad").last_exit->kind, ExitInfo::Kind::kSpawnFailed);
}

TEST_F(SupervisorTest, AProgramThatDisappearsEndsAsACrashLoop) {
  // The script deletes itself and dies, so the restart's exec fails.
  std::string script = P("vanishing.sh");
  {
    std::ofstream out(script);
    out << "#!/bin/sh\nrm -f \"$0\"\nexit 1\n";
  }
  fs::permissions(script, fs::perms::owner_all);
  SupervisorOptions options = FastOptions();
  options.max_restarts = 2;
  Supervisor supervisor(options);
  ChildSpec spec;
  spec.name = "vanishing";
  spec.argv = {script};
  ASSERT_TRUE(supervisor.Start({spec}).ok());
  Status status = supervisor.Run();
  EXPECT_EQ(status.code(), StatusCode::kAborted) << status.ToString();
  auto state = supervisor.Children()[0];
  EXPECT_EQ(state.num_restarts, 2);
  ASSERT_TRUE(state.last_exit.has_value());
  EXPECT_EQ(state.last_exit->ToString(), "spawn failed: No such file or directory");
}

TEST_F(SupervisorTest, ReadinessTimesOutAndStopsTheChild) {
  ChildSpec never = Sh("never_ready", "exec sleep 30");
  never.ready = [] { return false; };
  never.ready_timeout_ms = 200;
  Supervisor supervisor(FastOptions());
  Stopwatch watch;
  Status status = supervisor.Start({never});
  EXPECT_EQ(status.code(), StatusCode::kDeadlineExceeded) << status.ToString();
  EXPECT_NE(status.message().find("'never_ready' was not ready within 200 ms"), std::string::npos);
  EXPECT_GE(watch.ElapsedSeconds(), 0.2);
  EXPECT_LT(watch.ElapsedSeconds(), 2.0);
  EXPECT_EQ(supervisor.Children()[0].phase, ChildPhase::kStopped);
  EXPECT_EQ(supervisor.Children()[0].last_exit->ToString(), "signal SIGTERM");
}

TEST_P(SupervisorReapingTest, AChildThatDiesBeforeItIsReadyFailsStartAtOnce) {
  ChildSpec dies = Sh("dies", "exit 4");
  dies.ready = [] { return false; };
  dies.ready_timeout_ms = 10'000;
  Supervisor supervisor(Options());
  Stopwatch watch;
  Status status = supervisor.Start({dies, Sh("never_started", "exec sleep 30")});
  EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
  EXPECT_NE(status.message().find("exit code 4"), std::string::npos) << status.message();
  EXPECT_LT(watch.ElapsedSeconds(), 2.0);
  EXPECT_EQ(Find(supervisor.Children(), "never_started").phase, ChildPhase::kNotStarted);
}

TEST_F(SupervisorTest, RequestStopCancelsAReadinessWait) {
  ChildSpec slow = Sh("slow", "exec sleep 30");
  slow.ready = [] { return false; };
  slow.ready_timeout_ms = 10'000;
  Supervisor supervisor(FastOptions());
  std::thread stopper([&] {
    std::this_thread::sleep_for(milliseconds(100));
    supervisor.RequestStop();
  });
  Stopwatch watch;
  Status status = supervisor.Start({slow});
  stopper.join();
  EXPECT_EQ(status.code(), StatusCode::kCancelled) << status.ToString();
  EXPECT_LT(watch.ElapsedSeconds(), 2.0);
  EXPECT_EQ(supervisor.Children()[0].phase, ChildPhase::kStopped);
}

TEST_F(SupervisorTest, RunBeforeStartAndStartTwiceAreErrors) {
  Supervisor supervisor(FastOptions());
  EXPECT_EQ(supervisor.Run().code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(supervisor.Start({Sh("a", "exec sleep 30")}).ok());
  EXPECT_EQ(supervisor.Start({Sh("b", "exec sleep 30")}).code(), StatusCode::kFailedPrecondition);
}

TEST_F(SupervisorTest, DestructorStopsTheChildren) {
  pid_t child = 0;
  {
    Supervisor supervisor(FastOptions());
    ASSERT_TRUE(supervisor.Start({Sh("a", "exec sleep 30")}).ok());
    child = supervisor.Children()[0].pid;
    ASSERT_FALSE(Gone(child));
  }
  EXPECT_TRUE(Gone(child));
}

}  // namespace
}  // namespace strata::supervisor
