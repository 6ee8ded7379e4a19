#include "model/jinja_methods.h"

#include <array>
#include <stdexcept>

#include "model/jinja_args.h"
#include "model/jinja_text.h"

namespace strata::model::jinja {
namespace {

constexpr int64_t kMaxRange = 100000;  // jinja2.sandbox.MAX_RANGE

const std::string& RequireString(const Value& v, const std::string& what) {
  if (!v.is_string()) throw Error(what + " must be str, not " + TypeName(v));
  return v.as_string();
}

const std::string* OptionalString(const BoundArgs& a, size_t i, const std::string& what) {
  if (!a.has(i) || a.get(i).is_none()) return nullptr;
  return &RequireString(a.get(i), what);
}

int64_t OptionalInt(const BoundArgs& a, size_t i, int64_t fallback, const std::string& what) {
  if (!a.has(i) || a.get(i).is_none()) return fallback;
  if (!a.get(i).is_integral()) {
    throw Error(what + " must be an integer, not " + TypeName(a.get(i)));
  }
  return a.get(i).as_int();
}

Value StringList(std::vector<std::string> parts) {
  std::vector<Value> items;
  items.reserve(parts.size());
  for (auto& p : parts) items.push_back(Value::String(std::move(p)));
  return Value::List(std::move(items));
}

// startswith/endswith accept a str or a tuple of str.
bool AffixMatch(const std::string& s, const Value& affix, bool prefix, const std::string& fn) {
  auto one = [&](const std::string& a) {
    if (a.size() > s.size()) return false;
    return prefix ? s.compare(0, a.size(), a) == 0
                  : s.compare(s.size() - a.size(), a.size(), a) == 0;
  };
  if (affix.is_string()) return one(affix.as_string());
  if (affix.is_list() && affix.as_list().is_tuple) {
    for (const Value& v : affix.as_list().items) {
      if (one(RequireString(v, "tuple for " + fn))) return true;
    }
    return false;
  }
  throw Error(fn + " first arg must be str or a tuple of str, not " + TypeName(affix));
}

// Python str.format with {} / {0} / {name} fields (no format specs or conversions).
Value StrFormat(Interpreter& interp, const std::string& fmt, const CallArgs& args) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    const char c = fmt[i];
    if (c == '}') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}') {
        out.push_back('}');
        ++i;
        continue;
      }
      throw Error("Single '}' encountered in format string");
    }
    if (c != '{') {
      out.push_back(c);
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out.push_back('{');
      ++i;
      continue;
    }
    const size_t close = fmt.find('}', i);
    if (close == std::string::npos) throw Error("Single '{' encountered in format string");
    const std::string field = fmt.substr(i + 1, close - i - 1);
    if (field.find_first_of(":!.[") != std::string::npos) {
      throw Error("format fields with specs or conversions are not supported: {" + field + "}");
    }
    const Value* v = nullptr;
    if (field.empty() || field.find_first_not_of("0123456789") == std::string::npos) {
      const size_t index = field.empty() ? auto_index++ : std::stoul(field);
      if (index >= args.positional.size()) {
        throw Error("Replacement index " + std::to_string(index) + " out of range");
      }
      v = &args.positional[index];
    } else {
      for (const auto& [k, val] : args.keyword) {
        if (k == field) v = &val;
      }
      if (v == nullptr) throw Error("KeyError: '" + field + "'");
    }
    out += ToStr(*v);
    interp.CheckStringSize(out.size());
    i = close;
  }
  return Value::String(std::move(out));
}

