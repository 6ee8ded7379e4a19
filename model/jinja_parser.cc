#include "model/jinja_parser.h"

#include <initializer_list>
#include <string_view>

namespace strata::model::jinja {
namespace {

using TT = Token::Type;

class Parser {
 public:
  Parser(const std::vector<Token>& tokens, const ParserLimits& limits)
      : tokens_(tokens), limits_(limits) {}

  Body ParseTemplate() {
    Body body = Subparse({});
    if (Cur().type != TT::kEof) Fail("unexpected '" + Describe(Cur()) + "'");
    return body;
  }

 private:
  class DepthGuard {
   public:
    explicit DepthGuard(Parser& p) : p_(p) {
      if (++p_.depth_ > p_.limits_.max_nesting) {
        p_.Fail("template nested too deeply (limit " + std::to_string(p_.limits_.max_nesting) +
                ")");
      }
    }
    ~DepthGuard() { --p_.depth_; }

   private:
    Parser& p_;
  };

  const Token& Cur() const { return tokens_[pos_]; }
  const Token& Look(size_t ahead = 1) const {
    return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)];
  }
  void Next() {
    if (pos_ + 1 < tokens_.size()) ++pos_;
  }

  static std::string Describe(const Token& t) {
    switch (t.type) {
      case TT::kEof:
        return "end of template";
      case TT::kVarBegin:
        return "{{";
      case TT::kVarEnd:
        return "}}";
      case TT::kBlockBegin:
        return "{%";
      case TT::kBlockEnd:
        return "%}";
      case TT::kData:
        return "template data";
      case TT::kString:
        return "string";
      default:
        return t.text;
    }
  }

  [[noreturn]] void Fail(const std::string& message) const {
    throw Error(message, Cur().line, Cur().column);
  }

  bool IsOp(std::string_view op) const { return Cur().type == TT::kOperator && Cur().text == op; }
  bool IsName(std::string_view name) const { return Cur().type == TT::kName && Cur().text == name; }
  bool SkipOp(std::string_view op) {
    if (!IsOp(op)) return false;
    Next();
    return true;
  }
  bool SkipName(std::string_view name) {
    if (!IsName(name)) return false;
    Next();
    return true;
  }
  void ExpectOp(std::string_view op) {
    if (!SkipOp(op)) Fail("expected '" + std::string(op) + "', got '" + Describe(Cur()) + "'");
  }
  std::string ExpectName() {
    if (Cur().type != TT::kName) Fail("expected a name, got '" + Describe(Cur()) + "'");
    std::string name = Cur().text;
    Next();
    return name;
  }
  void ExpectBlockEnd() {
    if (Cur().type != TT::kBlockEnd) Fail("expected '%}', got '" + Describe(Cur()) + "'");
    Next();
  }

  ExprPtr Make(Expr::Kind kind, const Token& at) {
    return std::make_unique<Expr>(kind, at.line, at.column);
  }

  // Parses statements until "{% <one of end_names>" (left positioned at that name) or EOF.
  Body Subparse(std::initializer_list<std::string_view> end_names) {
    DepthGuard guard(*this);
    Body body;
    while (Cur().type != TT::kEof) {
      const Token& t = Cur();
      if (t.type == TT::kData) {
        auto s = std::make_unique<Stmt>(Stmt::Kind::kData, t.line, t.column);
        s->text = t.text;
        body.push_back(std::move(s));
        Next();
      } else if (t.type == TT::kVarBegin) {
        auto s = std::make_unique<Stmt>(Stmt::Kind::kOutput, t.line, t.column);
        Next();
        s->expr = ParseTuple(true, false);
        if (Cur().type != TT::kVarEnd) Fail("expected '}}', got '" + Describe(Cur()) + "'");
        Next();
        body.push_back(std::move(s));
      } else if (t.type == TT::kBlockBegin) {
        Next();
        if (Cur().type != TT::kName) Fail("tag name expected");
        for (std::string_view end : end_names) {
          if (Cur().text == end) return body;
        }
        body.push_back(ParseStatement());
      } else {
        Fail("unexpected '" + Describe(t) + "'");
      }
    }
    if (end_names.size() > 0) {
      std::string want;
      for (std::string_view end : end_names) {
        if (!want.empty()) want += " or ";
        want += "'" + std::string(end) + "'";
      }
      Fail("unexpected end of template, expected " + want);
    }
    return body;
  }

