// Python-semantics operators for the Jinja interpreter (declared in jinja_interpreter.h).
#include <cmath>
#include <cstdio>

#include "model/jinja_interpreter.h"
#include "model/jinja_text.h"

namespace strata::model::jinja {
namespace {

[[noreturn]] void Unsupported(const std::string& op, const Value& a, const Value& b) {
  throw Error("unsupported operand type(s) for " + op + ": '" + TypeName(a) + "' and '" +
              TypeName(b) + "'");
}

int64_t CheckedInt(bool overflow, int64_t v) {
  if (overflow) throw Error("integer overflow (values beyond 64 bits are not supported)");
  return v;
}

Value Repeat(Interpreter& interp, const Value& seq, int64_t times) {
  if (times < 0) times = 0;
  if (seq.is_string()) {
    const std::string& s = seq.as_string();
    if (!s.empty() && static_cast<uint64_t>(times) > interp.limits().max_string_bytes / s.size()) {
      interp.CheckStringSize(interp.limits().max_string_bytes + 1);
    }
    std::string out;
    out.reserve(s.size() * static_cast<size_t>(times));
    for (int64_t i = 0; i < times; ++i) out += s;
    interp.Step(times);
    return Value::String(std::move(out));
  }
  const auto& items = seq.as_list().items;
  if (!items.empty() &&
      static_cast<uint64_t>(times) > interp.limits().max_list_items / items.size()) {
    interp.CheckListSize(interp.limits().max_list_items + 1);
  }
  std::vector<Value> out;
  for (int64_t i = 0; i < times; ++i) out.insert(out.end(), items.begin(), items.end());
  interp.Step(static_cast<int64_t>(out.size()));
  return Value::List(std::move(out), seq.as_list().is_tuple);
}

// Python printf-style formatting: "%s" % value or "%s %d" % (a, b).
Value Format(Interpreter& interp, const std::string& fmt, const Value& arg) {
  std::vector<Value> args;
  if (arg.is_list() && arg.as_list().is_tuple) {
    args = arg.as_list().items;
  } else {
    args.push_back(arg);
  }
  size_t next = 0;
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out.push_back(fmt[i]);
      continue;
    }
    if (++i >= fmt.size()) throw Error("incomplete format");
    std::string spec = "%";
    while (i < fmt.size() &&
           std::string_view("-+ 0#.0123456789").find(fmt[i]) != std::string::npos) {
      spec.push_back(fmt[i++]);
    }
    for (size_t k = 1, run = 0; k < spec.size(); ++k) {
      run = (spec[k] >= '0' && spec[k] <= '9') ? run + 1 : 0;
      if (run > 3) throw Error("format width or precision too large (at most 999)");
    }
    if (i >= fmt.size()) throw Error("incomplete format");
    const char conv = fmt[i];
    if (conv == '%') {
      out.push_back('%');
      continue;
    }
    if (next >= args.size()) throw Error("not enough arguments for format string");
    const Value& v = args[next++];
    char buf[512];
    switch (conv) {
      case 's':
      case 'r': {
        const std::string s = conv == 's' ? ToStr(v) : Repr(v);
        if (spec == "%") {
          out += s;
        } else {
          std::string padded(
              static_cast<size_t>(std::snprintf(nullptr, 0, (spec + "s").c_str(), s.c_str())),
              '\0');
          std::snprintf(padded.data(), padded.size() + 1, (spec + "s").c_str(), s.c_str());
          out += padded;
        }
        break;
      }
      case 'd':
      case 'i':
        if (!v.is_number()) throw Error("%d format: a real number is required, not " + TypeName(v));
        std::snprintf(buf, sizeof buf, (spec + "lld").c_str(),
                      static_cast<long long>(v.is_float() ? std::trunc(v.as_float()) : v.as_int()));
        out += buf;
        break;
      case 'f':
      case 'e':
      case 'g':
        if (!v.is_number()) throw Error("must be real number, not " + TypeName(v));
        std::snprintf(buf, sizeof buf, (spec + conv).c_str(), v.as_float());
        out += buf;
        break;
      default:
        throw Error(std::string("unsupported format character '") + conv + "'");
    }
    interp.CheckStringSize(out.size());
  }
  if (next < args.size()) throw Error("not all arguments converted during string formatting");
  return Value::String(std::move(out));
}

}  // namespace

