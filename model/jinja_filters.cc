#include "model/jinja_filters.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <unordered_map>

#include "model/jinja_args.h"
#include "model/jinja_methods.h"
#include "model/jinja_text.h"

namespace strata::model::jinja {
namespace {

using FilterFn = Value (*)(Interpreter&, Value, CallArgs);

std::string Str(const Value& v) { return ToStr(v); }

Value StrResult(Interpreter& interp, std::string s) {
  interp.CheckStringSize(s.size());
  return Value::String(std::move(s));
}

// jinja2.filters.make_attrgetter: dotted path, digit parts are list indexes, item lookup first.
Value GetPath(Interpreter& interp, const Value& item, const Value& attribute) {
  if (attribute.is_integral()) return interp.GetItem(item, attribute);
  const std::string path = ToStr(attribute);
  Value v = item;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? dot : dot - start);
    const bool digits = !part.empty() && part.find_first_not_of("0123456789") == std::string::npos;
    v = interp.GetItem(
        v, digits ? Value::Int(std::strtoll(part.c_str(), nullptr, 10)) : Value::String(part));
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}

// The key used for sorting/unique/min/max: optional attribute, lowercased unless case-sensitive.
Value SortKey(Interpreter& interp, const Value& item, const BoundArgs& a, size_t attr_index,
              bool case_sensitive) {
  Value key = a.has(attr_index) && !a.get(attr_index).is_none()
                  ? GetPath(interp, item, a.get(attr_index))
                  : item;
  if (!case_sensitive && key.is_string()) return Value::String(PyLower(key.as_string()));
  return key;
}

Value FilterDefault(Interpreter&, Value v, CallArgs args) {
  BoundArgs a("default", std::move(args), {"default_value", "boolean"});
  if (v.is_undefined() || (a.flag(1, false) && !Truthy(v))) {
    return a.get_or(0, Value::String(""));
  }
  return v;
}

Value FilterLength(Interpreter&, Value v, CallArgs args) {
  BoundArgs a("length", std::move(args), {});
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return Value::Int(0);
    case Value::Kind::kString:
      return Value::Int(CodepointCount(v.as_string()));
    case Value::Kind::kList:
      return Value::Int(static_cast<int64_t>(v.as_list().items.size()));
    case Value::Kind::kDict:
      return Value::Int(static_cast<int64_t>(v.as_dict().entries.size()));
    default:
      throw Error("object of type '" + TypeName(v) + "' has no len()");
  }
}

Value FilterJoin(Interpreter& interp, Value v, CallArgs args) {
  BoundArgs a("join", std::move(args), {"d", "attribute"});
  const std::string sep = a.has(0) ? Str(a.get(0)) : "";
  std::string out;
  bool first = true;
  for (const Value& item : interp.Iterate(v)) {
    if (!first) out += sep;
    first = false;
    out += Str(a.has(1) && !a.get(1).is_none() ? GetPath(interp, item, a.get(1)) : item);
    interp.CheckStringSize(out.size());
  }
  return Value::String(std::move(out));
}

Value FilterFirst(Interpreter& interp, Value v, CallArgs args) {
  BoundArgs a("first", std::move(args), {});
  std::vector<Value> items = interp.Iterate(v);
  if (items.empty()) return Value::Undefined("No first item, sequence was empty.");
  return items.front();
}

Value FilterLast(Interpreter& interp, Value v, CallArgs args) {
  BoundArgs a("last", std::move(args), {});
  std::vector<Value> items = interp.Iterate(v);
  if (items.empty()) return Value::Undefined("No last item, sequence was empty.");
  return items.back();
}

Value FilterList(Interpreter& interp, Value v, CallArgs args) {
  BoundArgs a("list", std::move(args), {});
  return Value::List(interp.Iterate(v));
}

Value FilterReverse(Interpreter& interp, Value v, CallArgs args) {
  BoundArgs a("reverse", std::move(args), {});
  if (v.is_string()) {
    std::u32string cps = DecodeUtf8(v.as_string());
    std::reverse(cps.begin(), cps.end());
    return Value::String(EncodeUtf8(cps));
  }
  std::vector<Value> items = interp.Iterate(v);
  std::reverse(items.begin(), items.end());
  return Value::List(std::move(items));
}

