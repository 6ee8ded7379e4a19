#include "supervisor/supervisor.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <set>

#include "common/log.h"
#include "supervisor/spawn.h"

namespace strata::supervisor {
namespace {

using std::chrono::milliseconds;

// Run re-checks every child at least this often, even without an event.
constexpr int64_t kMaxPollMs = 1'000;
// Without pidfds nothing wakes us when a child exits, so we poll for exits this often.
constexpr int64_t kNoPidfdPollMs = 20;

int64_t MillisUntil(MonoClock::time_point t) {
  auto ms = std::chrono::ceil<milliseconds>(t - MonoClock::now()).count();
  return std::max<int64_t>(ms, 0);
}

double SecondsSince(MonoClock::time_point t) {
  return std::chrono::duration<double>(MonoClock::now() - t).count();
}

std::string SignalName(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev != nullptr ? fmt::format("SIG{}", abbrev) : fmt::format("{}", sig);
}

}  // namespace

std::string ExitInfo::ToString() const {
  switch (kind) {
    case Kind::kExited:
      return fmt::format("exit code {}", value);
    case Kind::kSignaled:
      return fmt::format("signal {}", SignalName(value));
    case Kind::kSpawnFailed:
      return fmt::format("spawn failed: {}", std::strerror(value));
  }
  return "unknown";
}

ExitInfo ExitInfo::FromWaitStatus(int wait_status) {
  ExitInfo exit;
  if (WIFSIGNALED(wait_status)) {
    exit.kind = Kind::kSignaled;
    exit.value = WTERMSIG(wait_status);
  } else {
    exit.kind = Kind::kExited;
    exit.value = WEXITSTATUS(wait_status);
  }
  return exit;
}

std::string_view ChildPhaseName(ChildPhase phase) {
  switch (phase) {
    case ChildPhase::kNotStarted:
      return "not_started";
    case ChildPhase::kRunning:
      return "running";
    case ChildPhase::kBackoff:
      return "backoff";
    case ChildPhase::kExited:
      return "exited";
    case ChildPhase::kStopped:
      return "stopped";
  }
  return "unknown";
}

struct Supervisor::Child {
  size_t index = 0;
  ChildSpec spec;
  std::string program;  // argv[0] resolved
  ChildPhase phase = ChildPhase::kNotStarted;
  pid_t pid = 0;
  int pidfd = -1;
  MonoClock::time_point started_at;
  MonoClock::time_point restart_at;
  int num_restarts = 0;
  std::deque<MonoClock::time_point> restart_times;  // within restart_window_ms
  int64_t backoff_ms = 0;
  std::optional<ExitInfo> last_exit;
};

Supervisor::Supervisor(SupervisorOptions options) : options_(options) {
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

Supervisor::~Supervisor() {
  Status stopped = Stop();
  if (!stopped.ok()) log::Error("supervisor: {}", stopped.ToString());
  for (auto& child : children_) {
    if (child->pidfd >= 0) ::close(child->pidfd);
  }
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void Supervisor::RequestStop() {
  stop_requested_.store(true);
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    ssize_t ignored = ::write(wake_fd_, &one, sizeof(one));
    (void)ignored;
  }
}

std::vector<ChildState> Supervisor::Children() const {
  std::lock_guard<std::mutex> lock(state_mu_);
  return states_;
}

void Supervisor::Publish(const Child& child) {
  ChildState state;
  state.name = child.spec.name;
  state.phase = child.phase;
  state.pid = child.phase == ChildPhase::kRunning ? child.pid : 0;
  state.num_restarts = child.num_restarts;
  state.last_exit = child.last_exit;
  state.next_backoff_ms = child.backoff_ms;
  std::lock_guard<std::mutex> lock(state_mu_);
  states_[child.index] = std::move(state);
}

Status Supervisor::ValidateOptions() const {
  const SupervisorOptions& o = options_;
  if (o.initial_backoff_ms < 0) return InvalidArgumentError("initial_backoff_ms must be >= 0");
  if (o.max_backoff_ms < o.initial_backoff_ms) {
    return InvalidArgumentError("max_backoff_ms must be >= initial_backoff_ms");
  }
  if (o.backoff_reset_after_ms < 0) {
    return InvalidArgumentError("backoff_reset_after_ms must be >= 0");
  }
  if (o.max_restarts < 0) return InvalidArgumentError("max_restarts must be >= 0");
  if (o.restart_window_ms <= 0) return InvalidArgumentError("restart_window_ms must be > 0");
  if (o.grace_period_ms < 0) return InvalidArgumentError("grace_period_ms must be >= 0");
  if (o.kill_wait_ms <= 0) return InvalidArgumentError("kill_wait_ms must be > 0");
  if (o.ready_poll_ms <= 0) return InvalidArgumentError("ready_poll_ms must be > 0");
  return OkStatus();
}

Status Supervisor::Start(std::vector<ChildSpec> specs, int stop_fd) {
  if (started_) return FailedPreconditionError("Supervisor::Start called twice");
  started_ = true;
  if (wake_fd_ < 0) return InternalError(fmt::format("eventfd: {}", std::strerror(errno)));
  STRATA_RETURN_IF_ERROR(ValidateOptions());
  if (specs.empty()) return InvalidArgumentError("no children to supervise");

  // Validate everything (and find every program) before spawning anything, so a typo does not
  // start half of the processes.
  std::set<std::string> names;
  for (size_t i = 0; i < specs.size(); ++i) {
    const ChildSpec& spec = specs[i];
    if (spec.name.empty()) return InvalidArgumentError(fmt::format("child {} has no name", i));
    if (!names.insert(spec.name).second) {
      return InvalidArgumentError(fmt::format("duplicate child name '{}'", spec.name));
    }
    if (spec.argv.empty() || spec.argv[0].empty()) {
      return InvalidArgumentError(fmt::format("child '{}' has an empty argv", spec.name));
    }
    for (const auto& [key, value] : spec.env) {
      if (key.empty() || key.find('=') != std::string::npos) {
        return InvalidArgumentError(
            fmt::format("child '{}': bad environment variable name '{}'", spec.name, key));
      }
    }
    if (spec.ready && spec.ready_timeout_ms <= 0) {
      return InvalidArgumentError(
          fmt::format("child '{}': ready_timeout_ms must be > 0", spec.name));
    }
  }
  std::vector<std::string> programs;
  for (const ChildSpec& spec : specs) {
    StatusOr<std::string> program = ResolveProgram(spec.argv[0]);
    if (!program.ok()) return program.status().WithContext(fmt::format("child '{}'", spec.name));
    programs.push_back(std::move(*program));
  }

  {
    std::lock_guard<std::mutex> lock(state_mu_);
    states_.resize(specs.size());
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    auto child = std::make_unique<Child>();
    child->index = i;
    child->spec = std::move(specs[i]);
    child->program = std::move(programs[i]);
    child->backoff_ms = options_.initial_backoff_ms;
    Publish(*child);
    children_.push_back(std::move(child));
  }

  for (auto& child : children_) {
    Status status = OkStatus();
    if (WaitForEvent(MonoClock::now(), stop_fd, /*watch_stop=*/true)) {
      status = CancelledError("stop requested during start-up");
    }
    // Children started so far are supervised as in Run.
    if (status.ok()) status = ReapExited(/*stopping=*/false);
    if (status.ok()) status = RestartDue();
    if (status.ok()) status = SpawnChild(*child);
    if (status.ok() && child->spec.ready) status = WaitForReady(*child, stop_fd);
    if (!status.ok()) {
      log::Error("supervisor: start-up failed: {}; stopping the children started so far",
                 status.ToString());
      Status stopped = Stop();
      if (!stopped.ok()) log::Error("supervisor: {}", stopped.ToString());
      return status;
    }
  }
  return OkStatus();
}

Status Supervisor::SpawnChild(Child& child) {
  int spawn_errno = 0;
  StatusOr<SpawnedProcess> spawned =
      SpawnProcess(child.program, child.spec.argv, child.spec.env, &spawn_errno);
  if (!spawned.ok()) {
    child.last_exit = ExitInfo{ExitInfo::Kind::kSpawnFailed, spawn_errno};
    Publish(child);
    return spawned.status().WithContext(fmt::format("spawning '{}'", child.spec.name));
  }
  child.pid = spawned->pid;
  child.pidfd = spawned->pidfd;
  if (!options_.use_pidfds && child.pidfd >= 0) {
    ::close(child.pidfd);
    child.pidfd = -1;
  }
  child.started_at = MonoClock::now();
  child.phase = ChildPhase::kRunning;
  Publish(child);
  std::string command;
  for (const std::string& arg : child.spec.argv) {
    if (!command.empty()) command += ' ';
    command += arg;
  }
  log::Info("supervisor: started '{}' (pid {}): {}", child.spec.name, child.pid, command);
  return OkStatus();
}

Status Supervisor::WaitForReady(Child& child, int stop_fd) {
  auto start = MonoClock::now();
  auto deadline = start + milliseconds(child.spec.ready_timeout_ms);
  while (true) {
    if (child.spec.ready()) {
      log::Info("supervisor: '{}' is ready after {:.3f} s", child.spec.name, SecondsSince(start));
      return OkStatus();
    }
    // The awaited child exiting fails start-up; the others are supervised as in Run.
    if (std::optional<ExitInfo> exit = TryReap(child)) {
      pid_t pid = child.pid;
      STRATA_RETURN_IF_ERROR(OnExit(child, *exit, /*stopping=*/true));
      return UnavailableError(fmt::format("'{}' (pid {}) exited before it was ready: {}",
                                          child.spec.name, pid, exit->ToString()));
    }
    STRATA_RETURN_IF_ERROR(ReapExited(/*stopping=*/false));
    STRATA_RETURN_IF_ERROR(RestartDue());
    auto now = MonoClock::now();
    if (now >= deadline) {
      return DeadlineExceededError(fmt::format("'{}' was not ready within {} ms", child.spec.name,
                                               child.spec.ready_timeout_ms));
    }
    auto next_poll = std::min({deadline, now + milliseconds(options_.ready_poll_ms), NextWakeup()});
    if (WaitForEvent(next_poll, stop_fd, /*watch_stop=*/true)) {
      return CancelledError(
          fmt::format("stop requested while waiting for '{}' to be ready", child.spec.name));
    }
  }
}

bool Supervisor::WaitForEvent(MonoClock::time_point deadline, int stop_fd, bool watch_stop) {
  std::vector<pollfd> fds;
  if (watch_stop) {
    if (stop_requested_.load()) return true;
    fds.push_back({wake_fd_, POLLIN, 0});
    if (stop_fd >= 0) fds.push_back({stop_fd, POLLIN, 0});
  }
  size_t num_stop_fds = fds.size();
  bool all_have_pidfds = true;
  for (auto& child : children_) {
    if (child->phase != ChildPhase::kRunning) continue;
    if (child->pidfd >= 0) {
      fds.push_back({child->pidfd, POLLIN, 0});
    } else {
      all_have_pidfds = false;
    }
  }
  int64_t timeout_ms = MillisUntil(deadline);
  if (!all_have_pidfds) timeout_ms = std::min(timeout_ms, kNoPidfdPollMs);
  int r = ::poll(fds.data(), fds.size(), static_cast<int>(timeout_ms));
  if (r < 0 && errno != EINTR) {
    // Cannot happen with valid fds; do not spin.
    log::Error("supervisor: poll: {}", std::strerror(errno));
    ::usleep(static_cast<useconds_t>(std::min(timeout_ms, kNoPidfdPollMs) * 1000));
  }
  if (stop_requested_.load()) return true;
  for (size_t i = 0; r > 0 && i < num_stop_fds; ++i) {
    if (fds[i].revents != 0) {
      // A stop fd that is readable, hung up or broken all mean: stop.
      stop_requested_.store(true);
      return true;
    }
  }
  return false;
}

std::optional<ExitInfo> Supervisor::TryReap(Child& child) {
  if (child.phase != ChildPhase::kRunning) return std::nullopt;
  int wait_status = 0;
  pid_t r;
  do {
    r = ::waitpid(child.pid, &wait_status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return std::nullopt;
  if (r < 0) {
    // ECHILD: someone else in this process reaped it (waitpid(-1)); the status is lost.
    log::Warn("supervisor: waitpid({}) for '{}': {}", child.pid, child.spec.name,
              std::strerror(errno));
    return ExitInfo{ExitInfo::Kind::kExited, -1};
  }
  return ExitInfo::FromWaitStatus(wait_status);
}

Status Supervisor::ReapExited(bool stopping) {
  for (auto& child : children_) {
    if (std::optional<ExitInfo> exit = TryReap(*child)) {
      STRATA_RETURN_IF_ERROR(OnExit(*child, *exit, stopping));
    }
  }
  return OkStatus();
}

Status Supervisor::OnExit(Child& child, const ExitInfo& exit, bool stopping) {
  auto now = MonoClock::now();
  pid_t pid = child.pid;
  double uptime_s = SecondsSince(child.started_at);
  if (child.pidfd >= 0) ::close(child.pidfd);
  child.pidfd = -1;
  if (pid > 0 && exit.kind != ExitInfo::Kind::kSpawnFailed) {
    // Whatever the child forked is in its process group; do not let it outlive the child (it
    // may hold the port the restarted child needs). The group id cannot be reused while any
    // member lives, so this cannot hit a stranger.
    if (::kill(-pid, SIGKILL) == 0) {
      log::Warn("supervisor: killed processes left in the group of '{}' (pid {})", child.spec.name,
                pid);
    }
  }
  child.pid = 0;
  child.last_exit = exit;

  if (stopping) {
    child.phase = ChildPhase::kStopped;
    Publish(child);
    log::Info("supervisor: '{}' (pid {}) stopped: {}", child.spec.name, pid, exit.ToString());
    return OkStatus();
  }
  if (!child.spec.restart) {
    child.phase = ChildPhase::kExited;
    Publish(child);
    if (exit.Success()) {
      log::Info("supervisor: '{}' (pid {}) exited: {} after {:.3f} s; not restarted (restart off)",
                child.spec.name, pid, exit.ToString(), uptime_s);
    } else {
      log::Error("supervisor: '{}' (pid {}) died: {} after {:.3f} s; not restarted (restart off)",
                 child.spec.name, pid, exit.ToString(), uptime_s);
    }
    return OkStatus();
  }

  if (exit.kind != ExitInfo::Kind::kSpawnFailed &&
      now - child.started_at >= milliseconds(options_.backoff_reset_after_ms)) {
    child.backoff_ms = options_.initial_backoff_ms;
  }
  auto window = milliseconds(options_.restart_window_ms);
  while (!child.restart_times.empty() && now - child.restart_times.front() > window) {
    child.restart_times.pop_front();
  }
  if (static_cast<int>(child.restart_times.size()) >= options_.max_restarts) {
    child.phase = ChildPhase::kExited;
    Publish(child);
    std::string message = fmt::format(
        "'{}' is crash-looping: it died ({}) after {} restarts within {} ms (limit {}); giving "
        "up and stopping all children",
        child.spec.name, exit.ToString(), child.restart_times.size(), options_.restart_window_ms,
        options_.max_restarts);
    log::Error("supervisor: {}", message);
    return Status(StatusCode::kAborted, message);
  }
  child.phase = ChildPhase::kBackoff;
  child.restart_at = now + milliseconds(child.backoff_ms);
  if (exit.kind == ExitInfo::Kind::kSpawnFailed) {
    log::Warn("supervisor: '{}' could not be respawned ({}); restart {} in {} ms", child.spec.name,
              exit.ToString(), child.num_restarts + 1, child.backoff_ms);
  } else {
    log::Warn("supervisor: '{}' (pid {}) died: {} after {:.3f} s; restart {} in {} ms",
              child.spec.name, pid, exit.ToString(), uptime_s, child.num_restarts + 1,
              child.backoff_ms);
  }
  child.backoff_ms = std::min(std::max<int64_t>(child.backoff_ms * 2, 1), options_.max_backoff_ms);
  Publish(child);
  return OkStatus();
}

Status Supervisor::RestartDue() {
  for (auto& child : children_) {
    if (child->phase != ChildPhase::kBackoff || MonoClock::now() < child->restart_at) continue;
    child->num_restarts += 1;
    child->restart_times.push_back(MonoClock::now());
    Status spawned = SpawnChild(*child);
    if (spawned.ok()) continue;
    log::Error("supervisor: {}", spawned.ToString());
    // A respawn that fails counts as a death, so a binary that disappeared ends as a crash loop.
    ExitInfo exit = *child->last_exit;  // SpawnChild recorded the failure
    child->started_at = MonoClock::now();
    STRATA_RETURN_IF_ERROR(OnExit(*child, exit, /*stopping=*/false));
  }
  return OkStatus();
}

MonoClock::time_point Supervisor::NextWakeup() const {
  auto wakeup = MonoClock::now() + milliseconds(kMaxPollMs);
  for (const auto& child : children_) {
    if (child->phase == ChildPhase::kBackoff) wakeup = std::min(wakeup, child->restart_at);
  }
  return wakeup;
}

bool Supervisor::AnyRunning() const {
  return std::any_of(children_.begin(), children_.end(),
                     [](const auto& c) { return c->phase == ChildPhase::kRunning; });
}

Status Supervisor::Run(int stop_fd) {
  if (!started_ || children_.empty()) {
    return FailedPreconditionError("Supervisor::Run before a successful Start");
  }
  while (true) {
    Status status = ReapExited(/*stopping=*/false);
    if (status.ok()) status = RestartDue();
    if (!status.ok()) {
      Status stopped = Stop();
      if (!stopped.ok()) log::Error("supervisor: {}", stopped.ToString());
      return status;
    }
    bool pending = std::any_of(children_.begin(), children_.end(), [](const auto& c) {
      return c->phase == ChildPhase::kRunning || c->phase == ChildPhase::kBackoff;
    });
    if (!pending) {
      std::string failed;
      for (const auto& child : children_) {
        if (child->last_exit.has_value() && !child->last_exit->Success()) {
          failed += fmt::format("{}'{}' ({})", failed.empty() ? "" : ", ", child->spec.name,
                                child->last_exit->ToString());
        }
      }
      log::Info("supervisor: no child left to supervise");
      if (failed.empty()) return OkStatus();
      return Status(StatusCode::kAborted,
                    fmt::format("every child has exited; failed: {}", failed));
    }
    if (WaitForEvent(NextWakeup(), stop_fd, /*watch_stop=*/true)) {
      log::Info("supervisor: stop requested");
      return Stop();
    }
  }
}

void Supervisor::SignalRunning(int signal) {
  for (auto& child : children_) {
    if (child->phase != ChildPhase::kRunning) continue;
    // The whole group: the child and whatever it forked. Fall back to the pid alone should the
    // group not exist (it always should: both sides call setpgid before exec).
    if (::kill(-child->pid, signal) != 0) ::kill(child->pid, signal);
  }
}

Status Supervisor::Stop() {
  // Cancel pending restarts.
  for (auto& child : children_) {
    if (child->phase == ChildPhase::kBackoff) {
      child->phase = ChildPhase::kStopped;
      Publish(*child);
    }
  }
  // Reap whatever already exited, so its death is logged as such.
  (void)ReapExited(/*stopping=*/true);
  if (!AnyRunning()) return OkStatus();

  struct Phase {
    int signal;
    int64_t wait_ms;
  };
  for (Phase phase :
       {Phase{SIGTERM, options_.grace_period_ms}, Phase{SIGKILL, options_.kill_wait_ms}}) {
    std::string names;
    for (const auto& child : children_) {
      if (child->phase != ChildPhase::kRunning) continue;
      names +=
          fmt::format("{}'{}' (pid {})", names.empty() ? "" : ", ", child->spec.name, child->pid);
    }
    if (phase.signal == SIGTERM) {
      log::Info("supervisor: stopping {} with SIGTERM (grace {} ms)", names, phase.wait_ms);
    } else {
      log::Warn("supervisor: {} still running after {} ms; sending SIGKILL", names,
                options_.grace_period_ms);
    }
    SignalRunning(phase.signal);
    auto deadline = MonoClock::now() + milliseconds(phase.wait_ms);
    while (true) {
      (void)ReapExited(/*stopping=*/true);
      if (!AnyRunning() || MonoClock::now() >= deadline) break;
      WaitForEvent(deadline, /*stop_fd=*/-1, /*watch_stop=*/false);
    }
    if (!AnyRunning()) return OkStatus();
  }
  std::string names;
  for (const auto& child : children_) {
    if (child->phase != ChildPhase::kRunning) continue;
    names +=
        fmt::format("{}'{}' (pid {})", names.empty() ? "" : ", ", child->spec.name, child->pid);
  }
  return DeadlineExceededError(
      fmt::format("{} survived SIGKILL for {} ms; left unreaped", names, options_.kill_wait_ms));
}

}  // namespace strata::supervisor
