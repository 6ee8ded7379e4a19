#include "apps/strata/commands.h"

namespace strata::apps {

std::vector<Command> AllCommands() {
  return {
      InfoCommand(),
      TokenizeCommand(),
      GenModelCommand(),
  };
}

}  // namespace strata::apps
