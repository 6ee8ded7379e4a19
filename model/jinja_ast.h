// The Jinja AST built by the parser and walked by the interpreter. Immutable after parsing,
// so one parsed template can be rendered from many threads at once.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/jinja_value.h"

namespace strata::model::jinja {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Expr {
  enum class Kind {
    kLiteral,    // value
    kName,       // name
    kList,       // items
    kTuple,      // items
    kDict,       // keys/items
    kGetAttr,    // object.name
    kGetItem,    // object[index]
    kSlice,      // object[start:stop:step] (any may be null)
    kCall,       // object(args...)
    kFilter,     // object | name(args...)  (object null in {% filter %} blocks)
    kTest,       // object is [not] name(args...)
    kUnary,      // op object  ("-", "+", "not")
    kBinary,     // left op right  (arithmetic, "~", "and", "or")
    kCompare,    // object (ops[i] items[i])...  chained comparisons and "in"/"not in"
    kCondition,  // items[0] if object else items[1] (items[1] may be null)
  };
  Kind kind;
  int line = 0;
  int column = 0;
  Value value;                 // kLiteral
  std::string name;            // kName, kGetAttr, kFilter, kTest, kUnary/kBinary op
  ExprPtr object;              // operand / callee / condition
  std::vector<ExprPtr> items;  // list/tuple items, dict values, positional args, operands
  std::vector<ExprPtr> keys;   // dict keys
  std::vector<std::pair<std::string, ExprPtr>> kwargs;  // call/filter/test keyword args
  ExprPtr star_args;                                    // *args in a call
  ExprPtr star_kwargs;                                  // **kwargs in a call
  std::vector<std::string> ops;                         // kCompare operators
  bool negate = false;                                  // kTest: "is not"

  Expr(Kind k, int l, int c) : kind(k), line(l), column(c) {}
};

// Assignment target: a name, a tuple of names, or namespace attribute (`ns.attr`).
struct Target {
  std::vector<std::string> names;  // one name, or several for tuple unpacking
  bool is_tuple = false;
  std::string attr;  // non-empty: names[0].attr
};

struct MacroParam {
  std::string name;
  ExprPtr default_value;  // may be null
};

struct Stmt {
  enum class Kind {
    kData,       // text
    kOutput,     // {{ expr }}
    kIf,         // conditions[i] -> bodies[i]; else_body
    kFor,        // target in expr [if condition] body else_body
    kSet,        // target = expr, or block set: target = render(body) | filter
    kMacro,      // name(params) body
    kCallBlock,  // {% call(params) expr %} body
    kFilterBlock,
    kBreak,
    kContinue,
    kWith,   // assignments; body
    kScope,  // body rendered in place ({% generation %})
  };
  Kind kind;
  int line = 0;
  int column = 0;
  std::string text;   // kData text; kMacro name
  ExprPtr expr;       // output expr / for iterable / set value / call expr / filter chain
  ExprPtr condition;  // for-loop filter
  Target target;
  std::vector<ExprPtr> conditions;
  std::vector<Body> bodies;
  Body body;
  Body else_body;
  std::vector<MacroParam> params;
  std::vector<std::pair<Target, ExprPtr>> assignments;  // kWith
  bool recursive = false;                               // kFor

  Stmt(Kind k, int l, int c) : kind(k), line(l), column(c) {}
};

}  // namespace strata::model::jinja
