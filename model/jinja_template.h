// A compiled Jinja template: parse once, render many times from any thread.
//
//   STRATA_ASSIGN_OR_RETURN(jinja::Template t, jinja::Template::Parse(source));
//   STRATA_ASSIGN_OR_RETURN(std::string text, t.Render({{"messages", messages_value}}));
//
// Errors come back as Status (kInvalidArgument), never as exceptions: syntax errors carry the
// line and column, render errors the line of the failing statement or expression.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "model/jinja_ast.h"
#include "model/jinja_interpreter.h"
#include "model/jinja_lexer.h"
#include "model/jinja_value.h"

namespace strata::model::jinja {

class Template {
 public:
  // Tokenizes and parses `source`; unknown filters and tests are rejected here, as Jinja2
  // rejects them when compiling.
  static StatusOr<Template> Parse(std::string_view source, const LexerOptions& options = {});

  // Renders with `globals` layered over the builtins (range, namespace, dict). Const and
  // thread-safe: each call has its own scopes and budget.
  StatusOr<std::string> Render(const std::vector<std::pair<std::string, Value>>& globals,
                               const RenderLimits& limits = {}) const;

 private:
  explicit Template(std::shared_ptr<const Body> body) : body_(std::move(body)) {}
  std::shared_ptr<const Body> body_;
};

}  // namespace strata::model::jinja
