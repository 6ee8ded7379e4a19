// Python methods reachable from templates (str.strip(), dict.get(), loop.cycle(), ...) and the
// Jinja globals range(), namespace() and dict().
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "model/jinja_interpreter.h"
#include "model/jinja_value.h"

namespace strata::model::jinja {

// The bound method `obj.name`, or nullopt if `obj` has no such method. Mutating list/dict
// methods (append, pop, update...) yield an undefined value that raises the sandbox's
// "access to attribute ... is unsafe" when called, as the ImmutableSandboxedEnvironment does.
std::optional<Value> BindMethod(const Value& obj, const std::string& name);

// A builtin function implemented in C++.
class NativeFunction : public Callable {
 public:
  using Fn = std::function<Value(Interpreter&, CallArgs)>;
  NativeFunction(std::string name, Fn fn) : name_(std::move(name)), fn_(std::move(fn)) {}
  std::string name() const override { return name_; }
  Value Call(Interpreter& interp, CallArgs args) const override {
    return fn_(interp, std::move(args));
  }

 private:
  std::string name_;
  Fn fn_;
};

// Adds range (capped at 100,000 items like Jinja's sandbox), namespace and dict to `scope`.
void AddBuiltinGlobals(Scope& scope);

}  // namespace strata::model::jinja
