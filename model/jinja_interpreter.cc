#include "model/jinja_interpreter.h"

#include <functional>

#include "model/jinja_args.h"
#include "model/jinja_filters.h"
#include "model/jinja_methods.h"
#include "model/jinja_text.h"

namespace strata::model::jinja {

// ---- Scope ----

const Value* Scope::Find(std::string_view name) const {
  for (const Scope* s = this; s != nullptr; s = s->parent_.get()) {
    for (const auto& [k, v] : s->vars_) {
      if (k == name) return &v;
    }
  }
  return nullptr;
}

void Scope::Set(std::string name, Value value) {
  for (auto& [k, v] : vars_) {
    if (k == name) {
      v = std::move(value);
      return;
    }
  }
  vars_.emplace_back(std::move(name), std::move(value));
}

void Scope::Clear() {
  std::vector<std::pair<std::string, Value>> doomed;
  doomed.swap(vars_);
}

namespace {

// Does `body` (or any expression in it) read the name `name`? Used for a macro's implicit
// `varargs`/`kwargs`/`caller`, which Jinja only provides when the body references them.
bool ExprReads(const Expr* e, std::string_view name) {
  if (e == nullptr) return false;
  if (e->kind == Expr::Kind::kName && e->name == name) return true;
  if (ExprReads(e->object.get(), name) || ExprReads(e->star_args.get(), name) ||
      ExprReads(e->star_kwargs.get(), name)) {
    return true;
  }
  for (const auto& x : e->items) {
    if (ExprReads(x.get(), name)) return true;
  }
  for (const auto& x : e->keys) {
    if (ExprReads(x.get(), name)) return true;
  }
  for (const auto& [k, x] : e->kwargs) {
    if (ExprReads(x.get(), name)) return true;
  }
  return false;
}

bool BodyReads(const Body& body, std::string_view name) {
  for (const auto& s : body) {
    if (ExprReads(s->expr.get(), name) || ExprReads(s->condition.get(), name)) return true;
    for (const auto& c : s->conditions) {
      if (ExprReads(c.get(), name)) return true;
    }
    for (const auto& b : s->bodies) {
      if (BodyReads(b, name)) return true;
    }
    if (BodyReads(s->body, name) || BodyReads(s->else_body, name)) return true;
    for (const auto& p : s->params) {
      if (ExprReads(p.default_value.get(), name)) return true;
    }
    for (const auto& [t, x] : s->assignments) {
      if (ExprReads(x.get(), name)) return true;
    }
  }
  return false;
}

// A macro, or the `caller` of a call block.
class Macro : public Callable {
 public:
  Macro(std::string name, const std::vector<MacroParam>* params, const Body* body, ScopePtr scope)
      : name_(std::move(name)), params_(params), body_(body), scope_(std::move(scope)) {
    uses_varargs_ = BodyReads(*body_, "varargs");
    uses_kwargs_ = BodyReads(*body_, "kwargs");
    uses_caller_ = BodyReads(*body_, "caller");
  }

  std::string name() const override { return name_; }

  Value Call(Interpreter& interp, CallArgs args) const override {
    Interpreter::CallDepthGuard guard(interp);
    auto scope = std::make_shared<Scope>(scope_);
    const std::vector<MacroParam>& params = *params_;
    std::vector<bool> bound(params.size(), false);
    std::vector<Value> extra_positional;
    for (size_t i = 0; i < args.positional.size(); ++i) {
      if (i < params.size()) {
        scope->Set(params[i].name, std::move(args.positional[i]));
        bound[i] = true;
      } else {
        extra_positional.push_back(std::move(args.positional[i]));
      }
    }
    DictData extra_kwargs;
    for (auto& [key, value] : args.keyword) {
      size_t i = 0;
      while (i < params.size() && params[i].name != key) ++i;
      if (i < params.size()) {
        if (bound[i]) {
          throw Error("macro '" + name_ + "' got multiple values for argument '" + key + "'");
        }
        scope->Set(key, std::move(value));
        bound[i] = true;
      } else if (key == "caller" && uses_caller_) {
        scope->Set("caller", std::move(value));
      } else if (uses_kwargs_) {
        extra_kwargs.Set(key, std::move(value));
      } else {
        throw Error("macro '" + name_ + "' takes no keyword argument '" + key + "'");
      }
    }
    if (!extra_positional.empty() && !uses_varargs_) {
      throw Error("macro '" + name_ + "' takes not more than " + std::to_string(params.size()) +
                  " argument(s)");
    }
    for (size_t i = 0; i < params.size(); ++i) {
      if (bound[i]) continue;
      if (params[i].default_value) {
        scope->Set(params[i].name, interp.Eval(*params[i].default_value, scope));
      } else {
        scope->Set(params[i].name,
                   Value::Undefined("parameter '" + params[i].name + "' was not provided"));
      }
    }
    if (uses_varargs_) scope->Set("varargs", Value::List(std::move(extra_positional), true));
    if (uses_kwargs_) scope->Set("kwargs", Value::Dict(std::move(extra_kwargs)));
    std::string out;
    interp.Exec(*body_, scope, out);
    return Value::String(std::move(out));
  }

