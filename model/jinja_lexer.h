// Jinja lexer: splits a template into data and tag tokens with Jinja2's whitespace rules.
//
// Follows jinja2.lexer with the settings transformers uses (trim_blocks=True,
// lstrip_blocks=True, keep_trailing_newline=False): newlines are normalized to "\n", one
// trailing newline is dropped, "{%-"/"-%}" (and {{- -}}, {#- -#}) strip whitespace, "{%+"/"+%}"
// opt out of lstrip/trim, comments are dropped and {% raw %} bodies become data.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace strata::model::jinja {

struct Token {
  enum class Type {
    kData,        // literal text outside tags
    kVarBegin,    // {{
    kVarEnd,      // }}
    kBlockBegin,  // {%
    kBlockEnd,    // %}
    kName,
    kString,  // text holds the unescaped value
    kInteger,
    kFloat,
    kOperator,  // text holds the operator, e.g. "//" or "["
    kEof,
  };
  Type type = Type::kEof;
  std::string text;
  int64_t int_value = 0;
  double float_value = 0;
  int line = 1;
  int column = 1;
};

struct LexerOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
};

// Tokenizes `source`. Throws jinja::Error (with line/column) on malformed input.
std::vector<Token> Tokenize(std::string_view source, const LexerOptions& options = {});

}  // namespace strata::model::jinja