Value CallStringMethod(Interpreter& interp, const std::string& s, const std::string& name,
                       CallArgs args) {
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    BoundArgs a(name, std::move(args), {"chars"});
    return Value::String(
        PyStrip(s, OptionalString(a, 0, name + " arg"), name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    BoundArgs a(name, std::move(args), {"sep", "maxsplit"});
    const std::string* sep = OptionalString(a, 0, "sep");
    if (sep != nullptr && sep->empty()) throw Error("empty separator");
    const int64_t maxsplit = OptionalInt(a, 1, -1, "maxsplit");
    auto parts = name == "split" ? PySplit(s, sep, maxsplit) : PyRSplit(s, sep, maxsplit);
    interp.Step(static_cast<int64_t>(parts.size()));
    return StringList(std::move(parts));
  }
  if (name == "splitlines") {
    BoundArgs a(name, std::move(args), {});
    return StringList(PySplitLines(s));
  }
  if (name == "startswith" || name == "endswith") {
    BoundArgs a(name, std::move(args), {"affix"});
    if (!a.has(0)) throw Error(name + "() takes at least 1 argument (0 given)");
    return Value::Bool(AffixMatch(s, a.get(0), name == "startswith", name));
  }
  if (name == "replace") {
    BoundArgs a(name, std::move(args), {"old", "new", "count"});
    if (!a.has(0) || !a.has(1)) throw Error("replace() takes at least 2 arguments");
    std::string out;
    if (!PyReplace(s, RequireString(a.get(0), "replace() argument 1"),
                   RequireString(a.get(1), "replace() argument 2"), OptionalInt(a, 2, -1, "count"),
                   interp.limits().max_string_bytes, out)) {
      interp.CheckStringSize(interp.limits().max_string_bytes + 1);
    }
    return Value::String(std::move(out));
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
    BoundArgs a(name, std::move(args), {});
    if (name == "upper") return Value::String(PyUpper(s));
    if (name == "lower") return Value::String(PyLower(s));
    if (name == "title") return Value::String(PyTitle(s));
    return Value::String(PyCapitalize(s));
  }
  if (name == "find" || name == "rfind" || name == "count" || name == "index" || name == "rindex") {
    BoundArgs a(name, std::move(args), {"sub"});
    if (!a.has(0)) throw Error(name + "() takes at least 1 argument (0 given)");
    const std::string& sub = RequireString(a.get(0), name + "() argument");
    if (name == "count") {
      if (sub.empty()) return Value::Int(CodepointCount(s) + 1);
      int64_t n = 0;
      for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
      return Value::Int(n);
    }
    const size_t p = (name == "find" || name == "index") ? s.find(sub) : s.rfind(sub);
    if (p == std::string::npos) {
      if (name == "index" || name == "rindex") throw Error("substring not found");
      return Value::Int(-1);
    }
    return Value::Int(CodepointCount(std::string_view(s).substr(0, p)));
  }
  if (name == "join") {
    BoundArgs a(name, std::move(args), {"iterable"});
    if (!a.has(0)) throw Error("join() takes exactly one argument (0 given)");
    std::string out;
    bool first = true;
    for (const Value& v : interp.Iterate(a.get(0))) {
      if (!first) out += s;
      first = false;
      out += RequireString(v, "sequence item");
      interp.CheckStringSize(out.size());
    }
    return Value::String(std::move(out));
  }
  if (name == "removeprefix" || name == "removesuffix") {
    BoundArgs a(name, std::move(args), {"affix"});
    if (!a.has(0)) throw Error(name + "() takes exactly one argument (0 given)");
    const std::string& affix = RequireString(a.get(0), name + "() argument");
    if (name == "removeprefix") {
      if (s.compare(0, affix.size(), affix) == 0) return Value::String(s.substr(affix.size()));
    } else if (affix.size() <= s.size() &&
               s.compare(s.size() - affix.size(), affix.size(), affix) == 0) {
      return Value::String(s.substr(0, s.size() - affix.size()));
    }
    return Value::String(s);
  }
  if (name == "format") return StrFormat(interp, s, args);
  // is* predicates
  BoundArgs a(name, std::move(args), {});
  const std::u32string cps = DecodeUtf8(s);
  if (cps.empty()) return Value::Bool(false);
  bool all = true;
  bool any_cased = false;
  for (char32_t cp : cps) {
    if (name == "isdigit") all = all && IsDigit(cp);
    if (name == "isalpha") all = all && IsAlpha(cp);
    if (name == "isalnum") all = all && IsAlnum(cp);
    if (name == "isspace") all = all && IsPythonSpace(cp);
    if (name == "isupper" || name == "islower") {
      if (IsCased(cp)) {
        any_cased = true;
        all = all && (name == "isupper" ? ToUpper(cp) == cp : ToLower(cp) == cp);
      }
    }
  }
  if (name == "isupper" || name == "islower") return Value::Bool(all && any_cased);
  return Value::Bool(all);
}

Value CallDictMethod(const DictData& d, const std::string& name, CallArgs args) {
  if (name == "get") {
    BoundArgs a("get", std::move(args), {"key", "default"});
    if (!a.has(0)) throw Error("get expected at least 1 argument, got 0");
    if (a.get(0).is_string()) {
      if (const Value* v = d.Find(a.get(0).as_string())) return *v;
    }
    return a.get_or(1, Value::None());
  }
  BoundArgs a(name, std::move(args), {});
  std::vector<Value> items;
  items.reserve(d.entries.size());
  for (const auto& [k, v] : d.entries) {
    if (name == "keys") {
      items.push_back(Value::String(k));
    } else if (name == "values") {
      items.push_back(v);
    } else {
      items.push_back(Value::List({Value::String(k), v}, true));
    }
  }
  return Value::List(std::move(items));
}

Value CallListMethod(const ListData& l, const std::string& name, CallArgs args) {
  BoundArgs a(name, std::move(args), {"value"});
  if (!a.has(0)) throw Error(name + "() takes exactly one argument (0 given)");
  int64_t count = 0;
  for (size_t i = 0; i < l.items.size(); ++i) {
    if (Equals(l.items[i], a.get(0))) {
      if (name == "index") return Value::Int(static_cast<int64_t>(i));
      ++count;
    }
  }
  if (name == "index") throw Error(Repr(a.get(0)) + " is not in list");
  return Value::Int(count);
}

class BoundMethod : public Callable {
 public:
  BoundMethod(Value self, std::string method)
      : self_(std::move(self)), method_(std::move(method)) {}
  std::string name() const override { return method_; }
  Value Call(Interpreter& interp, CallArgs args) const override {
    interp.Step();
    switch (self_.kind()) {
      case Value::Kind::kString:
        return CallStringMethod(interp, self_.as_string(), method_, std::move(args));
      case Value::Kind::kDict:
        return CallDictMethod(self_.as_dict(), method_, std::move(args));
      case Value::Kind::kList:
        return CallListMethod(self_.as_list(), method_, std::move(args));
      case Value::Kind::kObject: {  // loop.cycle(...)
        const Value* index0 = self_.as_object().Find("index0");
        if (args.positional.empty()) throw Error("no items for cycling given");
        const auto n = static_cast<int64_t>(args.positional.size());
        return args.positional[static_cast<size_t>(index0->as_int() % n)];
      }
      default:
        throw Error("'" + TypeName(self_) + "' object has no method '" + method_ + "'");
    }
  }

 private:
  Value self_;
  std::string method_;
};

bool IsOneOf(const std::string& name, std::initializer_list<std::string_view> names) {
  for (std::string_view n : names) {
    if (n == name) return true;
  }
  return false;
}

Value Unsafe(const Value& obj, const std::string& name) {
  return Value::Undefined("access to attribute '" + name + "' of '" + TypeName(obj) +
                          "' object is unsafe.");
}

// namespace()/dict() arguments: an optional mapping or iterable of pairs, then keywords.
DictData MappingFromArgs(Interpreter& interp, const std::string& fn, CallArgs args) {
  DictData dict;
  if (args.positional.size() > 1) {
    throw Error(fn + " expected at most 1 argument, got " + std::to_string(args.positional.size()));
  }
  if (args.positional.size() == 1) {
    const Value& source = args.positional[0];
    if (source.is_dict()) {
      dict = source.as_dict();
    } else {
      for (const Value& pair : interp.Iterate(source)) {
        std::vector<Value> kv = interp.Iterate(pair);
        if (kv.size() != 2) throw Error(fn + " sequence elements must have length 2");
        if (!kv[0].is_string()) throw Error(fn + " keys must be strings");
        dict.Set(kv[0].as_string(), std::move(kv[1]));
      }
    }
  }
  for (auto& [k, v] : args.keyword) dict.Set(k, std::move(v));
  return dict;
}

Value Range(Interpreter& interp, CallArgs args) {
  if (!args.keyword.empty()) throw Error("range() takes no keyword arguments");
  const auto& p = args.positional;
  if (p.empty() || p.size() > 3) {
    throw Error("range expected 1 to 3 arguments, got " + std::to_string(p.size()));
  }
  for (const Value& v : p) {
    if (!v.is_integral()) {
      throw Error("'" + TypeName(v) + "' object cannot be interpreted as an integer");
    }
  }
  const int64_t start = p.size() == 1 ? 0 : p[0].as_int();
  const int64_t stop = p.size() == 1 ? p[0].as_int() : p[1].as_int();
  const int64_t step = p.size() == 3 ? p[2].as_int() : 1;
  if (step == 0) throw Error("range() arg 3 must not be zero");
  // Length computed in floating point first so huge bounds cannot overflow.
  const long double span = static_cast<long double>(stop) - static_cast<long double>(start);
  const long double len_f = span / static_cast<long double>(step);
  if (len_f > static_cast<long double>(kMaxRange)) {
    throw Error("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  }
  std::vector<Value> items;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    items.push_back(Value::Int(i));
  }
  interp.Step(static_cast<int64_t>(items.size()));
  return Value::List(std::move(items));
}

}  // namespace

std::optional<Value> BindMethod(const Value& obj, const std::string& name) {
  auto bound = [&]() { return Value::Function(std::make_shared<BoundMethod>(obj, name)); };
  switch (obj.kind()) {
    case Value::Kind::kString:
      if (IsOneOf(name,
                  {"strip",      "lstrip",       "rstrip",       "split",  "rsplit",  "splitlines",
                   "startswith", "endswith",     "replace",      "upper",  "lower",   "title",
                   "capitalize", "find",         "rfind",        "index",  "rindex",  "count",
                   "join",       "removeprefix", "removesuffix", "format", "isdigit", "isalpha",
                   "isalnum",    "isspace",      "isupper",      "islower"})) {
        return bound();
      }
      return std::nullopt;
    case Value::Kind::kDict:
      if (IsOneOf(name, {"get", "items", "keys", "values"})) return bound();
      if (IsOneOf(name, {"pop", "popitem", "setdefault", "update", "clear"})) {
        return Unsafe(obj, name);
      }
      return std::nullopt;
    case Value::Kind::kList:
      if (IsOneOf(name, {"index", "count"})) return bound();
      if (IsOneOf(name,
                  {"append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear"})) {
        return Unsafe(obj, name);
      }
      return std::nullopt;
    case Value::Kind::kObject:
      if (obj.as_object().type == ObjectData::Type::kLoop && name == "cycle") return bound();
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

void AddBuiltinGlobals(Scope& scope) {
  scope.Set("range", Value::Function(std::make_shared<NativeFunction>("range", Range)));
  scope.Set("namespace", Value::Function(std::make_shared<NativeFunction>(
                             "namespace", [](Interpreter& interp, CallArgs args) {
                               auto ns = std::make_shared<ObjectData>();
                               ns->type = ObjectData::Type::kNamespace;
                               ns->attrs =
                                   MappingFromArgs(interp, "namespace", std::move(args)).entries;
                               ns->UpdateDepth();
                               interp.TrackObject(ns);
                               return Value::Object(std::move(ns));
                             })));
  scope.Set("dict", Value::Function(std::make_shared<NativeFunction>(
                        "dict", [](Interpreter& interp, CallArgs args) {
                          return Value::Dict(MappingFromArgs(interp, "dict", std::move(args)));
                        })));
}

}  // namespace strata::model::jinja
