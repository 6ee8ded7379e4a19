// Builtin Jinja filters ({{ x | name(args) }}) and tests ({% if x is name(args) %}), with the
// semantics of jinja2.filters / jinja2.tests and transformers' tojson override
// (json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)).
#pragma once

#include <string>

#include "model/jinja_interpreter.h"
#include "model/jinja_value.h"

namespace strata::model::jinja {

bool HasFilter(const std::string& name);
bool HasTest(const std::string& name);

// Applies filter `name`; throws Error for unknown filters and bad arguments.
Value ApplyFilter(Interpreter& interp, const std::string& name, Value operand, CallArgs args);
// Evaluates test `name`; throws Error for unknown tests and bad arguments.
bool ApplyTest(Interpreter& interp, const std::string& name, const Value& operand, CallArgs args);

}  // namespace strata::model::jinja