  StmtPtr ParseStatement() {
    const Token& t = Cur();
    const std::string tag = t.text;
    if (tag == "if") return ParseIf();
    if (tag == "for") return ParseFor();
    if (tag == "set") return ParseSet();
    if (tag == "macro") return ParseMacro();
    if (tag == "call") return ParseCallBlock();
    if (tag == "filter") return ParseFilterBlock();
    if (tag == "with") return ParseWith();
    if (tag == "generation") {
      auto s = std::make_unique<Stmt>(Stmt::Kind::kScope, t.line, t.column);
      Next();
      ExpectBlockEnd();
      s->body = Subparse({"endgeneration"});
      Next();
      ExpectBlockEnd();
      return s;
    }
    if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) Fail("'" + tag + "' outside of a loop");
      auto s = std::make_unique<Stmt>(tag == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue,
                                      t.line, t.column);
      Next();
      ExpectBlockEnd();
      return s;
    }
    Fail("Encountered unknown tag '" + tag + "'");
  }

  StmtPtr ParseIf() {
    auto s = std::make_unique<Stmt>(Stmt::Kind::kIf, Cur().line, Cur().column);
    Next();
    while (true) {
      s->conditions.push_back(ParseTuple(false, false));
      ExpectBlockEnd();
      s->bodies.push_back(Subparse({"elif", "else", "endif"}));
      if (SkipName("elif")) continue;
      if (SkipName("else")) {
        ExpectBlockEnd();
        s->else_body = Subparse({"endif"});
        Next();
      } else {
        Next();  // endif
      }
      ExpectBlockEnd();
      return s;
    }
  }

  Target ParseTarget(bool allow_tuple, bool allow_namespace) {
    Target target;
    if (allow_namespace && Cur().type == TT::kName && Look().type == TT::kOperator &&
        Look().text == ".") {
      target.names.push_back(ExpectName());
      Next();
      target.attr = ExpectName();
      return target;
    }
    const bool parens = allow_tuple && SkipOp("(");
    while (true) {
      target.names.push_back(ExpectName());
      if (!allow_tuple || !SkipOp(",")) break;
      target.is_tuple = true;
      if (Cur().type != TT::kName) break;  // trailing comma
    }
    if (parens) {
      ExpectOp(")");
      target.is_tuple = true;
    }
    for (const std::string& name : target.names) {
      if (name == "true" || name == "false" || name == "none" || name == "True" ||
          name == "False" || name == "None") {
        Fail("can't assign to '" + name + "'");
      }
    }
    return target;
  }

  StmtPtr ParseFor() {
    auto s = std::make_unique<Stmt>(Stmt::Kind::kFor, Cur().line, Cur().column);
    Next();
    s->target = ParseTarget(true, false);
    if (!SkipName("in")) Fail("expected 'in', got '" + Describe(Cur()) + "'");
    s->expr = ParseTuple(false, false, "recursive");
    if (SkipName("if")) s->condition = ParseExpression(true);
    if (SkipName("recursive")) s->recursive = true;
    ExpectBlockEnd();
    ++loop_depth_;
    s->body = Subparse({"endfor", "else"});
    --loop_depth_;
    if (SkipName("else")) {
      ExpectBlockEnd();
      s->else_body = Subparse({"endfor"});
    }
    Next();
    ExpectBlockEnd();
    return s;
  }

  StmtPtr ParseSet() {
    auto s = std::make_unique<Stmt>(Stmt::Kind::kSet, Cur().line, Cur().column);
    Next();
    s->target = ParseTarget(true, true);
    if (SkipOp("=")) {
      s->expr = ParseTuple(true, false);
      ExpectBlockEnd();
      return s;
    }
    // Block set: {% set x | filter %}...{% endset %}
    if (IsOp("|")) s->condition = ParseFilterChain(nullptr);
    ExpectBlockEnd();
    s->body = Subparse({"endset"});
    Next();
    ExpectBlockEnd();
    return s;
  }

  void ParseSignature(std::vector<MacroParam>& params) {
    ExpectOp("(");
    while (!IsOp(")")) {
      if (!params.empty()) ExpectOp(",");
      if (IsOp(")")) break;
      MacroParam p;
      p.name = ExpectName();
      if (SkipOp("=")) {
        p.default_value = ParseExpression(true);
      } else if (!params.empty() && params.back().default_value) {
        Fail("non-default argument follows default argument");
      }
      params.push_back(std::move(p));
    }
    Next();
  }

  StmtPtr ParseMacro() {
    auto s = std::make_unique<Stmt>(Stmt::Kind::kMacro, Cur().line, Cur().column);
    Next();
    s->text = ExpectName();
    ParseSignature(s->params);
    ExpectBlockEnd();
    const int saved_loop_depth = loop_depth_;
    loop_depth_ = 0;
    s->body = Subparse({"endmacro"});
    loop_depth_ = saved_loop_depth;
    Next();
    ExpectBlockEnd();
    return s;
  }

  StmtPtr ParseCallBlock() {
    auto s = std::make_unique<Stmt>(Stmt::Kind::kCallBlock, Cur().line, Cur().column);
    Next();
    if (IsOp("(")) ParseSignature(s->params);
    s->expr = ParseExpression(true);
    if (s->expr->kind != Expr::Kind::kCall) Fail("expected call");
    ExpectBlockEnd();
    const int saved_loop_depth = loop_depth_;
    loop_depth_ = 0;
    s->body = Subparse({"endcall"});
    loop_depth_ = saved_loop_depth;
    Next();
    ExpectBlockEnd();
    return s;
  }

  StmtPtr ParseFilterBlock() {
    auto s = std::make_unique<Stmt>(Stmt::Kind::kFilterBlock, Cur().line, Cur().column);
    Next();
    s->expr = ParseFilterChain(nullptr, /*first_without_pipe=*/true);
    ExpectBlockEnd();
    s->body = Subparse({"endfilter"});
    Next();
    ExpectBlockEnd();
    return s;
  }

  StmtPtr ParseWith() {
    auto s = std::make_unique<Stmt>(Stmt::Kind::kWith, Cur().line, Cur().column);
    Next();
    while (Cur().type != TT::kBlockEnd) {
      if (!s->assignments.empty()) ExpectOp(",");
      Target target = ParseTarget(false, false);
      ExpectOp("=");
      s->assignments.emplace_back(std::move(target), ParseExpression(true));
    }
    Next();
    s->body = Subparse({"endwith"});
    Next();
    ExpectBlockEnd();
    return s;
  }

  // ---- expressions ----

  bool IsTupleEnd(std::string_view extra_end) const {
    const TT t = Cur().type;
    if (t == TT::kVarEnd || t == TT::kBlockEnd || t == TT::kEof) return true;
    if (IsOp(")")) return true;
    return !extra_end.empty() && IsName(extra_end);
  }

  ExprPtr ParseTuple(bool with_condexpr, bool explicit_parens, std::string_view extra_end = {}) {
    const Token& start = Cur();
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) ExpectOp(",");
      if (IsTupleEnd(extra_end)) break;
      items.push_back(with_condexpr ? ParseExpression(true) : ParseOr());
      if (IsOp(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parens) Fail("expected an expression, got '" + Describe(Cur()) + "'");
    }
    ExprPtr e = Make(Expr::Kind::kTuple, start);
    e->items = std::move(items);
    return e;
  }

  ExprPtr ParseExpression(bool with_condexpr) {
    DepthGuard guard(*this);
    if (!with_condexpr) return ParseOr();
    ExprPtr expr = ParseOr();
    while (IsName("if")) {
      const Token& at = Cur();
      Next();
      ExprPtr cond = ParseOr();
      ExprPtr otherwise;
      if (SkipName("else")) otherwise = ParseExpression(true);
      ExprPtr e = Make(Expr::Kind::kCondition, at);
      e->object = std::move(cond);
      e->items.push_back(std::move(expr));
      e->items.push_back(std::move(otherwise));
      expr = std::move(e);
    }
    return expr;
  }

  ExprPtr Binary(const Token& at, std::string op, ExprPtr left, ExprPtr right) {
    ExprPtr e = Make(Expr::Kind::kBinary, at);
    e->name = std::move(op);
    e->items.push_back(std::move(left));
    e->items.push_back(std::move(right));
    return e;
  }

  ExprPtr ParseOr() {
    ExprPtr left = ParseAnd();
    while (IsName("or")) {
      const Token& at = Cur();
      Next();
      left = Binary(at, "or", std::move(left), ParseAnd());
    }
    return left;
  }

  ExprPtr ParseAnd() {
    ExprPtr left = ParseNot();
    while (IsName("and")) {
      const Token& at = Cur();
      Next();
      left = Binary(at, "and", std::move(left), ParseNot());
    }
    return left;
  }

  ExprPtr ParseNot() {
    if (IsName("not")) {
      DepthGuard guard(*this);
      const Token& at = Cur();
      Next();
      ExprPtr e = Make(Expr::Kind::kUnary, at);
      e->name = "not";
      e->object = ParseNot();
      return e;
    }
    return ParseCompare();
  }

  ExprPtr ParseCompare() {
    const Token& start = Cur();
    ExprPtr first = ParseMath1();
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (Cur().type == TT::kOperator &&
          (Cur().text == "==" || Cur().text == "!=" || Cur().text == "<" || Cur().text == ">" ||
           Cur().text == "<=" || Cur().text == ">=")) {
        op = Cur().text;
        Next();
      } else if (IsName("in")) {
        op = "in";
        Next();
      } else if (IsName("not") && Look().type == TT::kName && Look().text == "in") {
        op = "not in";
        Next();
        Next();
      } else {
        break;
      }
      if (!cmp) {
        cmp = Make(Expr::Kind::kCompare, start);
        cmp->object = std::move(first);
      }
      cmp->ops.push_back(op);
      cmp->items.push_back(ParseMath1());
    }
    return cmp ? std::move(cmp) : std::move(first);
  }

  ExprPtr ParseMath1() {
    ExprPtr left = ParseConcat();
    while (IsOp("+") || IsOp("-")) {
      const Token& at = Cur();
      std::string op = at.text;
      Next();
      left = Binary(at, op, std::move(left), ParseConcat());
    }
    return left;
  }

  ExprPtr ParseConcat() {
    ExprPtr left = ParseMath2();
    while (IsOp("~")) {
      const Token& at = Cur();
      Next();
      left = Binary(at, "~", std::move(left), ParseMath2());
    }
    return left;
  }

  ExprPtr ParseMath2() {
    ExprPtr left = ParsePow();
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      const Token& at = Cur();
      std::string op = at.text;
      Next();
      left = Binary(at, op, std::move(left), ParsePow());
    }
    return left;
  }

  ExprPtr ParsePow() {
    ExprPtr left = ParseUnary(true);
    while (IsOp("**")) {
      const Token& at = Cur();
      Next();
      left = Binary(at, "**", std::move(left), ParseUnary(true));
    }
    return left;
  }

  ExprPtr ParseUnary(bool with_filter) {
    DepthGuard guard(*this);
    ExprPtr node;
    if (IsOp("-") || IsOp("+")) {
      const Token& at = Cur();
      node = Make(Expr::Kind::kUnary, at);
      node->name = at.text;
      Next();
      node->object = ParseUnary(false);
    } else {
      node = ParsePrimary();
    }
    node = ParsePostfix(std::move(node));
    if (with_filter) node = ParseFilterExpr(std::move(node));
    return node;
  }

  ExprPtr ParsePrimary() {
    const Token& t = Cur();
    switch (t.type) {
      case TT::kName: {
        ExprPtr e;
        if (t.text == "true" || t.text == "True") {
          e = Make(Expr::Kind::kLiteral, t);
          e->value = Value::Bool(true);
        } else if (t.text == "false" || t.text == "False") {
          e = Make(Expr::Kind::kLiteral, t);
          e->value = Value::Bool(false);
        } else if (t.text == "none" || t.text == "None") {
          e = Make(Expr::Kind::kLiteral, t);
          e->value = Value::None();
        } else {
          e = Make(Expr::Kind::kName, t);
          e->name = t.text;
        }
        Next();
        return e;
      }
      case TT::kString: {
        ExprPtr e = Make(Expr::Kind::kLiteral, t);
        std::string s;
        while (Cur().type == TT::kString) {
          s += Cur().text;
          Next();
        }
        e->value = Value::String(std::move(s));
        return e;
      }
      case TT::kInteger:
      case TT::kFloat: {
        ExprPtr e = Make(Expr::Kind::kLiteral, t);
        e->value = t.type == TT::kInteger ? Value::Int(t.int_value) : Value::Float(t.float_value);
        Next();
        return e;
      }
      case TT::kOperator:
        if (t.text == "(") {
          Next();
          ExprPtr e = ParseTuple(true, true);
          ExpectOp(")");
          return e;
        }
        if (t.text == "[") return ParseList();
        if (t.text == "{") return ParseDict();
        break;
      default:
        break;
    }
    Fail("unexpected '" + Describe(t) + "'");
  }

  ExprPtr ParseList() {
    ExprPtr e = Make(Expr::Kind::kList, Cur());
    ExpectOp("[");
    while (!IsOp("]")) {
      if (!e->items.empty()) ExpectOp(",");
      if (IsOp("]")) break;
      e->items.push_back(ParseExpression(true));
    }
    Next();
    return e;
  }

  ExprPtr ParseDict() {
    ExprPtr e = Make(Expr::Kind::kDict, Cur());
    ExpectOp("{");
    while (!IsOp("}")) {
      if (!e->items.empty()) ExpectOp(",");
      if (IsOp("}")) break;
      e->keys.push_back(ParseExpression(true));
      ExpectOp(":");
      e->items.push_back(ParseExpression(true));
    }
    Next();
    return e;
  }

  ExprPtr ParsePostfix(ExprPtr node) {
    while (true) {
      if (IsOp(".") || IsOp("[")) {
        node = ParseSubscript(std::move(node));
      } else if (IsOp("(")) {
        node = ParseCall(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr ParseSubscript(ExprPtr node) {
    const Token& at = Cur();
    if (SkipOp(".")) {
      const Token& attr = Cur();
      if (attr.type == TT::kName) {
        ExprPtr e = Make(Expr::Kind::kGetAttr, at);
        e->name = attr.text;
        e->object = std::move(node);
        Next();
        return e;
      }
      if (attr.type == TT::kInteger) {
        ExprPtr e = Make(Expr::Kind::kGetItem, at);
        ExprPtr index = Make(Expr::Kind::kLiteral, attr);
        index->value = Value::Int(attr.int_value);
        e->object = std::move(node);
        e->items.push_back(std::move(index));
        Next();
        return e;
      }
      Fail("expected name or number");
    }
    ExpectOp("[");
    std::vector<ExprPtr> args;
    while (!IsOp("]")) {
      if (!args.empty()) ExpectOp(",");
      args.push_back(ParseSubscribed());
    }
    Next();
    ExprPtr e = Make(Expr::Kind::kGetItem, at);
    e->object = std::move(node);
    if (args.size() == 1) {
      e->items.push_back(std::move(args[0]));
    } else {
      ExprPtr tuple = Make(Expr::Kind::kTuple, at);
      tuple->items = std::move(args);
      e->items.push_back(std::move(tuple));
    }
    return e;
  }

  ExprPtr ParseSubscribed() {
    const Token& at = Cur();
    std::vector<ExprPtr> parts;
    if (SkipOp(":")) {
      parts.emplace_back(nullptr);
    } else {
      ExprPtr node = ParseExpression(true);
      if (!SkipOp(":")) return node;
      parts.push_back(std::move(node));
    }
    if (IsOp(":")) {
      parts.emplace_back(nullptr);
    } else if (!IsOp("]") && !IsOp(",")) {
      parts.push_back(ParseExpression(true));
    } else {
      parts.emplace_back(nullptr);
    }
    if (SkipOp(":")) {
      if (!IsOp("]") && !IsOp(",")) {
        parts.push_back(ParseExpression(true));
      } else {
        parts.emplace_back(nullptr);
      }
    } else {
      parts.emplace_back(nullptr);
    }
    ExprPtr e = Make(Expr::Kind::kSlice, at);
    e->items = std::move(parts);
    return e;
  }

  void ParseCallArgs(Expr& call) {
    ExpectOp("(");
    bool first = true;
    while (!IsOp(")")) {
      if (!first) {
        ExpectOp(",");
        if (IsOp(")")) break;
      }
      first = false;
      if (SkipOp("*")) {
        call.star_args = ParseExpression(true);
      } else if (SkipOp("**")) {
        call.star_kwargs = ParseExpression(true);
      } else if (Cur().type == TT::kName && Look().type == TT::kOperator && Look().text == "=") {
        std::string key = Cur().text;
        Next();
        Next();
        call.kwargs.emplace_back(std::move(key), ParseExpression(true));
      } else {
        if (!call.kwargs.empty() || call.star_args || call.star_kwargs) {
          Fail("invalid syntax for function call expression");
        }
        call.items.push_back(ParseExpression(true));
      }
    }
    Next();
  }

  ExprPtr ParseCall(ExprPtr node) {
    ExprPtr e = Make(Expr::Kind::kCall, Cur());
    e->object = std::move(node);
    ParseCallArgs(*e);
    return e;
  }

  // One filter application: NAME[.NAME...][(args)] applied to `node`.
  ExprPtr ParseOneFilter(ExprPtr node) {
    ExprPtr e = Make(Expr::Kind::kFilter, Cur());
    std::string name = ExpectName();
    while (IsOp(".")) {
      Next();
      name += "." + ExpectName();
    }
    e->name = std::move(name);
    e->object = std::move(node);
    if (IsOp("(")) ParseCallArgs(*e);
    return e;
  }

  ExprPtr ParseFilterChain(ExprPtr node, bool first_without_pipe = false) {
    if (first_without_pipe) node = ParseOneFilter(std::move(node));
    while (SkipOp("|")) node = ParseOneFilter(std::move(node));
    return node;
  }

  ExprPtr ParseFilterExpr(ExprPtr node) {
    while (true) {
      if (IsOp("|")) {
        node = ParseFilterChain(std::move(node));
      } else if (IsName("is")) {
        node = ParseTest(std::move(node));
      } else if (IsOp("(")) {
        node = ParseCall(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr ParseTest(ExprPtr node) {
    ExprPtr e = Make(Expr::Kind::kTest, Cur());
    Next();  // is
    if (SkipName("not")) e->negate = true;
    std::string name = ExpectName();
    while (IsOp(".")) {
      Next();
      name += "." + ExpectName();
    }
    e->name = std::move(name);
    e->object = std::move(node);
    const Token& t = Cur();
    if (IsOp("(")) {
      ParseCallArgs(*e);
    } else if ((t.type == TT::kName || t.type == TT::kString || t.type == TT::kInteger ||
                t.type == TT::kFloat || IsOp("[") || IsOp("{")) &&
               !IsName("else") && !IsName("or") && !IsName("and")) {
      if (IsName("is")) Fail("You cannot chain multiple tests with is");
      ExprPtr arg = ParsePostfix(ParsePrimary());
      e->items.push_back(std::move(arg));
    }
    return e;
  }

  const std::vector<Token>& tokens_;
  ParserLimits limits_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

Body Parse(const std::vector<Token>& tokens, const ParserLimits& limits) {
  if (tokens.empty() || tokens.back().type != Token::Type::kEof) {
    throw Error("token stream must end with end of template");
  }
  Parser parser(tokens, limits);
  return parser.ParseTemplate();
}

}  // namespace strata::model::jinja