Value FilterSort(Interpreter& interp, Value v, CallArgs args) {
  BoundArgs a("sort", std::move(args), {"reverse", "case_sensitive", "attribute"});
  const bool reverse = a.flag(0, false);
  const bool case_sensitive = a.flag(1, false);
  std::vector<Value> items = interp.Iterate(v);
  std::vector<std::pair<Value, size_t>> keyed;
  for (size_t i = 0; i < items.size(); ++i) {
    keyed.emplace_back(SortKey(interp, items[i], a, 2, case_sensitive), i);
  }
  interp.Step(static_cast<int64_t>(items.size()) * 8);
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    return reverse ? Compare(y.first, x.first) < 0 : Compare(x.first, y.first) < 0;
  });
  std::vector<Value> out;
  for (const auto& [key, i] : keyed) out.push_back(items[i]);
  return Value::List(std::move(out));
}

Value FilterUnique(Interpreter& interp, Value v, CallArgs args) {
  BoundArgs a("unique", std::move(args), {"case_sensitive", "attribute"});
  std::vector<Value> seen;
  std::vector<Value> out;
  for (const Value& item : interp.Iterate(v)) {
    Value key = SortKey(interp, item, a, 1, a.flag(0, false));
    interp.Step(static_cast<int64_t>(seen.size()));
    if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return Equals(s, key); })) {
      seen.push_back(std::move(key));
      out.push_back(item);
    }
  }
  return Value::List(std::move(out));
}

Value MinMax(Interpreter& interp, Value v, CallArgs args, bool max) {
  BoundArgs a(max ? "max" : "min", std::move(args), {"case_sensitive", "attribute"});
  std::vector<Value> items = interp.Iterate(v);
  if (items.empty()) return Value::Undefined("No aggregated item, sequence was empty.");
  size_t best = 0;
  Value best_key = SortKey(interp, items[0], a, 1, a.flag(0, false));
  for (size_t i = 1; i < items.size(); ++i) {
    Value key = SortKey(interp, items[i], a, 1, a.flag(0, false));
    const int c = Compare(key, best_key);
    if (max ? c > 0 : c < 0) {
      best = i;
      best_key = std::move(key);
    }
  }
  return items[best];
}
Value FilterMax(Interpreter& i, Value v, CallArgs a) {
  return MinMax(i, std::move(v), std::move(a), true);
}
Value FilterMin(Interpreter& i, Value v, CallArgs a) {
  return MinMax(i, std::move(v), std::move(a), false);
}

Value FilterSum(Interpreter& interp, Value v, CallArgs args) {
  BoundArgs a("sum", std::move(args), {"attribute", "start"});
  Value total = a.get_or(1, Value::Int(0));
  for (const Value& item : interp.Iterate(v)) {
    total = BinaryOp(interp, "+", total,
                     a.has(0) && !a.get(0).is_none() ? GetPath(interp, item, a.get(0)) : item);
  }
  return total;
}

Value FilterItems(Interpreter&, Value v, CallArgs args) {
  BoundArgs a("items", std::move(args), {});
  if (v.is_undefined()) return Value::List({});
  if (!v.is_dict()) throw Error("Can only get item pairs from a mapping.");
  std::vector<Value> out;
  for (const auto& [k, val] : v.as_dict().entries) {
    out.push_back(Value::List({Value::String(k), val}, true));
  }
  return Value::List(std::move(out));
}

Value FilterDictsort(Interpreter& interp, Value v, CallArgs args) {
  BoundArgs a("dictsort", std::move(args), {"case_sensitive", "by", "reverse"});
  if (!v.is_dict()) throw Error("dictsort filter expects a mapping, got " + TypeName(v));
  const std::string by = a.has(1) ? Str(a.get(1)) : "key";
  if (by != "key" && by != "value") throw Error("You can only sort by either 'key' or 'value'");
  const size_t pos = by == "key" ? 0 : 1;
  std::vector<Value> items = FilterItems(interp, v, {}).as_list().items;
  const bool cs = a.flag(0, false);
  auto key = [&](const Value& item) {
    const Value& k = item.as_list().items[pos];
    return (!cs && k.is_string()) ? Value::String(PyLower(k.as_string())) : k;
  };
  const bool reverse = a.flag(2, false);
  std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
    return reverse ? Compare(key(y), key(x)) < 0 : Compare(key(x), key(y)) < 0;
  });
  return Value::List(std::move(items));
}

