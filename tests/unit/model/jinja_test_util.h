// Helpers shared by the Jinja/chat-template unit tests.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "model/jinja_template.h"

namespace strata::model::jinja::testing {

// Renders `source` with the top-level keys of `context` (a JSON object, key order kept) as
// globals. Returns the output or the error status.
inline StatusOr<std::string> RenderWith(const std::string& source,
                                        const std::string& context_json = "{}",
                                        const RenderLimits& limits = {}) {
  STRATA_ASSIGN_OR_RETURN(Template t, Template::Parse(source));
  const auto context = nlohmann::ordered_json::parse(context_json);
  std::vector<std::pair<std::string, Value>> globals;
  for (auto it = context.begin(); it != context.end(); ++it) {
    globals.emplace_back(it.key(), FromJson(it.value()));
  }
  return t.Render(globals, limits);
}

}  // namespace strata::model::jinja::testing