 private:
  std::string name_;
  const std::vector<MacroParam>* params_;
  const Body* body_;
  ScopePtr scope_;
  bool uses_varargs_ = false;
  bool uses_kwargs_ = false;
  bool uses_caller_ = false;
};

// loop(...) of a recursive for-loop: renders the same loop over a new iterable.
class RecursiveLoop : public Callable {
 public:
  using Fn = std::function<std::string(const Value&)>;
  explicit RecursiveLoop(Fn fn) : fn_(std::move(fn)) {}
  std::string name() const override { return "loop"; }
  Value Call(Interpreter& interp, CallArgs args) const override {
    Interpreter::CallDepthGuard guard(interp);
    BoundArgs bound("loop", std::move(args), {"iterable"});
    return Value::String(fn_(bound.get(0)));
  }

 private:
  Fn fn_;
};

std::string ObjectTypeRepr(const Value& v) {
  if (v.is_none()) return "None";
  return TypeName(v) + " object";
}

Value MissingAttr(const Value& obj, const std::string& name) {
  if (obj.is_none()) return Value::Undefined("'None' has no attribute '" + name + "'");
  return Value::Undefined("'" + ObjectTypeRepr(obj) + "' has no attribute '" + name + "'");
}

}  // namespace

namespace {

template <typename T>
void TrackWeak(std::vector<std::weak_ptr<T>>& list, const std::shared_ptr<T>& item) {
  if (list.size() >= 64 && list.size() == list.capacity()) {
    std::erase_if(list, [](const std::weak_ptr<T>& w) { return w.expired(); });
  }
  list.push_back(item);
}

}  // namespace

Interpreter::~Interpreter() {
  for (auto& weak : tracked_objects_) {
    if (auto object = weak.lock()) {
      std::vector<std::pair<std::string, Value>> doomed;
      doomed.swap(object->attrs);
    }
  }
  for (auto& weak : tracked_scopes_) {
    if (auto scope = weak.lock()) scope->Clear();
  }
}

void Interpreter::TrackScope(const ScopePtr& scope) { TrackWeak(tracked_scopes_, scope); }

void Interpreter::TrackObject(const std::shared_ptr<ObjectData>& object) {
  TrackWeak(tracked_objects_, object);
}

Interpreter::CallDepthGuard::CallDepthGuard(Interpreter& interp) : interp_(interp) {
  if (++interp_.call_depth_ > interp_.limits_.max_call_depth) {
    --interp_.call_depth_;
    throw Error("maximum recursion depth exceeded (" +
                std::to_string(interp_.limits_.max_call_depth) + " nested calls)");
  }
}

void Interpreter::ThrowBudget() const {
  throw Error("template exceeded its evaluation budget (" + std::to_string(limits_.max_steps) +
              " steps)");
}

void Interpreter::CheckStringSize(size_t bytes) const {
  if (bytes > limits_.max_string_bytes) {
    throw Error("string of " + std::to_string(bytes) + " bytes exceeds the limit of " +
                std::to_string(limits_.max_string_bytes) + " bytes");
  }
}

void Interpreter::CheckListSize(size_t items) const {
  if (items > limits_.max_list_items) {
    throw Error("list of " + std::to_string(items) + " items exceeds the limit of " +
                std::to_string(limits_.max_list_items) + " items");
  }
}

void Interpreter::Append(std::string& out, std::string_view text) const {
  CheckStringSize(out.size() + text.size());
  out.append(text);
}

void Interpreter::RequireDefined(const Value& v) {
  if (v.is_undefined()) {
    throw Error(v.undefined_hint().empty() ? "value is undefined" : v.undefined_hint());
  }
}

std::string Interpreter::Render(const Body& body) {
  auto scope = std::make_shared<Scope>(globals_);
  std::string out;
  Exec(body, scope, out);
  return out;
}

Interpreter::Flow Interpreter::Exec(const Body& body, const ScopePtr& scope, std::string& out) {
  for (const StmtPtr& stmt : body) {
    Flow flow;
    try {
      flow = ExecOne(*stmt, scope, out);
    } catch (Error& e) {
      if (e.line() == 0) e.set_position(stmt->line, stmt->column);
      throw;
    }
    if (flow != Flow::kNormal) return flow;
  }
  return Flow::kNormal;
}

Interpreter::Flow Interpreter::ExecOne(const Stmt& stmt, const ScopePtr& scope, std::string& out) {
  Step();
  switch (stmt.kind) {
    case Stmt::Kind::kData:
      Append(out, stmt.text);
      return Flow::kNormal;
    case Stmt::Kind::kOutput: {
      const Value v = Eval(*stmt.expr, scope);
      if (v.is_string()) {
        Append(out, v.as_string());
      } else if (!v.is_undefined()) {
        Append(out, ToStr(v));
      }
      return Flow::kNormal;
    }
    case Stmt::Kind::kIf:
      for (size_t i = 0; i < stmt.conditions.size(); ++i) {
        if (Truthy(Eval(*stmt.conditions[i], scope))) return Exec(stmt.bodies[i], scope, out);
      }
      return Exec(stmt.else_body, scope, out);
    case Stmt::Kind::kFor:
      ExecFor(stmt, scope, Eval(*stmt.expr, scope), 0, out);
      return Flow::kNormal;
    case Stmt::Kind::kSet: {
      if (stmt.expr) {
        Assign(stmt.target, Eval(*stmt.expr, scope), scope);
      } else {
        std::string rendered;
        Exec(stmt.body, std::make_shared<Scope>(scope), rendered);
        Value v = Value::String(std::move(rendered));
        if (stmt.condition) v = ApplyFilterChain(*stmt.condition, std::move(v), scope);
        Assign(stmt.target, std::move(v), scope);
      }
      return Flow::kNormal;
    }
    case Stmt::Kind::kMacro:
      DefineMacro(stmt, scope);
      return Flow::kNormal;
    case Stmt::Kind::kCallBlock: {
      TrackScope(scope);
      auto caller = std::make_shared<Macro>("caller", &stmt.params, &stmt.body, scope);
      const Expr& call = *stmt.expr;
      const Value fn = Eval(*call.object, scope);
      CallArgs args = EvalArgs(call, scope);
      args.keyword.emplace_back("caller", Value::Function(std::move(caller)));
      Append(out, ToStr(CallValue(fn, std::move(args))));
      return Flow::kNormal;
    }
    case Stmt::Kind::kFilterBlock: {
      std::string rendered;
      Exec(stmt.body, std::make_shared<Scope>(scope), rendered);
      Append(out, ToStr(ApplyFilterChain(*stmt.expr, Value::String(std::move(rendered)), scope)));
      return Flow::kNormal;
    }
    case Stmt::Kind::kBreak:
      return Flow::kBreak;
    case Stmt::Kind::kContinue:
      return Flow::kContinue;
    case Stmt::Kind::kWith: {
      std::vector<Value> values;
      for (const auto& [target, expr] : stmt.assignments) values.push_back(Eval(*expr, scope));
      auto inner = std::make_shared<Scope>(scope);
      for (size_t i = 0; i < values.size(); ++i) {
        Assign(stmt.assignments[i].first, std::move(values[i]), inner);
      }
      return Exec(stmt.body, inner, out);
    }
    case Stmt::Kind::kScope:
      return Exec(stmt.body, scope, out);
  }
  return Flow::kNormal;
}

std::vector<Value> Interpreter::Iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return {};
    case Value::Kind::kList:
      return v.as_list().items;
    case Value::Kind::kDict: {
      std::vector<Value> keys;
      keys.reserve(v.as_dict().entries.size());
      for (const auto& [k, val] : v.as_dict().entries) keys.push_back(Value::String(k));
      return keys;
    }
    case Value::Kind::kString: {
      std::vector<Value> chars;
      const std::string& s = v.as_string();
      CheckListSize(s.size() / 4);  // at least this many characters
      Step(static_cast<int64_t>(s.size() / 4));
      if (IsAscii(s)) {
        for (char c : s) chars.push_back(Value::String(std::string(1, c)));
      } else {
        for (char32_t cp : DecodeUtf8(s)) {
          std::string one;
          AppendUtf8(cp, one);
          chars.push_back(Value::String(std::move(one)));
        }
      }
      return chars;
    }
    default:
      throw Error("'" + TypeName(v) + "' object is not iterable");
  }
}

