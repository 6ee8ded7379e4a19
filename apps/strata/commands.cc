#include "apps/strata/commands.h"

namespace strata::apps {

std::vector<Command> AllCommands() {
  return {
      InfoCommand(),
      GenModelCommand(),
      TokenizeCommand(),
      GenerateCommand(),
      EpWorkerCommand(),
  };
}

}  // namespace strata::apps