Value BinaryOp(Interpreter& interp, const std::string& op, const Value& a, const Value& b) {
  if (op == "~") {
    std::string s = ToStr(a);
    const std::string t = ToStr(b);
    interp.CheckStringSize(s.size() + t.size());
    return Value::String(s + t);
  }
  Interpreter::RequireDefined(a);
  Interpreter::RequireDefined(b);
  const bool ints = a.is_integral() && b.is_integral();
  const bool nums = a.is_number() && b.is_number();
  int64_t r = 0;
  if (op == "+") {
    if (ints) {
      const bool overflow = __builtin_add_overflow(a.as_int(), b.as_int(), &r);
      return Value::Int(CheckedInt(overflow, r));
    }
    if (nums) return Value::Float(a.as_float() + b.as_float());
    if (a.is_string() && b.is_string()) {
      interp.CheckStringSize(a.as_string().size() + b.as_string().size());
      return Value::String(a.as_string() + b.as_string());
    }
    if (a.is_list() && b.is_list() && a.as_list().is_tuple == b.as_list().is_tuple) {
      interp.CheckListSize(a.as_list().items.size() + b.as_list().items.size());
      std::vector<Value> items = a.as_list().items;
      items.insert(items.end(), b.as_list().items.begin(), b.as_list().items.end());
      return Value::List(std::move(items), a.as_list().is_tuple);
    }
    if (a.is_string() || a.is_list()) {
      throw Error("can only concatenate " + TypeName(a) + " (not \"" + TypeName(b) + "\") to " +
                  TypeName(a));
    }
    Unsupported(op, a, b);
  }
  if (op == "-") {
    if (ints) {
      const bool overflow = __builtin_sub_overflow(a.as_int(), b.as_int(), &r);
      return Value::Int(CheckedInt(overflow, r));
    }
    if (nums) return Value::Float(a.as_float() - b.as_float());
    Unsupported(op, a, b);
  }
  if (op == "*") {
    if (ints) {
      const bool overflow = __builtin_mul_overflow(a.as_int(), b.as_int(), &r);
      return Value::Int(CheckedInt(overflow, r));
    }
    if (nums) return Value::Float(a.as_float() * b.as_float());
    if ((a.is_string() || a.is_list()) && b.is_integral()) return Repeat(interp, a, b.as_int());
    if ((b.is_string() || b.is_list()) && a.is_integral()) return Repeat(interp, b, a.as_int());
    throw Error("can't multiply sequence by non-int of type '" +
                TypeName(a.is_string() || a.is_list() ? b : a) + "'");
  }
  if (op == "/") {
    if (!nums) Unsupported(op, a, b);
    if (b.as_float() == 0) throw Error("division by zero");
    return Value::Float(a.as_float() / b.as_float());
  }
  if (op == "//") {
    if (!nums) Unsupported(op, a, b);
    if (ints) {
      if (b.as_int() == 0) throw Error("integer division or modulo by zero");
      if (a.as_int() == INT64_MIN && b.as_int() == -1) throw Error("integer overflow");
      int64_t q = a.as_int() / b.as_int();
      if ((a.as_int() % b.as_int() != 0) && ((a.as_int() < 0) != (b.as_int() < 0))) --q;
      return Value::Int(q);
    }
    if (b.as_float() == 0) throw Error("float floor division by zero");
    return Value::Float(std::floor(a.as_float() / b.as_float()));
  }
  if (op == "%") {
    if (a.is_string()) return Format(interp, a.as_string(), b);
    if (!nums) Unsupported(op, a, b);
    if (ints) {
      if (b.as_int() == 0) throw Error("integer division or modulo by zero");
      if (b.as_int() == -1) return Value::Int(0);
      int64_t m = a.as_int() % b.as_int();
      if (m != 0 && ((m < 0) != (b.as_int() < 0))) m += b.as_int();
      return Value::Int(m);
    }
    if (b.as_float() == 0) throw Error("float modulo");
    double m = std::fmod(a.as_float(), b.as_float());
    if (m != 0 && ((m < 0) != (b.as_float() < 0))) m += b.as_float();
    return Value::Float(m);
  }
  if (op == "**") {
    if (!nums) Unsupported("** or pow()", a, b);
    if (ints && b.as_int() >= 0) {
      int64_t result = 1;
      int64_t base = a.as_int();
      int64_t e = b.as_int();
      while (e > 0) {
        if (e & 1) CheckedInt(__builtin_mul_overflow(result, base, &result), 0);
        e >>= 1;
        if (e > 0) CheckedInt(__builtin_mul_overflow(base, base, &base), 0);
      }
      return Value::Int(result);
    }
    if (a.as_float() == 0 && b.as_float() < 0) {
      throw Error("0.0 cannot be raised to a negative power");
    }
    const double v = std::pow(a.as_float(), b.as_float());
    if (std::isnan(v)) throw Error("complex results are not supported");
    if (std::isinf(v)) throw Error("numerical result out of range");
    return Value::Float(v);
  }
  throw Error("unknown operator '" + op + "'");
}

bool Contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kUndefined:
      return false;
    case Value::Kind::kString:
      if (!item.is_string()) {
        throw Error("'in <string>' requires string as left operand, not " + TypeName(item));
      }
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Kind::kList:
      for (const Value& v : container.as_list().items) {
        if (Equals(v, item)) return true;
      }
      return false;
    case Value::Kind::kDict:
      return item.is_string() && container.as_dict().Find(item.as_string()) != nullptr;
    default:
      throw Error("argument of type '" + TypeName(container) + "' is not iterable");
  }
}

}  // namespace strata::model::jinja
