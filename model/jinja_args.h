// Binding call arguments to a Python-style signature, for builtin filters, tests, methods and
// functions of the Jinja engine.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "model/jinja_value.h"

namespace strata::model::jinja {

// Binds positional then keyword arguments to `params` (in order). Throws Error for too many
// positional arguments, unknown or repeated keywords, as Python raises TypeError.
class BoundArgs {
 public:
  BoundArgs(std::string_view fn_name, CallArgs args, std::initializer_list<std::string_view> params)
      : values_(params.size()), given_(params.size(), false) {
    if (args.positional.size() > params.size()) {
      throw Error(std::string(fn_name) + "() takes at most " + std::to_string(params.size()) +
                  " argument(s) (" + std::to_string(args.positional.size()) + " given)");
    }
    for (size_t i = 0; i < args.positional.size(); ++i) {
      values_[i] = std::move(args.positional[i]);
      given_[i] = true;
    }
    for (auto& [key, value] : args.keyword) {
      size_t i = 0;
      for (std::string_view p : params) {
        if (p == key) break;
        ++i;
      }
      if (i == params.size()) {
        throw Error(std::string(fn_name) + "() got an unexpected keyword argument '" + key + "'");
      }
      if (given_[i]) {
        throw Error(std::string(fn_name) + "() got multiple values for argument '" + key + "'");
      }
      values_[i] = std::move(value);
      given_[i] = true;
    }
  }

  bool has(size_t i) const { return given_[i]; }
  const Value& get(size_t i) const { return values_[i]; }
  Value get_or(size_t i, Value fallback) const { return given_[i] ? values_[i] : fallback; }
  bool flag(size_t i, bool fallback) const { return given_[i] ? Truthy(values_[i]) : fallback; }

 private:
  std::vector<Value> values_;
  std::vector<bool> given_;
};

}  // namespace strata::model::jinja