Value FilterTrim(Interpreter&, Value v, CallArgs args) {
  BoundArgs a("trim", std::move(args), {"chars"});
  std::string chars;
  const bool has_chars = a.has(0) && !a.get(0).is_none();
  if (has_chars) chars = Str(a.get(0));
  return Value::String(PyStrip(Str(v), has_chars ? &chars : nullptr, true, true));
}

Value FilterUpper(Interpreter&, Value v, CallArgs args) {
  BoundArgs a("upper", std::move(args), {});
  return Value::String(PyUpper(Str(v)));
}
Value FilterLower(Interpreter&, Value v, CallArgs args) {
  BoundArgs a("lower", std::move(args), {});
  return Value::String(PyLower(Str(v)));
}
Value FilterCapitalize(Interpreter&, Value v, CallArgs args) {
  BoundArgs a("capitalize", std::move(args), {});
  return Value::String(PyCapitalize(Str(v)));
}

// jinja2's do_title: split on runs of [-\s({\[<], upper-case the first char of each piece.
Value FilterTitle(Interpreter&, Value v, CallArgs args) {
  BoundArgs a("title", std::move(args), {});
  const std::u32string cps = DecodeUtf8(Str(v));
  auto is_sep = [](char32_t c) {
    return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || IsPythonSpace(c);
  };
  std::string out;
  size_t i = 0;
  while (i < cps.size()) {
    const bool sep = is_sep(cps[i]);
    size_t j = i;
    while (j < cps.size() && is_sep(cps[j]) == sep) ++j;
    for (size_t k = i; k < j; ++k) {
      AppendUtf8(sep ? cps[k] : (k == i ? ToUpper(cps[k]) : ToLower(cps[k])), out);
    }
    i = j;
  }
  return Value::String(std::move(out));
}

Value FilterReplace(Interpreter& interp, Value v, CallArgs args) {
  BoundArgs a("replace", std::move(args), {"old", "new", "count"});
  if (!a.has(0) || !a.has(1)) throw Error("replace filter needs 'old' and 'new'");
  int64_t count = -1;
  if (a.has(2) && !a.get(2).is_none()) count = a.get(2).as_int();
  std::string out;
  if (!PyReplace(Str(v), Str(a.get(0)), Str(a.get(1)), count, interp.limits().max_string_bytes,
                 out)) {
    interp.CheckStringSize(interp.limits().max_string_bytes + 1);
  }
  return Value::String(std::move(out));
}

Value FilterIndent(Interpreter& interp, Value v, CallArgs args) {
  BoundArgs a("indent", std::move(args), {"width", "first", "blank"});
  std::string indention = "    ";
  if (a.has(0)) {
    const Value& w = a.get(0);
    if (w.is_string()) {
      indention = w.as_string();
    } else if (w.is_integral()) {
      interp.CheckStringSize(static_cast<size_t>(std::max<int64_t>(w.as_int(), 0)));
      indention = std::string(static_cast<size_t>(std::max<int64_t>(w.as_int(), 0)), ' ');
    } else {
      throw Error("indent width must be an integer or a string");
    }
  }
  const std::vector<std::string> lines = PySplitLines(Str(v) + "\n");
  std::string rv;
  if (a.flag(2, false)) {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i > 0) rv += "\n" + indention;
      rv += lines[i];
      interp.CheckStringSize(rv.size());
    }
  } else {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i > 0) rv += "\n" + (lines[i].empty() ? std::string() : indention);
      rv += lines[i];
      interp.CheckStringSize(rv.size());
    }
  }
  if (a.flag(1, false)) rv = indention + rv;
  return StrResult(interp, std::move(rv));
}

// Python int(str): optional whitespace, sign, digits with single underscores.
bool ParsePyInt(const std::string& text, int64_t& out) {
  const std::string s = PyStrip(text, nullptr, true, true);
  size_t i = 0;
  bool neg = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
  if (i >= s.size()) return false;
  __int128 v = 0;
  bool prev_digit = false;
  for (; i < s.size(); ++i) {
    if (s[i] == '_' && prev_digit && i + 1 < s.size() && s[i + 1] != '_') {
      prev_digit = false;
      continue;
    }
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
    if (v > static_cast<__int128>(INT64_MAX) + 1) return false;
    prev_digit = true;
  }
  if (!prev_digit) return false;
  v = neg ? -v : v;
  if (v > INT64_MAX || v < INT64_MIN) return false;
  out = static_cast<int64_t>(v);
  return true;
}

