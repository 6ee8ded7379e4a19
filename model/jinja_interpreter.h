// Jinja interpreter: renders a parsed template body against a global scope.
//
// Semantics follow Jinja2 as transformers configures it (ImmutableSandboxedEnvironment,
// default Undefined, loopcontrols): undefined values are falsy and render as "", using them
// in arithmetic, calling them or reading their attributes raises; each for-loop iteration has
// its own scope (a `set` inside a loop does not leak out; use namespace()); lists and dicts
// cannot be mutated; range() is capped at 100,000 items.
//
// Bounded: output and every string are capped (max_string_bytes), macro recursion
// (max_call_depth) and total work (max_steps) are limited, so hostile templates end with an
// Error instead of exhausting memory or time. One Interpreter renders once on one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/jinja_ast.h"
#include "model/jinja_value.h"

namespace strata::model::jinja {

struct RenderLimits {
  size_t max_string_bytes = size_t{16} << 20;  // 16 MiB: output and any intermediate string
  size_t max_list_items = 1'000'000;
  int max_call_depth = 100;        // nested macro/filter-callback calls
  int64_t max_steps = 20'000'000;  // evaluated nodes, statements and loop iterations
};

// A variable scope. Scopes form a chain to the globals; macros keep their defining scope.
class Scope {
 public:
  explicit Scope(std::shared_ptr<Scope> parent = nullptr) : parent_(std::move(parent)) {}
  const Value* Find(std::string_view name) const;
  void Set(std::string name, Value value);
  const std::shared_ptr<Scope>& parent() const { return parent_; }
  // Drops all variables (breaks reference cycles at the end of a render).
  void Clear();

 private:
  std::shared_ptr<Scope> parent_;
  std::vector<std::pair<std::string, Value>> vars_;
};
using ScopePtr = std::shared_ptr<Scope>;

class Interpreter {
 public:
  Interpreter(const RenderLimits& limits, ScopePtr globals)
      : limits_(limits), globals_(std::move(globals)) {}
  // Clears the tracked scopes and objects, so values that reference each other (a macro and
  // the scope it is defined in, `ns.self = ns`) are freed with the render.
  ~Interpreter();
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;

  // Renders `body` in a child scope of the globals. Throws Error.
  std::string Render(const Body& body);

  // ---- services for filters, tests, methods and builtins ----
  const RenderLimits& limits() const { return limits_; }
  // Counts one unit of work; throws once max_steps is exceeded.
  void Step(int64_t n = 1) {
    steps_ += n;
    if (steps_ > limits_.max_steps) ThrowBudget();
  }
  // Throws unless a string of `bytes` is within max_string_bytes.
  void CheckStringSize(size_t bytes) const;
  void CheckListSize(size_t items) const;
  // Calls a callable value (macro, builtin, bound method). Throws for non-callables.
  Value CallValue(const Value& fn, CallArgs args);
  // Jinja's getattr (obj.name: attribute, then item) and getitem (obj[key]: item, then attr).
  Value GetAttr(const Value& obj, const std::string& name);
  Value GetItem(const Value& obj, const Value& key);
  // Throws the UndefinedError carried by `v` if it is undefined.
  static void RequireDefined(const Value& v);
  // Registers a scope captured by a closure (macro, caller, recursive loop) or a mutable
  // object (namespace): the only places where reference cycles can form.
  void TrackScope(const ScopePtr& scope);
  void TrackObject(const std::shared_ptr<ObjectData>& object);
  // Items of an iterable (list, tuple, dict keys, string characters, undefined -> empty).
  std::vector<Value> Iterate(const Value& v);

  // RAII guard for nested calls.
  class CallDepthGuard {
   public:
    explicit CallDepthGuard(Interpreter& interp);
    ~CallDepthGuard() { --interp_.call_depth_; }

   private:
    Interpreter& interp_;
  };

  // Executes statements; exposed for macros and call blocks.
  enum class Flow { kNormal, kBreak, kContinue };
  Flow Exec(const Body& body, const ScopePtr& scope, std::string& out);
  Value Eval(const Expr& expr, const ScopePtr& scope);

 private:
  [[noreturn]] void ThrowBudget() const;
  void Append(std::string& out, std::string_view text) const;
  Flow ExecOne(const Stmt& stmt, const ScopePtr& scope, std::string& out);
  void ExecFor(const Stmt& stmt, const ScopePtr& scope, const Value& iterable, int depth,
               std::string& out);
  void Assign(const Target& target, Value value, const ScopePtr& scope);
  void DefineMacro(const Stmt& stmt, const ScopePtr& scope);
  Value EvalInner(const Expr& expr, const ScopePtr& scope);
  Value EvalBinary(const Expr& expr, const ScopePtr& scope);
  Value EvalCompare(const Expr& expr, const ScopePtr& scope);
  Value EvalSlice(const Value& obj, const Expr& slice, const ScopePtr& scope);
  CallArgs EvalArgs(const Expr& call, const ScopePtr& scope);
  Value ApplyFilterChain(const Expr& filter, Value innermost, const ScopePtr& scope);

  RenderLimits limits_;
  ScopePtr globals_;
  int64_t steps_ = 0;
  int call_depth_ = 0;
  std::vector<std::weak_ptr<Scope>> tracked_scopes_;
  std::vector<std::weak_ptr<ObjectData>> tracked_objects_;
};

// Binary arithmetic with Python semantics ("+", "-", "*", "/", "//", "%", "**", "~").
Value BinaryOp(Interpreter& interp, const std::string& op, const Value& a, const Value& b);
// Python `item in container`.
bool Contains(const Value& container, const Value& item);

}  // namespace strata::model::jinja
