// Process spawning for the Supervisor (internal to supervisor/): fork + execve with the child
// set up as supervisor.h's contract describes (own process group, PR_SET_PDEATHSIG(SIGTERM),
// stdin from /dev/null, clean signal state, descriptors above 2 closed on exec).
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace strata::supervisor {

// argv[0] as a program path: itself when it contains '/', else the first executable match in
// PATH. kNotFound when there is none (or the path is not an executable file).
StatusOr<std::string> ResolveProgram(const std::string& name);

struct SpawnedProcess {
  pid_t pid = 0;
  int pidfd = -1;  // readable when the process exits; -1 where pidfd_open is unavailable
};

// Spawns `program` with `argv` and the current environment plus `env` (overriding same names).
// Returns once the child has exec'd. When the exec (or fork) fails, a forked child is reaped and
// the error is kUnavailable with the reason; *spawn_errno (when given) receives the errno.
StatusOr<SpawnedProcess> SpawnProcess(const std::string& program,
                                      const std::vector<std::string>& argv,
                                      const std::vector<std::pair<std::string, std::string>>& env,
                                      int* spawn_errno = nullptr);

}  // namespace strata::supervisor
