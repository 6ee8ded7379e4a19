// Builtin Jinja tests (`x is defined`, `x is none`, ...), declared in jinja_filters.h.
#include <unordered_map>

#include "model/jinja_args.h"
#include "model/jinja_filters.h"
#include "model/jinja_text.h"

namespace strata::model::jinja {
namespace {

using TestFn = bool (*)(Interpreter&, const Value&, const BoundArgs&);

const Value& Arg(const BoundArgs& a, const char* test) {
  if (!a.has(0)) throw Error(std::string("test '") + test + "' needs an argument");
  return a.get(0);
}

bool IsOdd(Interpreter&, const Value& v, const BoundArgs&) {
  Interpreter::RequireDefined(v);
  if (!v.is_integral()) throw Error("odd test needs an integer, got " + TypeName(v));
  return (v.as_int() % 2) != 0;
}

bool IsEven(Interpreter& i, const Value& v, const BoundArgs& a) { return !IsOdd(i, v, a); }

bool IsDivisibleBy(Interpreter& interp, const Value& v, const BoundArgs& a) {
  const Value& n = Arg(a, "divisibleby");
  const Value m = BinaryOp(interp, "%", v, n);
  return !Truthy(m);
}

bool CaseTest(const Value& v, bool upper) {
  // str(value).islower() / isupper(): at least one cased char and none of the other case.
  bool any = false;
  for (char32_t cp : DecodeUtf8(ToStr(v))) {
    if (!IsCased(cp)) continue;
    any = true;
    if (upper ? ToUpper(cp) != cp : ToLower(cp) != cp) return false;
  }
  return any;
}

int CompareArgs(const Value& v, const BoundArgs& a, const char* test) {
  Interpreter::RequireDefined(v);
  Interpreter::RequireDefined(Arg(a, test));
  return Compare(v, a.get(0));
}

bool SameAs(const Value& a, const Value& b) {
  if (a.kind() != b.kind()) return false;
  if (a.identity() != nullptr) return a.identity() == b.identity();
  return Equals(a, b);
}

const std::unordered_map<std::string, TestFn>& Tests() {
  static const auto* tests = new std::unordered_map<std::string, TestFn>{
      {"defined", [](Interpreter&, const Value& v, const BoundArgs&) { return !v.is_undefined(); }},
      {"undefined",
       [](Interpreter&, const Value& v, const BoundArgs&) { return v.is_undefined(); }},
      {"none", [](Interpreter&, const Value& v, const BoundArgs&) { return v.is_none(); }},
      {"boolean", [](Interpreter&, const Value& v, const BoundArgs&) { return v.is_bool(); }},
      {"true",
       [](Interpreter&, const Value& v, const BoundArgs&) { return v.is_bool() && v.as_bool(); }},
      {"false",
       [](Interpreter&, const Value& v, const BoundArgs&) { return v.is_bool() && !v.as_bool(); }},
      {"integer", [](Interpreter&, const Value& v, const BoundArgs&) { return v.is_int(); }},
      {"float", [](Interpreter&, const Value& v, const BoundArgs&) { return v.is_float(); }},
      {"number", [](Interpreter&, const Value& v, const BoundArgs&) { return v.is_number(); }},
      {"string", [](Interpreter&, const Value& v, const BoundArgs&) { return v.is_string(); }},
      {"mapping", [](Interpreter&, const Value& v, const BoundArgs&) { return v.is_dict(); }},
      // Jinja's Undefined is iterable (empty), has len() and __getitem__, and is callable.
      {"iterable",
       [](Interpreter&, const Value& v, const BoundArgs&) {
         return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict() ||
                (v.is_object() && v.as_object().type == ObjectData::Type::kLoop);
       }},
      {"sequence",
       [](Interpreter&, const Value& v, const BoundArgs&) {
         return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
       }},
      {"callable", [](Interpreter&, const Value& v,
                      const BoundArgs&) { return v.is_callable() || v.is_undefined(); }},
      {"odd", IsOdd},
      {"even", IsEven},
      {"divisibleby", IsDivisibleBy},
      {"lower", [](Interpreter&, const Value& v, const BoundArgs&) { return CaseTest(v, false); }},
      {"upper", [](Interpreter&, const Value& v, const BoundArgs&) { return CaseTest(v, true); }},
      {"escaped", [](Interpreter&, const Value&, const BoundArgs&) { return false; }},
      {"sameas", [](Interpreter&, const Value& v,
                    const BoundArgs& a) { return SameAs(v, Arg(a, "sameas")); }},
      {"in",
       [](Interpreter&, const Value& v, const BoundArgs& a) { return Contains(Arg(a, "in"), v); }},
      {"eq",
       [](Interpreter&, const Value& v, const BoundArgs& a) { return Equals(v, Arg(a, "eq")); }},
      {"ne",
       [](Interpreter&, const Value& v, const BoundArgs& a) { return !Equals(v, Arg(a, "ne")); }},
      {"lt", [](Interpreter&, const Value& v,
                const BoundArgs& a) { return CompareArgs(v, a, "lt") < 0; }},
      {"le", [](Interpreter&, const Value& v,
                const BoundArgs& a) { return CompareArgs(v, a, "le") <= 0; }},
      {"gt", [](Interpreter&, const Value& v,
                const BoundArgs& a) { return CompareArgs(v, a, "gt") > 0; }},
      {"ge", [](Interpreter&, const Value& v,
                const BoundArgs& a) { return CompareArgs(v, a, "ge") >= 0; }},
  };
  return *tests;
}

// Jinja's aliases for the comparison tests.
std::string Canonical(const std::string& name) {
  if (name == "equalto" || name == "==") return "eq";
  if (name == "!=") return "ne";
  if (name == "lessthan" || name == "<") return "lt";
  if (name == "<=") return "le";
  if (name == "greaterthan" || name == ">") return "gt";
  if (name == ">=") return "ge";
  return name;
}

}  // namespace

bool HasTest(const std::string& name) { return Tests().count(Canonical(name)) > 0; }

bool ApplyTest(Interpreter& interp, const std::string& name, const Value& operand, CallArgs args) {
  interp.Step();
  auto it = Tests().find(Canonical(name));
  if (it == Tests().end()) throw Error("No test named '" + name + "'.");
  BoundArgs bound(name, std::move(args), {"other"});
  return it->second(interp, operand, bound);
}

}  // namespace strata::model::jinja
