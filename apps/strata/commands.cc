#include "apps/strata/commands.h"

namespace strata::apps {

std::vector<Command> AllCommands() {
  return {
      InfoCommand(),
      TokenizeCommand(),
  };
}

}  // namespace strata::apps
