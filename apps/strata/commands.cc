#include "apps/strata/commands.h"

namespace strata::apps {

std::vector<Command> AllCommands() {
  return {
      InfoCommand(),     GenModelCommand(), BenchCommand(),   TokenizeCommand(),
      GenerateCommand(), EpWorkerCommand(), ServeCommand(),   ServerCommand(),
      PrefillCommand(),  DecodeCommand(),   KvCacheCommand(),
  };
}

}  // namespace strata::apps
