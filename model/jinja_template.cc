#include "model/jinja_template.h"

#include <new>

#include "model/jinja_filters.h"
#include "model/jinja_methods.h"
#include "model/jinja_parser.h"

namespace strata::model::jinja {
namespace {

void CheckExprNames(const Expr* e) {
  if (e == nullptr) return;
  if (e->kind == Expr::Kind::kFilter && !HasFilter(e->name)) {
    throw Error("No filter named '" + e->name + "'.", e->line, e->column);
  }
  if (e->kind == Expr::Kind::kTest && !HasTest(e->name)) {
    throw Error("No test named '" + e->name + "'.", e->line, e->column);
  }
  CheckExprNames(e->object.get());
  CheckExprNames(e->star_args.get());
  CheckExprNames(e->star_kwargs.get());
  for (const auto& x : e->items) CheckExprNames(x.get());
  for (const auto& x : e->keys) CheckExprNames(x.get());
  for (const auto& [k, x] : e->kwargs) CheckExprNames(x.get());
}

void CheckBodyNames(const Body& body) {
  for (const auto& s : body) {
    CheckExprNames(s->expr.get());
    CheckExprNames(s->condition.get());
    for (const auto& c : s->conditions) CheckExprNames(c.get());
    for (const auto& b : s->bodies) CheckBodyNames(b);
    CheckBodyNames(s->body);
    CheckBodyNames(s->else_body);
    for (const auto& p : s->params) CheckExprNames(p.default_value.get());
    for (const auto& [t, x] : s->assignments) CheckExprNames(x.get());
  }
}

std::string Where(const Error& e, bool with_column) {
  if (e.line() <= 0) return "";
  std::string where = " at line " + std::to_string(e.line());
  if (with_column && e.column() > 0) where += ", column " + std::to_string(e.column());
  return where;
}

}  // namespace

StatusOr<Template> Template::Parse(std::string_view source, const LexerOptions& options) {
  try {
    auto body = std::make_shared<Body>(jinja::Parse(Tokenize(source, options)));
    CheckBodyNames(*body);
    return Template(std::move(body));
  } catch (const Error& e) {
    return InvalidArgumentError("template syntax error" + Where(e, true) + ": " + e.what());
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory while parsing the template");
  }
}

StatusOr<std::string> Template::Render(const std::vector<std::pair<std::string, Value>>& globals,
                                       const RenderLimits& limits) const {
  try {
    auto scope = std::make_shared<Scope>();
    AddBuiltinGlobals(*scope);
    for (const auto& [name, value] : globals) scope->Set(name, value);
    Interpreter interp(limits, std::move(scope));
    return interp.Render(*body_);
  } catch (const Error& e) {
    return InvalidArgumentError("template error" + Where(e, false) + ": " + e.what());
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory while rendering the template");
  } catch (const std::exception& e) {
    return InvalidArgumentError(std::string("template error: ") + e.what());
  }
}

}  // namespace strata::model::jinja
