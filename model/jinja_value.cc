#include "model/jinja_value.h"

#include <algorithm>
#include <cmath>

#include "model/jinja_text.h"

namespace strata::model::jinja {

const Value* DictData::Find(std::string_view key) const {
  for (const auto& [k, v] : entries) {
    if (k == key) return &v;
  }
  return nullptr;
}

void DictData::Set(std::string key, Value value) {
  for (auto& [k, v] : entries) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  entries.emplace_back(std::move(key), std::move(value));
}

const Value* ObjectData::Find(std::string_view key) const {
  for (const auto& [k, v] : attrs) {
    if (k == key) return &v;
  }
  return nullptr;
}

static int CheckedDepth(int depth) {
  if (depth > kMaxValueDepth) {
    throw Error("value nested deeper than " + std::to_string(kMaxValueDepth) + " levels");
  }
  return depth;
}

int ValueDepth(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kList:
      return v.as_list().depth;
    case Value::Kind::kDict:
      return v.as_dict().depth;
    case Value::Kind::kObject:
      return v.as_object().depth;
    default:
      return 0;
  }
}

void ObjectData::UpdateDepth() {
  int deepest = 0;
  for (const auto& [k, v] : attrs) deepest = std::max(deepest, ValueDepth(v));
  depth = std::max(depth, CheckedDepth(deepest + 1));
}

void ObjectData::Set(std::string key, Value value) {
  depth = std::max(depth, CheckedDepth(ValueDepth(value) + 1));
  for (auto& [k, v] : attrs) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  attrs.emplace_back(std::move(key), std::move(value));
}

Value Value::List(std::vector<Value> items, bool is_tuple) {
  auto data = std::make_shared<ListData>();
  int deepest = 0;
  for (const Value& item : items) deepest = std::max(deepest, ValueDepth(item));
  data->depth = CheckedDepth(deepest + 1);
  data->items = std::move(items);
  data->is_tuple = is_tuple;
  return Value(std::shared_ptr<const ListData>(std::move(data)));
}

Value Value::Dict(DictData dict) {
  int deepest = 0;
  for (const auto& [k, v] : dict.entries) deepest = std::max(deepest, ValueDepth(v));
  dict.depth = CheckedDepth(deepest + 1);
  return Value(std::shared_ptr<const DictData>(std::make_shared<DictData>(std::move(dict))));
}

const void* Value::identity() const {
  switch (kind()) {
    case Kind::kList:
      return &as_list();
    case Kind::kDict:
      return &as_dict();
    case Kind::kObject:
      return &as_object();
    case Kind::kCallable:
      return &as_callable();
    default:
      return nullptr;
  }
}

bool Truthy(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return false;
    case Value::Kind::kBool:
      return v.as_bool();
    case Value::Kind::kInt:
      return v.as_int() != 0;
    case Value::Kind::kFloat:
      return v.as_float() != 0.0;
    case Value::Kind::kString:
      return !v.as_string().empty();
    case Value::Kind::kList:
      return !v.as_list().items.empty();
    case Value::Kind::kDict:
      return !v.as_dict().entries.empty();
    case Value::Kind::kObject:
    case Value::Kind::kCallable:
      return true;
  }
  return false;
}

std::string TypeName(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return "Undefined";
    case Value::Kind::kNone:
      return "NoneType";
    case Value::Kind::kBool:
      return "bool";
    case Value::Kind::kInt:
      return "int";
    case Value::Kind::kFloat:
      return "float";
    case Value::Kind::kString:
      return "str";
    case Value::Kind::kList:
      return v.as_list().is_tuple ? "tuple" : "list";
    case Value::Kind::kDict:
      return "dict";
    case Value::Kind::kObject:
      return v.as_object().type == ObjectData::Type::kNamespace ? "Namespace" : "LoopContext";
    case Value::Kind::kCallable:
      return "function";
  }
  return "object";
}

static void AppendRepr(const Value& v, std::string& out, int depth);

static void AppendAttrsRepr(const std::vector<std::pair<std::string, Value>>& entries,
                            std::string& out, int depth) {
  out.push_back('{');
  bool first = true;
  for (const auto& [k, val] : entries) {
    if (!first) out += ", ";
    first = false;
    out += PyReprString(k);
    out += ": ";
    AppendRepr(val, out, depth + 1);
  }
  out.push_back('}');
}

