#include "supervisor/spawn.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include <spdlog/fmt/fmt.h>

extern char** environ;

namespace strata::supervisor {
namespace {

// Exit codes of a child that could not exec (the parent reports the errno it wrote instead).
constexpr int kExitExecFailed = 127;
constexpr int kExitParentGone = 126;

bool IsExecutableFile(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// Closes fd on scope exit.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;

 private:
  int fd_;
};

// Runs in the forked child: only async-signal-safe calls until execve.
[[noreturn]] void ExecChild(pid_t parent, int devnull, int error_fd, const char* program,
                            char* const* argv, char* const* envp) {
  // Own process group: a terminal's Ctrl-C reaches only the supervisor, and the supervisor can
  // signal the child together with whatever it forks.
  ::setpgid(0, 0);
  // Die with the supervisor, even when it is SIGKILLed. If the parent is already gone the
  // signal will never come, so leave now.
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (::getppid() != parent) ::_exit(kExitParentGone);
  // Clean signal state: the supervisor's thread may block SIGTERM/SIGINT (StopSignalFd), and
  // ignored dispositions survive exec.
  sigset_t empty;
  ::sigemptyset(&empty);
  ::sigprocmask(SIG_SETMASK, &empty, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  ::sigemptyset(&dfl.sa_mask);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    ::sigaction(sig, &dfl, nullptr);  // fails harmlessly for signals glibc reserves
  }
  if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
  // Descriptors the caller left inheritable (listening sockets, pipes) must not leak into roles.
  ::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
  ::execve(program, argv, envp);
  int err = errno;
  ssize_t ignored = ::write(error_fd, &err, sizeof(err));
  (void)ignored;
  ::_exit(kExitExecFailed);
}

}  // namespace

StatusOr<std::string> ResolveProgram(const std::string& name) {
  if (name.empty()) return InvalidArgumentError("empty program name (argv[0])");
  if (name.find('/') != std::string::npos) {
    if (!IsExecutableFile(name)) {
      return NotFoundError(fmt::format("program '{}' is not an executable file", name));
    }
    return name;
  }
  const char* path_env = std::getenv("PATH");
  std::string_view path = path_env != nullptr ? path_env : "/usr/local/bin:/usr/bin:/bin";
  while (true) {
    size_t colon = path.find(':');
    std::string_view dir = path.substr(0, colon);
    std::string candidate = dir.empty() ? name : fmt::format("{}/{}", dir, name);
    if (IsExecutableFile(candidate)) return candidate;
    if (colon == std::string_view::npos) break;
    path.remove_prefix(colon + 1);
  }
  return NotFoundError(fmt::format("program '{}' not found in PATH", name));
}

StatusOr<SpawnedProcess> SpawnProcess(const std::string& program,
                                      const std::vector<std::string>& argv,
                                      const std::vector<std::pair<std::string, std::string>>& env,
                                      int* spawn_errno) {
  int ignored_errno = 0;
  if (spawn_errno == nullptr) spawn_errno = &ignored_errno;
  *spawn_errno = 0;
  if (argv.empty()) return InvalidArgumentError("empty argv");

  // Everything the child needs is built before fork: after it, only async-signal-safe calls.
  std::vector<char*> argv_ptrs;
  argv_ptrs.reserve(argv.size() + 1);
  for (const std::string& arg : argv) argv_ptrs.push_back(const_cast<char*>(arg.c_str()));
  argv_ptrs.push_back(nullptr);

  std::vector<std::string> env_strings;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    std::string_view key = entry.substr(0, entry.find('='));
    bool overridden = false;
    for (const auto& [name, value] : env) overridden |= (name == key);
    if (!overridden) env_strings.emplace_back(entry);
  }
  for (const auto& [name, value] : env) env_strings.push_back(name + "=" + value);
  std::vector<char*> envp;
  envp.reserve(env_strings.size() + 1);
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  FdCloser devnull_closer(devnull);
  int error_pipe[2];
  if (::pipe2(error_pipe, O_CLOEXEC) != 0) {
    *spawn_errno = errno;
    return InternalError(fmt::format("pipe2: {}", std::strerror(errno)));
  }
  FdCloser read_closer(error_pipe[0]);

  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    *spawn_errno = err;
    ::close(error_pipe[1]);
    return UnavailableError(fmt::format("fork: {}", std::strerror(err)));
  }
  if (pid == 0) {
    ExecChild(parent, devnull, error_pipe[1], program.c_str(), argv_ptrs.data(), envp.data());
  }
  ::close(error_pipe[1]);
  // Also from this side, so the group exists before we might signal it (fails harmlessly with
  // EACCES once the child has exec'd).
  ::setpgid(pid, pid);

  // EOF: the exec succeeded (the pipe closed on exec). Four bytes: its errno.
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(error_pipe[0], &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  int read_errno = errno;
  if (n == static_cast<ssize_t>(sizeof(child_errno)) || n < 0) {
    if (n < 0) ::kill(pid, SIGKILL);  // cannot tell whether it exec'd: do not leave it running
    int wait_status = 0;
    while (::waitpid(pid, &wait_status, 0) < 0 && errno == EINTR) {
    }
    if (n < 0) {
      *spawn_errno = read_errno;
      return InternalError(fmt::format("reading exec status: {}", std::strerror(read_errno)));
    }
    *spawn_errno = child_errno;
    return UnavailableError(
        fmt::format("exec '{}' failed: {}", program, std::strerror(child_errno)));
  }

  SpawnedProcess spawned;
  spawned.pid = pid;
  // -1 (ENOSYS, EPERM under seccomp): the supervisor polls for exits instead. Through syscall():
  // glibc 2.36's <sys/pidfd.h> lacks extern "C".
  spawned.pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0U));
  return spawned;
}

}  // namespace strata::supervisor
