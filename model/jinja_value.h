// Runtime values of the Jinja engine, modelled on the Python objects Jinja2 works with
// (transformers renders chat templates with Jinja2 over json.loads() data):
//   undefined (jinja2.Undefined), None, bool, int, float, str, list/tuple, dict (insertion
//   ordered), objects (namespace(), the loop variable) and callables (macros, builtins).
//
// Values are cheap to copy: lists and dicts are shared and immutable once built (transformers
// uses Jinja's ImmutableSandboxedEnvironment); objects are shared and mutable (namespace
// attribute assignment). A Value is not thread-safe to mutate, but each Render builds its own.
//
// Inside the engine, errors are thrown as jinja::Error and turned into a Status at the
// Template boundary; nothing here throws past model/jinja_template.h.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace strata::model::jinja {

// A template error (syntax or runtime). `line` is 1-based, 0 when unknown.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, int line = 0, int column = 0)
      : std::runtime_error(message), line_(line), column_(column) {}
  int line() const { return line_; }
  int column() const { return column_; }
  void set_position(int line, int column) {
    line_ = line;
    column_ = column;
  }

 private:
  int line_;
  int column_;
};

class Value;
class Interpreter;

// Containers nest at most this deep, so that destroying, comparing or printing a value can
// never exhaust the stack (templates can build nested values in loops).
constexpr int kMaxValueDepth = 512;

struct ListData {
  std::vector<Value> items;
  bool is_tuple = false;
  int depth = 1;  // 1 + the deepest item
};

struct DictData {
  std::vector<std::pair<std::string, Value>> entries;  // insertion order, unique keys
  int depth = 1;                                       // set by Value::Dict
  const Value* Find(std::string_view key) const;
  void Set(std::string key, Value value);
};

// A mutable attribute bag: namespace() objects and the loop variable.
struct ObjectData {
  enum class Type { kNamespace, kLoop };
  Type type = Type::kNamespace;
  std::vector<std::pair<std::string, Value>> attrs;
  int depth = 1;  // grows as deeper values are stored; never shrinks
  const Value* Find(std::string_view key) const;
  // Stores an attribute; throws Error if that would nest values deeper than kMaxValueDepth.
  void Set(std::string key, Value value);
  // Recomputes `depth` after `attrs` was filled directly; throws like Set.
  void UpdateDepth();
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

class Callable {
 public:
  virtual ~Callable() = default;
  virtual std::string name() const = 0;
  virtual Value Call(Interpreter& interp, CallArgs args) const = 0;
};

class Value {
 public:
  enum class Kind {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,
    kDict,
    kObject,
    kCallable
  };

  Value() : data_(UndefinedTag{}) {}
  // An undefined value; `hint` is the message used when it is used in a way Jinja rejects
  // (e.g. "'x' is undefined").
  static Value Undefined(std::string hint = {}) { return Value(UndefinedTag{std::move(hint)}); }
  static Value None() { return Value(nullptr); }
  static Value Bool(bool v) { return Value(v); }
  static Value Int(int64_t v) { return Value(v); }
  static Value Float(double v) { return Value(v); }
  static Value String(std::string v) { return Value(std::move(v)); }
  // List and Dict throw Error when the result would nest deeper than kMaxValueDepth.
  static Value List(std::vector<Value> items, bool is_tuple = false);
  static Value Dict(DictData dict);
  static Value Object(std::shared_ptr<ObjectData> object) { return Value(std::move(object)); }
  static Value Function(std::shared_ptr<const Callable> fn) { return Value(std::move(fn)); }

  Kind kind() const { return static_cast<Kind>(data_.index()); }
  bool is_undefined() const { return kind() == Kind::kUndefined; }
  bool is_none() const { return kind() == Kind::kNone; }
  bool is_bool() const { return kind() == Kind::kBool; }
  bool is_int() const { return kind() == Kind::kInt; }
  bool is_float() const { return kind() == Kind::kFloat; }
  bool is_string() const { return kind() == Kind::kString; }
  bool is_list() const { return kind() == Kind::kList; }
  bool is_dict() const { return kind() == Kind::kDict; }
  bool is_object() const { return kind() == Kind::kObject; }
  bool is_callable() const { return kind() == Kind::kCallable; }
  // int or bool (Python's bool is an int) or float.
  bool is_number() const { return is_int() || is_bool() || is_float(); }
  bool is_integral() const { return is_int() || is_bool(); }

  const std::string& undefined_hint() const { return std::get<UndefinedTag>(data_).hint; }
  bool as_bool() const { return std::get<bool>(data_); }
  int64_t as_int() const { return is_bool() ? (as_bool() ? 1 : 0) : std::get<int64_t>(data_); }
  double as_float() const {
    return is_float() ? std::get<double>(data_) : static_cast<double>(as_int());
  }
  const std::string& as_string() const { return std::get<std::string>(data_); }
  const ListData& as_list() const { return *std::get<std::shared_ptr<const ListData>>(data_); }
  const DictData& as_dict() const { return *std::get<std::shared_ptr<const DictData>>(data_); }
  ObjectData& as_object() const { return *std::get<std::shared_ptr<ObjectData>>(data_); }
  const Callable& as_callable() const { return *std::get<std::shared_ptr<const Callable>>(data_); }
  const void* identity() const;  // for `is sameas` on shared values

 private:
  struct UndefinedTag {
    std::string hint;
  };
  template <typename T>
  explicit Value(T v) : data_(std::move(v)) {}

  std::variant<UndefinedTag, std::nullptr_t, bool, int64_t, double, std::string,
               std::shared_ptr<const ListData>, std::shared_ptr<const DictData>,
               std::shared_ptr<ObjectData>, std::shared_ptr<const Callable>>
      data_;
};

// Nesting depth of a value: 0 for scalars, 1 + the deepest element for containers.
int ValueDepth(const Value& v);

// Python truthiness (undefined and None are false; empty str/list/dict are false).
bool Truthy(const Value& v);
// Python type name, as in error messages ("str", "int", "dict", "NoneType"...).
std::string TypeName(const Value& v);
// str(v) as Jinja prints it: undefined -> "", None -> "None", True -> "True", lists as repr.
std::string ToStr(const Value& v);
// repr(v).
std::string Repr(const Value& v);
// Python ==.
bool Equals(const Value& a, const Value& b);
// Python ordering (<): numbers with numbers, str with str, lists lexicographically.
// Returns -1/0/1; throws Error for unorderable types. `ignore_case` lowercases strings.
int Compare(const Value& a, const Value& b, bool ignore_case = false);

// Python json.dumps options, as transformers' tojson filter exposes them.
struct JsonOptions {
  bool ensure_ascii = false;
  std::string indent;  // empty: no newlines
  bool has_indent = false;
  std::string item_separator;  // defaults: ", " or "," with indent
  std::string key_separator = ": ";
  bool sort_keys = false;
  size_t max_bytes = SIZE_MAX;  // longer output throws Error
};
// json.dumps(v). Throws Error for values JSON cannot hold (undefined, objects, callables).
std::string ToJson(const Value& v, const JsonOptions& options);

// Converts parsed JSON (any nlohmann basic_json) into values; object key order is kept as the
// JSON container iterates it (nlohmann::json sorts keys, nlohmann::ordered_json keeps input
// order). Depth is limited to `max_depth`; deeper input throws Error.
Value FromJson(const nlohmann::json& json, int max_depth = 128);
Value FromJson(const nlohmann::ordered_json& json, int max_depth = 128);

}  // namespace strata::model::jinja