void Interpreter::ExecFor(const Stmt& stmt, const ScopePtr& scope, const Value& iterable, int depth,
                          std::string& out) {
  std::vector<Value> items = Iterate(iterable);
  if (stmt.condition) {
    std::vector<Value> kept;
    for (Value& item : items) {
      Step();
      auto probe = std::make_shared<Scope>(scope);
      Assign(stmt.target, item, probe);
      if (Truthy(Eval(*stmt.condition, probe))) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  Value recurse;
  if (stmt.recursive) {
    TrackScope(scope);
    recurse = Value::Function(
        std::make_shared<RecursiveLoop>([this, &stmt, scope, depth](const Value& it) {
          std::string nested;
          ExecFor(stmt, scope, it, depth + 1, nested);
          return nested;
        }));
  }
  const auto n = static_cast<int64_t>(items.size());
  // The loop variable is built only when the body can see it (it costs an allocation per
  // iteration); a nested for-loop's own `loop` shadows it, so reading it there counts too.
  const bool uses_loop = stmt.recursive || BodyReads(stmt.body, "loop");
  for (int64_t i = 0; i < n; ++i) {
    Step();
    auto iteration = std::make_shared<Scope>(scope);
    Assign(stmt.target, items[i], iteration);
    if (!uses_loop) {
      if (Exec(stmt.body, iteration, out) == Flow::kBreak) break;
      continue;
    }
    auto loop = std::make_shared<ObjectData>();
    loop->type = ObjectData::Type::kLoop;
    loop->attrs = {
        {"index", Value::Int(i + 1)},
        {"index0", Value::Int(i)},
        {"revindex", Value::Int(n - i)},
        {"revindex0", Value::Int(n - i - 1)},
        {"first", Value::Bool(i == 0)},
        {"last", Value::Bool(i == n - 1)},
        {"length", Value::Int(n)},
        {"depth", Value::Int(depth + 1)},
        {"depth0", Value::Int(depth)},
        {"previtem", i > 0 ? items[i - 1] : Value::Undefined("there is no previous item")},
        {"nextitem", i + 1 < n ? items[i + 1] : Value::Undefined("there is no next item")},
    };
    if (stmt.recursive) loop->attrs.emplace_back("__call__", recurse);
    loop->UpdateDepth();
    iteration->Set("loop", Value::Object(std::move(loop)));
    if (Exec(stmt.body, iteration, out) == Flow::kBreak) break;
  }
  if (n == 0) Exec(stmt.else_body, std::make_shared<Scope>(scope), out);
}

void Interpreter::Assign(const Target& target, Value value, const ScopePtr& scope) {
  if (!target.attr.empty()) {
    const Value* ns = scope->Find(target.names[0]);
    if (ns == nullptr || !ns->is_object() || ns->as_object().type != ObjectData::Type::kNamespace) {
      throw Error("cannot assign attribute on non-namespace object");
    }
    ns->as_object().Set(target.attr, std::move(value));
    return;
  }
  if (!target.is_tuple) {
    scope->Set(target.names[0], std::move(value));
    return;
  }
  std::vector<Value> items = Iterate(value);
  if (items.size() != target.names.size()) {
    if (items.size() > target.names.size()) {
      throw Error("too many values to unpack (expected " + std::to_string(target.names.size()) +
                  ")");
    }
    throw Error("not enough values to unpack (expected " + std::to_string(target.names.size()) +
                ", got " + std::to_string(items.size()) + ")");
  }
  for (size_t i = 0; i < items.size(); ++i) scope->Set(target.names[i], std::move(items[i]));
}

void Interpreter::DefineMacro(const Stmt& stmt, const ScopePtr& scope) {
  TrackScope(scope);
  scope->Set(stmt.text,
             Value::Function(std::make_shared<Macro>(stmt.text, &stmt.params, &stmt.body, scope)));
}

Value Interpreter::CallValue(const Value& fn, CallArgs args) {
  Step();
  if (fn.is_callable()) return fn.as_callable().Call(*this, std::move(args));
  if (fn.is_object()) {
    if (const Value* call = fn.as_object().Find("__call__"); call && call->is_callable()) {
      return call->as_callable().Call(*this, std::move(args));
    }
  }
  RequireDefined(fn);
  throw Error("'" + TypeName(fn) + "' object is not callable");
}

Value Interpreter::GetAttr(const Value& obj, const std::string& name) {
  switch (obj.kind()) {
    case Value::Kind::kUndefined:
      RequireDefined(obj);
      break;
    case Value::Kind::kDict: {
      if (std::optional<Value> method = BindMethod(obj, name)) return *method;
      if (const Value* v = obj.as_dict().Find(name)) return *v;
      return MissingAttr(obj, name);
    }
    case Value::Kind::kObject: {
      if (const Value* v = obj.as_object().Find(name)) return *v;
      if (std::optional<Value> method = BindMethod(obj, name)) return *method;
      return MissingAttr(obj, name);
    }
    default:
      if (std::optional<Value> method = BindMethod(obj, name)) return *method;
      return MissingAttr(obj, name);
  }
  return Value::Undefined();
}

Value Interpreter::GetItem(const Value& obj, const Value& key) {
  switch (obj.kind()) {
    case Value::Kind::kUndefined:
      RequireDefined(obj);
      break;
    case Value::Kind::kDict:
      if (key.is_string()) {
        if (const Value* v = obj.as_dict().Find(key.as_string())) return *v;
      }
      break;
    case Value::Kind::kList:
    case Value::Kind::kString:
      if (key.is_integral()) {
        int64_t i = key.as_int();
        if (obj.is_list()) {
          const auto& items = obj.as_list().items;
          const auto n = static_cast<int64_t>(items.size());
          if (i < 0) i += n;
          if (i >= 0 && i < n) return items[static_cast<size_t>(i)];
        } else if (IsAscii(obj.as_string())) {
          const auto n = static_cast<int64_t>(obj.as_string().size());
          if (i < 0) i += n;
          if (i >= 0 && i < n) return Value::String(std::string(1, obj.as_string()[i]));
        } else {
          const std::u32string cps = DecodeUtf8(obj.as_string());
          const auto n = static_cast<int64_t>(cps.size());
          if (i < 0) i += n;
          if (i >= 0 && i < n) {
            std::string one;
            AppendUtf8(cps[static_cast<size_t>(i)], one);
            return Value::String(std::move(one));
          }
        }
        return Value::Undefined("'" + ObjectTypeRepr(obj) + "' has no element " + ToStr(key));
      }
      break;
    default:
      break;
  }
  if (key.is_string()) return GetAttr(obj, key.as_string());
  if (obj.is_none()) return Value::Undefined("'None' has no element " + Repr(key));
  return Value::Undefined("'" + ObjectTypeRepr(obj) + "' has no element " + Repr(key));
}

Value Interpreter::Eval(const Expr& expr, const ScopePtr& scope) {
  Step();
  try {
    return EvalInner(expr, scope);
  } catch (Error& e) {
    if (e.line() == 0) e.set_position(expr.line, expr.column);
    throw;
  }
}

CallArgs Interpreter::EvalArgs(const Expr& call, const ScopePtr& scope) {
  CallArgs args;
  for (const ExprPtr& a : call.items) args.positional.push_back(Eval(*a, scope));
  if (call.star_args) {
    for (Value& v : Iterate(Eval(*call.star_args, scope))) args.positional.push_back(std::move(v));
  }
  for (const auto& [key, value] : call.kwargs) args.keyword.emplace_back(key, Eval(*value, scope));
  if (call.star_kwargs) {
    const Value extra = Eval(*call.star_kwargs, scope);
    if (!extra.is_dict()) throw Error("argument after ** must be a mapping");
    for (const auto& [k, v] : extra.as_dict().entries) args.keyword.emplace_back(k, v);
  }
  return args;
}

Value Interpreter::ApplyFilterChain(const Expr& filter, Value innermost, const ScopePtr& scope) {
  Value operand = filter.object ? ApplyFilterChain(*filter.object, std::move(innermost), scope)
                                : std::move(innermost);
  return ApplyFilter(*this, filter.name, std::move(operand), EvalArgs(filter, scope));
}

Value Interpreter::EvalInner(const Expr& expr, const ScopePtr& scope) {
  switch (expr.kind) {
    case Expr::Kind::kLiteral:
      return expr.value;
    case Expr::Kind::kName: {
      if (const Value* v = scope->Find(expr.name)) return *v;
      return Value::Undefined("'" + expr.name + "' is undefined");
    }
    case Expr::Kind::kList:
    case Expr::Kind::kTuple: {
      std::vector<Value> items;
      items.reserve(expr.items.size());
      for (const ExprPtr& e : expr.items) items.push_back(Eval(*e, scope));
      return Value::List(std::move(items), expr.kind == Expr::Kind::kTuple);
    }
    case Expr::Kind::kDict: {
      DictData dict;
      for (size_t i = 0; i < expr.items.size(); ++i) {
        Value key = Eval(*expr.keys[i], scope);
        if (!key.is_string()) {
          throw Error("dict keys must be strings in chat templates, got " + TypeName(key));
        }
        dict.Set(key.as_string(), Eval(*expr.items[i], scope));
      }
      return Value::Dict(std::move(dict));
    }
    case Expr::Kind::kGetAttr:
      return GetAttr(Eval(*expr.object, scope), expr.name);
    case Expr::Kind::kGetItem: {
      const Value obj = Eval(*expr.object, scope);
      const Expr& index = *expr.items[0];
      if (index.kind == Expr::Kind::kSlice) return EvalSlice(obj, index, scope);
      return GetItem(obj, Eval(index, scope));
    }
    case Expr::Kind::kSlice:
      throw Error("slice outside of a subscript");
    case Expr::Kind::kCall: {
      const Value fn = Eval(*expr.object, scope);
      return CallValue(fn, EvalArgs(expr, scope));
    }
    case Expr::Kind::kFilter: {
      Value operand = expr.object ? Eval(*expr.object, scope) : Value::Undefined();
      return ApplyFilter(*this, expr.name, std::move(operand), EvalArgs(expr, scope));
    }
    case Expr::Kind::kTest: {
      const Value operand = Eval(*expr.object, scope);
      const bool result = ApplyTest(*this, expr.name, operand, EvalArgs(expr, scope));
      return Value::Bool(expr.negate ? !result : result);
    }
    case Expr::Kind::kUnary: {
      const Value v = Eval(*expr.object, scope);
      if (expr.name == "not") return Value::Bool(!Truthy(v));
      RequireDefined(v);
      if (v.is_float()) return Value::Float(expr.name == "-" ? -v.as_float() : v.as_float());
      if (v.is_integral()) {
        if (expr.name == "-" && v.as_int() == INT64_MIN) throw Error("integer overflow");
        return Value::Int(expr.name == "-" ? -v.as_int() : v.as_int());
      }
      throw Error("bad operand type for unary " + expr.name + ": '" + TypeName(v) + "'");
    }
    case Expr::Kind::kBinary:
      return EvalBinary(expr, scope);
    case Expr::Kind::kCompare:
      return EvalCompare(expr, scope);
    case Expr::Kind::kCondition:
      if (Truthy(Eval(*expr.object, scope))) return Eval(*expr.items[0], scope);
      if (expr.items[1]) return Eval(*expr.items[1], scope);
      return Value::Undefined(
          "the inline if-expression evaluated to false and no else section "
          "was defined");
  }
  return Value::Undefined();
}

Value Interpreter::EvalBinary(const Expr& expr, const ScopePtr& scope) {
  const std::string& op = expr.name;
  Value left = Eval(*expr.items[0], scope);
  if (op == "and") return Truthy(left) ? Eval(*expr.items[1], scope) : left;
  if (op == "or") return Truthy(left) ? left : Eval(*expr.items[1], scope);
  const Value right = Eval(*expr.items[1], scope);
  return BinaryOp(*this, op, left, right);
}

Value Interpreter::EvalCompare(const Expr& expr, const ScopePtr& scope) {
  Value left = Eval(*expr.object, scope);
  for (size_t i = 0; i < expr.ops.size(); ++i) {
    Value right = Eval(*expr.items[i], scope);
    const std::string& op = expr.ops[i];
    bool result;
    if (op == "==") {
      result = Equals(left, right);
    } else if (op == "!=") {
      result = !Equals(left, right);
    } else if (op == "in" || op == "not in") {
      result = Contains(right, left) == (op == "in");
    } else {
      RequireDefined(left);
      RequireDefined(right);
      const int c = Compare(left, right);
      result = op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0;
    }
    if (!result) return Value::Bool(false);
    left = std::move(right);
  }
  return Value::Bool(true);
}

Value Interpreter::EvalSlice(const Value& obj, const Expr& slice, const ScopePtr& scope) {
  RequireDefined(obj);
  int64_t parts[3] = {0, 0, 1};
  bool given[3] = {false, false, false};
  for (int k = 0; k < 3; ++k) {
    if (!slice.items[k]) continue;
    const Value v = Eval(*slice.items[k], scope);
    if (v.is_none()) continue;
    if (!v.is_integral()) {
      throw Error("slice indices must be integers or None, not " + TypeName(v));
    }
    parts[k] = v.as_int();
    given[k] = true;
  }
  const int64_t step = given[2] ? parts[2] : 1;
  if (step == 0) throw Error("slice step cannot be zero");
  std::u32string cps;
  const bool is_string = obj.is_string();
  int64_t n;
  if (is_string) {
    cps = DecodeUtf8(obj.as_string());
    n = static_cast<int64_t>(cps.size());
  } else if (obj.is_list()) {
    n = static_cast<int64_t>(obj.as_list().items.size());
  } else {
    throw Error("'" + TypeName(obj) + "' object is not subscriptable");
  }
  auto clamp = [&](int64_t v, bool is_given, int64_t fallback) {
    if (!is_given) return fallback;
    if (v < 0) {
      v += n;
      if (v < 0) v = step < 0 ? -1 : 0;
    } else if (v >= n) {
      v = step < 0 ? n - 1 : n;
    }
    return v;
  };
  const int64_t start = clamp(parts[0], given[0], step < 0 ? n - 1 : 0);
  const int64_t stop = clamp(parts[1], given[1], step < 0 ? -1 : n);
  std::vector<int64_t> indexes;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) indexes.push_back(i);
  Step(static_cast<int64_t>(indexes.size()));
  if (is_string) {
    std::string out;
    for (int64_t i : indexes) AppendUtf8(cps[static_cast<size_t>(i)], out);
    return Value::String(std::move(out));
  }
  std::vector<Value> items;
  items.reserve(indexes.size());
  for (int64_t i : indexes) items.push_back(obj.as_list().items[static_cast<size_t>(i)]);
  return Value::List(std::move(items), obj.as_list().is_tuple);
}

}  // namespace strata::model::jinja
