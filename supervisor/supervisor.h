// Supervisor: runs a set of child processes on this host, restarts the ones that die, and stops
// them all on request (`strata serve --disaggregated` runs its roles under one).
//
// Contract
// - Start(specs) spawns the children in the order given. A child with a `ready` check is polled
//   until it reports ready (or its `ready_timeout_ms` passes, or it exits) before the next child
//   is spawned, so e.g. the server is accepting connections before the roles that register with
//   it start. Children started earlier are supervised meanwhile as in Run (restarted when they
//   die). If a spawn fails, a readiness check times out, or the child being waited for exits,
//   Start stops the children it started and returns the error: after a failed Start no child is
//   left.
// - Each child runs in its own process group (so a terminal's Ctrl-C reaches only the
//   supervisor, which then stops the children in an orderly way) with PR_SET_PDEATHSIG(SIGTERM)
//   (so the children die even if the supervisor is SIGKILLed), stdin from /dev/null, stdout and
//   stderr inherited (their log lines interleave with the supervisor's; roles tag their own
//   lines), a clean signal mask and default signal dispositions, and no inherited descriptors
//   other than 0-2. Signals go to the child's whole process group, so helpers it forked go too.
// - Run(stop_fd) reaps children and restarts one that exited for any reason while not stopping
//   (when its spec says restart): after an exponential backoff (initial_backoff_ms doubling to
//   max_backoff_ms; back to the initial value once a child stayed up backoff_reset_after_ms).
//   A child that dies when it has already been restarted max_restarts times within the last
//   restart_window_ms is crash-looping: Run logs it, stops every child and returns kAborted (a
//   respawn whose exec fails counts as a death). Readiness checks run only at Start.
// - Run returns when stop_fd becomes readable (a signalfd, pipe or eventfd; it is polled, never
//   read) or RequestStop() is called: it then stops every child (below) and returns OK. It also
//   returns when no child is running or waiting to restart (all had restart=false and exited):
//   OK if every one of them exited with code 0, kAborted otherwise.
// - Stop() sends SIGTERM to every child's process group, waits up to grace_period_ms, sends
//   SIGKILL to the groups still alive, and reaps them all (waiting at most kill_wait_ms more).
//   Every wait has a deadline; the destructor calls Stop(), so no child outlives the Supervisor.
// - The library installs no signal handlers. The caller turns SIGTERM/SIGINT into a stop either
//   with StopSignalFd (a signalfd; create it in main before any thread starts) passed to Run, or
//   by calling RequestStop() from its own handler (it is async-signal-safe).
// - Threads: Start, Run and Stop are never called concurrently, and Start and Run from a thread
//   that outlives the children they spawn (PR_SET_PDEATHSIG fires when the *thread* that forked
//   a child exits; use the main thread). RequestStop() and Children() may be called from any
//   thread, at any time.
// - Usage (a `strata serve --disaggregated` main):
//     auto signals = StopSignalFd::Create();  // first thing in main, before any thread starts
//     Supervisor supervisor(options);
//     ChildSpec server{.name = "server", .argv = {exe, "server", "--listen", "127.0.0.1:8000"}};
//     server.ready = TcpPortReady("127.0.0.1", 8000);
//     STRATA_RETURN_IF_ERROR(supervisor.Start({server, kvcache0, prefill0, decode0},
//                                             (*signals)->fd()));
//     Status result = supervisor.Run((*signals)->fd());  // exit code: result.ok() ? 0 : 1
// - Only the supervisor's own children are waited for (waitpid by pid, never -1), so it can run
//   in a process that has other children.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace strata::supervisor {

struct ChildSpec {
  std::string name;  // unique among the specs; used in log lines, e.g. "prefill-0"
  // argv[0] is the program: a path when it contains '/', otherwise looked up in PATH at spawn.
  std::vector<std::string> argv;
  // Set in the child's environment on top of the supervisor's own (same name: this wins).
  std::vector<std::pair<std::string, std::string>> env;
  bool restart = true;
  // Optional readiness check polled by Start (every ready_poll_ms) after spawning this child and
  // before spawning the next. Runs on Start's thread; each call should return within a few
  // hundred ms (e.g. TcpPortReady below).
  std::function<bool()> ready;
  int64_t ready_timeout_ms = 30'000;
};

struct SupervisorOptions {
  int64_t initial_backoff_ms = 100;
  int64_t max_backoff_ms = 5'000;
  int64_t backoff_reset_after_ms = 30'000;
  // Give up when a child dies and has already been restarted max_restarts times within the
  // last restart_window_ms.
  int max_restarts = 5;
  int64_t restart_window_ms = 60'000;
  int64_t grace_period_ms = 10'000;  // SIGTERM -> SIGKILL
  int64_t kill_wait_ms = 5'000;      // SIGKILL -> give up waiting (logged as an error)
  int64_t ready_poll_ms = 50;
  // Wake on a child's exit through its pidfd. Off (or where pidfd_open is unavailable), exits
  // are polled for every 20 ms instead; tests turn it off to cover that path.
  bool use_pidfds = true;
};