static void AppendRepr(const Value& v, std::string& out, int depth) {
  if (depth > 200) throw Error("maximum recursion depth exceeded while getting the repr");
  switch (v.kind()) {
    case Value::Kind::kString:
      out += PyReprString(v.as_string());
      return;
    case Value::Kind::kList: {
      const ListData& list = v.as_list();
      out.push_back(list.is_tuple ? '(' : '[');
      for (size_t i = 0; i < list.items.size(); ++i) {
        if (i > 0) out += ", ";
        AppendRepr(list.items[i], out, depth + 1);
      }
      if (list.is_tuple && list.items.size() == 1) out.push_back(',');
      out.push_back(list.is_tuple ? ')' : ']');
      return;
    }
    case Value::Kind::kDict:
      AppendAttrsRepr(v.as_dict().entries, out, depth);
      return;
    case Value::Kind::kObject: {
      const ObjectData& obj = v.as_object();
      if (obj.type == ObjectData::Type::kNamespace) {
        out += "<Namespace ";
        AppendAttrsRepr(obj.attrs, out, depth);
        out += ">";
      } else {
        const Value* index = obj.Find("index");
        const Value* length = obj.Find("length");
        out += "<LoopContext " + (index ? ToStr(*index) : "?") + "/" +
               (length ? ToStr(*length) : "?") + ">";
      }
      return;
    }
    case Value::Kind::kUndefined:
      out += "Undefined";
      return;
    default:
      out += ToStr(v);
      return;
  }
}

std::string ToStr(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return "";
    case Value::Kind::kNone:
      return "None";
    case Value::Kind::kBool:
      return v.as_bool() ? "True" : "False";
    case Value::Kind::kInt:
      return std::to_string(v.as_int());
    case Value::Kind::kFloat:
      return PyFloatRepr(v.as_float());
    case Value::Kind::kString:
      return v.as_string();
    case Value::Kind::kCallable:
      return "<function " + v.as_callable().name() + ">";
    default: {
      std::string out;
      AppendRepr(v, out, 0);
      return out;
    }
  }
}

std::string Repr(const Value& v) {
  std::string out;
  AppendRepr(v, out, 0);
  return out;
}

static bool EqualsDepth(const Value& a, const Value& b, int depth) {
  if (depth > 200) throw Error("maximum recursion depth exceeded in comparison");
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_float() == b.as_float();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return true;
    case Value::Kind::kString:
      return a.as_string() == b.as_string();
    case Value::Kind::kList: {
      const ListData& x = a.as_list();
      const ListData& y = b.as_list();
      if (x.is_tuple != y.is_tuple || x.items.size() != y.items.size()) return false;
      for (size_t i = 0; i < x.items.size(); ++i) {
        if (!EqualsDepth(x.items[i], y.items[i], depth + 1)) return false;
      }
      return true;
    }
    case Value::Kind::kDict: {
      const DictData& x = a.as_dict();
      const DictData& y = b.as_dict();
      if (x.entries.size() != y.entries.size()) return false;
      for (const auto& [k, v] : x.entries) {
        const Value* other = y.Find(k);
        if (other == nullptr || !EqualsDepth(v, *other, depth + 1)) return false;
      }
      return true;
    }
    default:
      return a.identity() == b.identity();
  }
}

bool Equals(const Value& a, const Value& b) { return EqualsDepth(a, b, 0); }

int Compare(const Value& a, const Value& b, bool ignore_case) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) {
      const double x = a.as_float();
      const double y = b.as_float();
      return x < y ? -1 : (y < x ? 1 : 0);
    }
    const int64_t x = a.as_int();
    const int64_t y = b.as_int();
    return x < y ? -1 : (y < x ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    if (ignore_case) {
      const std::string x = PyLower(a.as_string());
      const std::string y = PyLower(b.as_string());
      return x < y ? -1 : (y < x ? 1 : 0);
    }
    const int c = a.as_string().compare(b.as_string());
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if (a.is_list() && b.is_list() && a.as_list().is_tuple == b.as_list().is_tuple) {
    const auto& x = a.as_list().items;
    const auto& y = b.as_list().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!Equals(x[i], y[i])) return Compare(x[i], y[i], ignore_case);
    }
    return x.size() < y.size() ? -1 : (y.size() < x.size() ? 1 : 0);
  }
  throw Error("'<' not supported between instances of '" + TypeName(a) + "' and '" + TypeName(b) +
              "'");
}