bool ParsePyFloat(const std::string& text, double& out) {
  const std::string s = PyStrip(text, nullptr, true, true);
  if (s.empty()) return false;
  std::string clean;
  for (char c : s) {
    if (c != '_') clean.push_back(c);
  }
  char* end = nullptr;
  out = std::strtod(clean.c_str(), &end);
  return end == clean.c_str() + clean.size() && clean.find_first_of("xXpP") == std::string::npos;
}

Value FilterInt(Interpreter&, Value v, CallArgs args) {
  BoundArgs a("int", std::move(args), {"default", "base"});
  const Value fallback = a.get_or(0, Value::Int(0));
  if (v.is_integral()) return Value::Int(v.as_int());
  if (v.is_float()) {
    const double d = v.as_float();
    if (!std::isfinite(d) || std::fabs(d) >= 9.2e18) return fallback;
    return Value::Int(static_cast<int64_t>(std::trunc(d)));
  }
  if (v.is_string()) {
    int64_t i = 0;
    if (ParsePyInt(v.as_string(), i)) return Value::Int(i);
    double d = 0;
    if (ParsePyFloat(v.as_string(), d) && std::isfinite(d) && std::fabs(d) < 9.2e18) {
      return Value::Int(static_cast<int64_t>(std::trunc(d)));
    }
  }
  return fallback;
}

Value FilterFloat(Interpreter&, Value v, CallArgs args) {
  BoundArgs a("float", std::move(args), {"default"});
  if (v.is_number()) return Value::Float(v.as_float());
  double d = 0;
  if (v.is_string() && ParsePyFloat(v.as_string(), d)) return Value::Float(d);
  return a.get_or(0, Value::Float(0.0));
}

Value FilterRound(Interpreter&, Value v, CallArgs args) {
  BoundArgs a("round", std::move(args), {"precision", "method"});
  const int64_t precision = a.has(0) ? a.get(0).as_int() : 0;
  const std::string method = a.has(1) ? Str(a.get(1)) : "common";
  if (method != "common" && method != "ceil" && method != "floor") {
    throw Error("method must be 'common', 'ceil' or 'floor'");
  }
  if (!v.is_number()) throw Error("type " + TypeName(v) + " doesn't define __round__ method");
  if (precision < -300 || precision > 300) throw Error("round precision out of range");
  if (method == "common") {
    if (v.is_integral()) return Value::Int(v.as_int());
    const double d = v.as_float();
    if (!std::isfinite(d)) return Value::Float(d);
    if (precision >= 0) {
      char buf[512];
      std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(precision), d);
      return Value::Float(std::strtod(buf, nullptr));
    }
    const double scale = std::pow(10.0, static_cast<double>(-precision));
    return Value::Float(std::nearbyint(d / scale) * scale);
  }
  const double scale = std::pow(10.0, static_cast<double>(precision));
  const double x = v.as_float() * scale;
  return Value::Float((method == "ceil" ? std::ceil(x) : std::floor(x)) / scale);
}

Value FilterAbs(Interpreter&, Value v, CallArgs args) {
  BoundArgs a("abs", std::move(args), {});
  if (v.is_float()) return Value::Float(std::fabs(v.as_float()));
  if (v.is_integral()) {
    if (v.as_int() == INT64_MIN) throw Error("integer overflow");
    return Value::Int(std::llabs(v.as_int()));
  }
  throw Error("bad operand type for abs(): '" + TypeName(v) + "'");
}

Value FilterString(Interpreter&, Value v, CallArgs args) {
  BoundArgs a("string", std::move(args), {});
  return Value::String(Str(v));
}

Value FilterEscape(Interpreter& interp, Value v, CallArgs args) {
  BoundArgs a("escape", std::move(args), {});
  std::string out;
  for (char c : Str(v)) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return StrResult(interp, std::move(out));
}

