#include "apps/strata/commands.h"

namespace strata::apps {

std::vector<Command> AllCommands() {
  return {
      InfoCommand(),     GenModelCommand(), BenchCommand(),   TokenizeCommand(),
      GenerateCommand(), EpWorkerCommand(), ServeCommand(),   ServerCommand(),
      PrefillCommand(),  DecodeCommand(),   KvCacheCommand(),
  };
}

sigset_t BlockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

}  // namespace strata::apps