static void AppendJson(const Value& v, const JsonOptions& o, int depth, std::string& out) {
  if (depth > 200) throw Error("maximum recursion depth exceeded while encoding a JSON object");
  if (out.size() > o.max_bytes) {
    throw Error("JSON output exceeds the limit of " + std::to_string(o.max_bytes) + " bytes");
  }
  auto newline = [&](int level) {
    if (!o.has_indent) return;
    out.push_back('\n');
    for (int i = 0; i < level; ++i) out += o.indent;
  };
  const std::string& item_sep = o.item_separator;
  switch (v.kind()) {
    case Value::Kind::kNone:
      out += "null";
      return;
    case Value::Kind::kBool:
      out += v.as_bool() ? "true" : "false";
      return;
    case Value::Kind::kInt:
      out += std::to_string(v.as_int());
      return;
    case Value::Kind::kFloat: {
      const double d = v.as_float();
      if (std::isnan(d)) {
        out += "NaN";
      } else if (std::isinf(d)) {
        out += d > 0 ? "Infinity" : "-Infinity";
      } else {
        out += PyFloatRepr(d);
      }
      return;
    }
    case Value::Kind::kString:
      AppendJsonString(v.as_string(), o.ensure_ascii, out);
      return;
    case Value::Kind::kList: {
      const auto& items = v.as_list().items;
      if (items.empty()) {
        out += "[]";
        return;
      }
      out.push_back('[');
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out += item_sep;
        newline(depth + 1);
        AppendJson(items[i], o, depth + 1, out);
      }
      newline(depth);
      out.push_back(']');
      return;
    }
    case Value::Kind::kDict: {
      std::vector<const std::pair<std::string, Value>*> entries;
      for (const auto& e : v.as_dict().entries) entries.push_back(&e);
      if (entries.empty()) {
        out += "{}";
        return;
      }
      if (o.sort_keys) {
        std::stable_sort(entries.begin(), entries.end(),
                         [](const auto* x, const auto* y) { return x->first < y->first; });
      }
      out.push_back('{');
      for (size_t i = 0; i < entries.size(); ++i) {
        if (i > 0) out += item_sep;
        newline(depth + 1);
        AppendJsonString(entries[i]->first, o.ensure_ascii, out);
        out += o.key_separator;
        AppendJson(entries[i]->second, o, depth + 1, out);
      }
      newline(depth);
      out.push_back('}');
      return;
    }
    default:
      throw Error("Object of type " + TypeName(v) + " is not JSON serializable");
  }
}

std::string ToJson(const Value& v, const JsonOptions& options) {
  std::string out;
  AppendJson(v, options, 0, out);
  return out;
}

template <typename Json>
static Value FromJsonImpl(const Json& json, int depth, int max_depth) {
  if (depth > max_depth) throw Error("JSON input nested deeper than " + std::to_string(max_depth));
  switch (json.type()) {
    case nlohmann::json::value_t::null:
      return Value::None();
    case nlohmann::json::value_t::boolean:
      return Value::Bool(json.template get<bool>());
    case nlohmann::json::value_t::number_integer:
      return Value::Int(json.template get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      const auto u = json.template get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value::Float(static_cast<double>(u));
      return Value::Int(static_cast<int64_t>(u));
    }
    case nlohmann::json::value_t::number_float:
      return Value::Float(json.template get<double>());
    case nlohmann::json::value_t::string:
      return Value::String(json.template get_ref<const std::string&>());
    case nlohmann::json::value_t::array: {
      std::vector<Value> items;
      items.reserve(json.size());
      for (const auto& item : json) items.push_back(FromJsonImpl(item, depth + 1, max_depth));
      return Value::List(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      DictData dict;
      dict.entries.reserve(json.size());
      for (auto it = json.begin(); it != json.end(); ++it) {
        dict.entries.emplace_back(it.key(), FromJsonImpl(it.value(), depth + 1, max_depth));
      }
      return Value::Dict(std::move(dict));
    }
    default:
      throw Error("unsupported JSON value (binary or discarded)");
  }
}

Value FromJson(const nlohmann::json& json, int max_depth) {
  return FromJsonImpl(json, 0, max_depth);
}
Value FromJson(const nlohmann::ordered_json& json, int max_depth) {
  return FromJsonImpl(json, 0, max_depth);
}

}  // namespace strata::model::jinja