Value FilterToJson(Interpreter& interp, Value v, CallArgs args) {
  BoundArgs a("tojson", std::move(args), {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonOptions o;
  o.ensure_ascii = a.flag(0, false);
  o.sort_keys = a.flag(3, false);
  if (a.has(1) && !a.get(1).is_none()) {
    const Value& indent = a.get(1);
    o.has_indent = true;
    if (indent.is_string()) {
      o.indent = indent.as_string();
    } else if (indent.is_integral()) {
      o.indent =
          std::string(static_cast<size_t>(std::clamp<int64_t>(indent.as_int(), 0, 1024)), ' ');
    } else {
      throw Error("tojson indent must be an integer or a string");
    }
  }
  o.item_separator = o.has_indent ? "," : ", ";
  o.max_bytes = interp.limits().max_string_bytes;
  if (a.has(2) && !a.get(2).is_none()) {
    std::vector<Value> seps = interp.Iterate(a.get(2));
    if (seps.size() != 2 || !seps[0].is_string() || !seps[1].is_string()) {
      throw Error("tojson separators must be a pair of strings");
    }
    o.item_separator = seps[0].as_string();
    o.key_separator = seps[1].as_string();
  }
  return StrResult(interp, ToJson(v, o));
}

Value FilterAttr(Interpreter& interp, Value v, CallArgs args) {
  BoundArgs a("attr", std::move(args), {"name"});
  if (!a.has(0)) throw Error("attr filter needs a name");
  const std::string name = Str(a.get(0));
  if (v.is_dict()) {  // attribute lookup only: dict keys are items, not attributes
    if (std::optional<Value> m = BindMethod(v, name)) return *m;
    return Value::Undefined("'dict object' has no attribute '" + name + "'");
  }
  return interp.GetAttr(v, name);
}

// map(attribute=..., default=...) or map('filter', args...).
Value FilterMap(Interpreter& interp, Value v, CallArgs args) {
  std::vector<Value> items = interp.Iterate(v);
  std::vector<Value> out;
  Value attribute;
  Value fallback;
  bool by_attribute = false;
  for (auto& [k, val] : args.keyword) {
    if (k == "attribute") {
      attribute = val;
      by_attribute = true;
    } else if (k == "default") {
      fallback = val;
    }
  }
  if (by_attribute) {
    for (const Value& item : items) {
      Value x = GetPath(interp, item, attribute);
      out.push_back(x.is_undefined() && !fallback.is_undefined() ? fallback : x);
    }
    return Value::List(std::move(out));
  }
  if (args.positional.empty()) throw Error("map requires a filter argument");
  const std::string filter = Str(args.positional[0]);
  CallArgs rest;
  rest.positional.assign(args.positional.begin() + 1, args.positional.end());
  rest.keyword = args.keyword;
  Interpreter::CallDepthGuard guard(interp);
  for (Value& item : items) out.push_back(ApplyFilter(interp, filter, std::move(item), rest));
  return Value::List(std::move(out));
}

Value SelectImpl(Interpreter& interp, Value v, CallArgs args, bool by_attr, bool select) {
  std::vector<Value> items = interp.Iterate(v);
  size_t next = 0;
  Value attribute;
  if (by_attr) {
    if (args.positional.empty()) throw Error("selectattr/rejectattr need an attribute name");
    attribute = args.positional[next++];
  }
  std::string test;
  if (next < args.positional.size()) test = Str(args.positional[next++]);
  CallArgs rest;
  rest.positional.assign(args.positional.begin() + static_cast<long>(next), args.positional.end());
  rest.keyword = args.keyword;
  Interpreter::CallDepthGuard guard(interp);
  std::vector<Value> out;
  for (Value& item : items) {
    const Value subject = by_attr ? GetPath(interp, item, attribute) : item;
    const bool pass = test.empty() ? Truthy(subject) : ApplyTest(interp, test, subject, rest);
    if (pass == select) out.push_back(std::move(item));
  }
  return Value::List(std::move(out));
}
Value FilterSelect(Interpreter& i, Value v, CallArgs a) {
  return SelectImpl(i, std::move(v), std::move(a), false, true);
}
Value FilterReject(Interpreter& i, Value v, CallArgs a) {
  return SelectImpl(i, std::move(v), std::move(a), false, false);
}
Value FilterSelectAttr(Interpreter& i, Value v, CallArgs a) {
  return SelectImpl(i, std::move(v), std::move(a), true, true);
}
Value FilterRejectAttr(Interpreter& i, Value v, CallArgs a) {
  return SelectImpl(i, std::move(v), std::move(a), true, false);
}

Value FilterBatch(Interpreter& interp, Value v, CallArgs args) {
  BoundArgs a("batch", std::move(args), {"linecount", "fill_with"});
  if (!a.has(0) || !a.get(0).is_integral() || a.get(0).as_int() <= 0) {
    throw Error("batch linecount must be a positive integer");
  }
  const auto size = static_cast<size_t>(a.get(0).as_int());
  std::vector<Value> out;
  std::vector<Value> row;
  for (Value& item : interp.Iterate(v)) {
    row.push_back(std::move(item));
    if (row.size() == size) out.push_back(Value::List(std::exchange(row, {})));
  }
  if (!row.empty()) {
    if (a.has(1) && !a.get(1).is_none()) {
      while (row.size() < size) row.push_back(a.get(1));
    }
    out.push_back(Value::List(std::move(row)));
  }
  return Value::List(std::move(out));
}

Value FilterCenter(Interpreter& interp, Value v, CallArgs args) {
  BoundArgs a("center", std::move(args), {"width"});
  const std::string s = Str(v);
  const int64_t width = a.has(0) ? a.get(0).as_int() : 80;
  const int64_t len = CodepointCount(s);
  if (width <= len) return Value::String(s);
  interp.CheckStringSize(static_cast<size_t>(width));
  const int64_t pad = width - len;
  // CPython: left = pad/2 + (pad & width & 1)
  const int64_t left = pad / 2 + (pad & width & 1);
  return Value::String(std::string(static_cast<size_t>(left), ' ') + s +
                       std::string(static_cast<size_t>(pad - left), ' '));
}

Value FilterWordcount(Interpreter&, Value v, CallArgs args) {
  BoundArgs a("wordcount", std::move(args), {});
  int64_t n = 0;
  bool in_word = false;
  for (char32_t cp : DecodeUtf8(Str(v))) {
    const bool w = IsAlnum(cp) || cp == '_';
    if (w && !in_word) ++n;
    in_word = w;
  }
  return Value::Int(n);
}

Value FilterFormat(Interpreter& interp, Value v, CallArgs args) {
  if (!args.keyword.empty() && !args.positional.empty()) {
    throw Error("can't handle positional and keyword arguments at the same time");
  }
  if (!args.keyword.empty()) throw Error("format filter with keyword arguments is not supported");
  return BinaryOp(interp, "%", Value::String(Str(v)),
                  Value::List(std::move(args.positional), true));
}

Value FilterSafe(Interpreter&, Value v, CallArgs args) {
  BoundArgs a("safe", std::move(args), {});
  return v.is_string() ? v : Value::String(Str(v));
}

const std::unordered_map<std::string, FilterFn>& Filters() {
  static const auto* filters = new std::unordered_map<std::string, FilterFn>{
      {"abs", FilterAbs},
      {"attr", FilterAttr},
      {"batch", FilterBatch},
      {"capitalize", FilterCapitalize},
      {"center", FilterCenter},
      {"count", FilterLength},
      {"d", FilterDefault},
      {"default", FilterDefault},
      {"dictsort", FilterDictsort},
      {"e", FilterEscape},
      {"escape", FilterEscape},
      {"first", FilterFirst},
      {"float", FilterFloat},
      {"forceescape", FilterEscape},
      {"format", FilterFormat},
      {"indent", FilterIndent},
      {"int", FilterInt},
      {"items", FilterItems},
      {"join", FilterJoin},
      {"last", FilterLast},
      {"length", FilterLength},
      {"list", FilterList},
      {"lower", FilterLower},
      {"map", FilterMap},
      {"max", FilterMax},
      {"min", FilterMin},
      {"reject", FilterReject},
      {"rejectattr", FilterRejectAttr},
      {"replace", FilterReplace},
      {"reverse", FilterReverse},
      {"round", FilterRound},
      {"safe", FilterSafe},
      {"select", FilterSelect},
      {"selectattr", FilterSelectAttr},
      {"sort", FilterSort},
      {"string", FilterString},
      {"sum", FilterSum},
      {"title", FilterTitle},
      {"tojson", FilterToJson},
      {"trim", FilterTrim},
      {"unique", FilterUnique},
      {"upper", FilterUpper},
      {"wordcount", FilterWordcount},
  };
  return *filters;
}

}  // namespace

bool HasFilter(const std::string& name) { return Filters().count(name) > 0; }

Value ApplyFilter(Interpreter& interp, const std::string& name, Value operand, CallArgs args) {
  interp.Step();
  auto it = Filters().find(name);
  if (it == Filters().end()) throw Error("No filter named '" + name + "'.");
  return it->second(interp, std::move(operand), std::move(args));
}

}  // namespace strata::model::jinja