// How a child process ended.
struct ExitInfo {
  enum class Kind { kExited, kSignaled, kSpawnFailed };
  Kind kind = Kind::kExited;
  int value = 0;  // the exit code, the signal number, or the errno of the failed exec
  // "exit code 3", "signal SIGKILL", "spawn failed: No such file or directory".
  std::string ToString() const;
  bool Success() const { return kind == Kind::kExited && value == 0; }
  static ExitInfo FromWaitStatus(int wait_status);
};

enum class ChildPhase {
  kNotStarted,  // Start has not reached it yet
  kRunning,
  kBackoff,  // died; restart scheduled
  kExited,   // died and will not be restarted (restart=false or the supervisor gave up)
  kStopped,  // stopped by Stop()
};
std::string_view ChildPhaseName(ChildPhase phase);

struct ChildState {
  std::string name;
  ChildPhase phase = ChildPhase::kNotStarted;
  pid_t pid = 0;  // of the running process; 0 when none
  int num_restarts = 0;
  std::optional<ExitInfo> last_exit;
  int64_t next_backoff_ms = 0;  // the delay the next restart will wait
};

class Supervisor {
 public:
  explicit Supervisor(SupervisorOptions options = {});
  ~Supervisor();  // Stop()s any children left
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Validates the specs and options (kInvalidArgument naming the bad field; a program not found
  // is kNotFound), then spawns the children in order as described above. stop_fd (optional)
  // aborts a pending readiness wait with kCancelled. Call once.
  Status Start(std::vector<ChildSpec> specs, int stop_fd = -1);

  // Supervises until a stop, a crash loop or no child left (see the contract above).
  Status Run(int stop_fd = -1);

  // Stops and reaps every child. Idempotent. Errors only when a child survived SIGKILL for
  // kill_wait_ms (kDeadlineExceeded; it is logged and left).
  Status Stop();

  // Makes Run (or a readiness wait in Start) return as if stop_fd fired. Async-signal-safe and
  // thread-safe.
  void RequestStop();

  // A snapshot of every child's state, in spec order. Thread-safe.
  std::vector<ChildState> Children() const;

 private:
  struct Child;

  Status ValidateOptions() const;
  // Spawns (or respawns) `child`; on success it is kRunning. On failure the error is returned
  // and, when the exec itself failed, child.last_exit records it.
  Status SpawnChild(Child& child);
  // Reaps `child` if it has exited (non-blocking): how it ended.
  std::optional<ExitInfo> TryReap(Child& child);
  Status WaitForReady(Child& child, int stop_fd);
  // Reaps every running child that has exited (non-blocking) and handles its death. Returns
  // kAborted when one turned out to be crash-looping.
  Status ReapExited(bool stopping);
  Status OnExit(Child& child, const ExitInfo& exit, bool stopping);
  // Respawns every child whose backoff has passed.
  Status RestartDue();
  // Polls the wake/stop fds (when watch_stop) and the running children's pidfds until one is
  // readable or `deadline`. Returns true when a stop was requested.
  bool WaitForEvent(MonoClock::time_point deadline, int stop_fd, bool watch_stop);
  MonoClock::time_point NextWakeup() const;
  bool AnyRunning() const;
  void SignalRunning(int signal);
  void Publish(const Child& child);

  SupervisorOptions options_;
  std::vector<std::unique_ptr<Child>> children_;
  int wake_fd_ = -1;  // eventfd written by RequestStop
  std::atomic<bool> stop_requested_{false};
  bool started_ = false;

  mutable std::mutex state_mu_;     // guards states_
  std::vector<ChildState> states_;  // published copy for Children()
};

// Blocks SIGINT and SIGTERM in the calling thread and opens a signalfd that becomes readable
// when either arrives; pass fd() to Start/Run. Create it in main before starting any thread, so
// every thread inherits the mask (a thread with the signals unblocked would take the default
// action: terminate the process). The destructor closes the fd and restores the previous mask.
// Children spawned by the Supervisor get a clean mask regardless.
class StopSignalFd {
 public:
  static StatusOr<std::unique_ptr<StopSignalFd>> Create();
  ~StopSignalFd();
  int fd() const { return fd_; }
  // Reads one pending signal, if any, and returns its number (0 when none is pending).
  int ReadSignal();

 private:
  StopSignalFd(int fd, sigset_t old_mask) : fd_(fd), old_mask_(old_mask) {}
  int fd_;
  sigset_t old_mask_;
};

// Tries to connect to host:port until a connection is accepted (OK; it is closed again) or the
// deadline passes (kDeadlineExceeded with the last connect error). host is a numeric address or
// a name resolved with getaddrinfo (e.g. "localhost"); a name that does not resolve or a port
// outside 1..65535 is kInvalidArgument.
Status WaitForTcpPort(const std::string& host, int port, MonoClock::time_point deadline);

// A readiness check for ChildSpec::ready: WaitForTcpPort with a 200 ms deadline.
std::function<bool()> TcpPortReady(std::string host, int port);

}  // namespace strata::supervisor
