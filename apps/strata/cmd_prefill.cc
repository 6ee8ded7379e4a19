// `strata prefill`: one prefill instance of disaggregated serving (DESIGN.md §3).
#include "apps/strata/commands.h"
#include "apps/strata/instance_role.h"

namespace strata::apps {

Command PrefillCommand() {
  return {"prefill", "Run a prefill instance (disaggregated serving; registers with the server)",
          [](CLI::App& app) -> std::function<int()> {
            auto f = std::make_shared<InstanceRoleFlags>();
            AddInstanceRoleFlags(app, f.get(), /*prefill=*/true);
            return [f] { return RunInstanceRole(*f, /*prefill=*/true); };
          }};
}

}  // namespace strata::apps
