// `strata decode`: one decode instance of disaggregated serving (DESIGN.md §3).
#include "apps/strata/commands.h"
#include "apps/strata/instance_role.h"

namespace strata::apps {

Command DecodeCommand() {
  return {"decode", "Run a decode instance (disaggregated serving; registers with the server)",
          [](CLI::App& app) -> std::function<int()> {
            auto f = std::make_shared<InstanceRoleFlags>();
            AddInstanceRoleFlags(app, f.get(), /*prefill=*/false);
            return [f] { return RunInstanceRole(*f, /*prefill=*/false); };
          }};
}

}  // namespace strata::apps
