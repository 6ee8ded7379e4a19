// Jinja parser: tokens -> AST, following jinja2.parser's grammar and operator precedence
// (filters bind tighter than arithmetic, `~` tighter than `+`, `**` left-associative).
#pragma once

#include <vector>

#include "model/jinja_ast.h"
#include "model/jinja_lexer.h"

namespace strata::model::jinja {

struct ParserLimits {
  int max_nesting = 200;  // nested expressions/blocks; deeper input is a syntax error
};

// Parses a token stream into the template body. Throws jinja::Error with line/column.
Body Parse(const std::vector<Token>& tokens, const ParserLimits& limits = {});

}  // namespace strata::model::jinja
