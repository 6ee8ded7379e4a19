// Errors and resource limits: every failure is a Status, never a crash or a hang.
#include <gtest/gtest.h>

#include <chrono>

#include "tests/unit/model/jinja_test_util.h"

namespace strata::model::jinja {
namespace {

using testing::RenderWith;

// Expects an InvalidArgument whose message contains `fragment`.
void ExpectError(const std::string& source, const std::string& fragment,
                 const std::string& context = "{}", const RenderLimits& limits = {}) {
  SCOPED_TRACE(source);
  StatusOr<std::string> got = RenderWith(source, context, limits);
  ASSERT_FALSE(got.ok()) << "rendered: " << *got;
  EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(got.status().message().find(fragment), std::string::npos) << got.status().ToString();
}

TEST(JinjaErrorsTest, SyntaxErrorsCarryLineAndColumn) {
  ExpectError("ok\n{% for %}", "template syntax error at line 2, column 8");
  ExpectError("{{ 1 + }}", "unexpected '}}'");
  ExpectError("{% if true %}never closed", "expected 'elif' or 'else' or 'endif'");
  ExpectError("{% endfor %}", "Encountered unknown tag 'endfor'");
  ExpectError("{% include 'x' %}", "Encountered unknown tag 'include'");
  ExpectError("{% break %}", "'break' outside of a loop");
  ExpectError("{{ x is }}", "expected a name");
  ExpectError("{% set true = 1 %}", "can't assign to 'true'");
  ExpectError("{{ f(a=1, 2) }}", "invalid syntax for function call expression");
}

TEST(JinjaErrorsTest, UnknownFiltersAndTestsFailAtParse) {
  ExpectError("{% if false %}{{ x|nofilter }}{% endif %}", "No filter named 'nofilter'.");
  ExpectError("{{ x is nosuchtest }}", "No test named 'nosuchtest'.");
}

TEST(JinjaErrorsTest, RuntimeErrorsMatchJinja) {
  ExpectError("a\n{{ x.y }}", "template error at line 2: 'x' is undefined");
  ExpectError("{{ d.zz.yy }}", "'dict object' has no attribute 'zz'", R"({"d": {}})");
  ExpectError("{{ [1].append(2) }}", "access to attribute 'append' of 'list' object is unsafe.");
  ExpectError("{{ {}.update({}) }}", "access to attribute 'update' of 'dict' object is unsafe.");
  ExpectError("{{ x + 1 }}", "'x' is undefined");
  ExpectError("{{ 1 + 'a' }}", "unsupported operand type(s) for +: 'int' and 'str'");
  ExpectError("{{ 'a' + 1 }}", "can only concatenate str (not \"int\") to str");
  ExpectError("{{ 1 / 0 }}", "division by zero");
  ExpectError("{{ 1 // 0 }}", "integer division or modulo by zero");
  ExpectError("{{ 'a' < 1 }}", "'<' not supported between instances of 'str' and 'int'");
  ExpectError("{{ 1 in 'abc' }}", "'in <string>' requires string as left operand, not int");
  ExpectError("{{ 'a' in none }}", "argument of type 'NoneType' is not iterable");
  ExpectError("{% for x in 5 %}{% endfor %}", "'int' object is not iterable");
  ExpectError("{{ 'abc'() }}", "'str' object is not callable");
  ExpectError("{{ none.startswith('x') }}", "'None' has no attribute 'startswith'");
  ExpectError("{% set x = 1 %}{% set x.y = 2 %}",
              "cannot assign attribute on non-namespace object");
  ExpectError("{% set a, b = [1, 2, 3] %}", "too many values to unpack (expected 2)");
  ExpectError("{{ [1, 2][::0] }}", "slice step cannot be zero");
  ExpectError("{{ 'a'.split('') }}", "empty separator");
  ExpectError("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", "takes not more than 1 argument(s)");
  ExpectError("{% macro m(a) %}{% endmacro %}{{ m(b=2) }}", "takes no keyword argument 'b'");
  ExpectError("{{ ({}|items|first).x }}", "No first item, sequence was empty.");
  ExpectError("{{ 2 ** 64 }}", "integer overflow");
  ExpectError("{{ [1]|tojson ~ (x|tojson) }}", "Undefined is not JSON serializable");
  ExpectError("{{ range(0, 10, 0) }}", "range() arg 3 must not be zero");
  ExpectError("{{ {1: 2} }}", "dict keys must be strings");
}

TEST(JinjaLimitsTest, RangeIsCappedLikeTheSandbox) {
  ExpectError("{% for i in range(10**9) %}{% endfor %}",
              "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  ExpectError("{{ range(-5, 100000000000) }}", "Range too big");
  StatusOr<std::string> ok = RenderWith("{{ range(100000)|length }}");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(*ok, "100000");
}

TEST(JinjaLimitsTest, RunawayLoopsStopAtTheStepBudget) {
  const auto start = std::chrono::steady_clock::now();
  ExpectError("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
              "evaluation budget");
  const auto seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 30.0);
  RenderLimits small;
  small.max_steps = 1000;
  ExpectError("{% for i in range(5000) %}{{ i }}{% endfor %}", "evaluation budget", "{}", small);
}

TEST(JinjaLimitsTest, DeepRecursionIsBounded) {
  ExpectError("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
              "maximum recursion depth exceeded");
  ExpectError("{% macro f() %}{{ [1]|map('string')|list }}{{ f() }}{% endmacro %}{{ f() }}",
              "maximum recursion depth exceeded");
  // Deeply nested source is a syntax error, not a stack overflow.
  ExpectError("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}",
              "nested too deeply");
  ExpectError("{{ " + std::string(5000, '-') + "1 }}", "nested too deeply");
  std::string nested_ifs;
  for (int i = 0; i < 1000; ++i) nested_ifs += "{% if true %}";
  ExpectError(nested_ifs, "nested too deeply");
}

TEST(JinjaLimitsTest, OutputAndStringsAreCapped) {
  RenderLimits limits;
  limits.max_string_bytes = 1 << 20;
  ExpectError("{% for i in range(100000) %}{{ 'xxxxxxxxxxxxxxxxxxxx' }}{% endfor %}",
              "exceeds the limit", "{}", limits);
  ExpectError("{{ 'x' * 100000000 }}", "exceeds the limit", "{}", limits);
  ExpectError(
      "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
      "{% endfor %}",
      "exceeds the limit", "{}", limits);
  ExpectError("{{ ('x' * 1000)|replace('x', 'yyyyyyyyyy' * 200) }}", "exceeds the limit", "{}",
              limits);
  ExpectError("{{ [1] * 100000000 }}", "exceeds the limit");
}

// Values that reference each other (a macro and the scope that holds it, a namespace that holds
// itself) are released when the render ends; an ASan build (STRATA_SANITIZE=address) reports
// any leak here.
TEST(JinjaLimitsTest, ReferenceCyclesDoNotOutliveTheRender) {
  const char* cases[][2] = {
      {"{% set ns = namespace() %}{% set ns.self = ns %}{{ ns.self.self is defined }}", "True"},
      {"{% macro outer() %}{% macro inner() %}i{% endmacro %}{{ inner() }}{% endmacro %}"
       "{{ outer() }}{{ outer() }}",
       "ii"},
      {"{% set ns = namespace() %}{% macro m() %}m{% endmacro %}{% set ns.m = m %}{{ ns.m() }}",
       "m"},
      {"{% for x in [[1]] recursive %}{% set ns = namespace(l=loop) %}{{ x }}{% endfor %}", "[1]"},
  };
  for (const auto& c : cases) {
    StatusOr<std::string> got = RenderWith(c[0]);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(*got, c[1]);
  }
}

TEST(JinjaLimitsTest, ValuesBuiltInLoopsCannotNestWithoutBound) {
  ExpectError(
      "{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = [ns.l] %}"
      "{% endfor %}",
      "value nested deeper than 512 levels");
  ExpectError(
      "{% set ns = namespace(d={}) %}{% for i in range(100000) %}"
      "{% set ns.d = {'k': ns.d} %}{% endfor %}",
      "value nested deeper than 512 levels");
  ExpectError(
      "{% set ns = namespace(n=none) %}{% for i in range(100000) %}"
      "{% set ns.n = namespace(p=ns.n) %}{% endfor %}",
      "value nested deeper than 512 levels");
  ExpectError("{{ 'x %99999s' % 'a' }}", "format width or precision too large");
  RenderLimits limits;
  limits.max_string_bytes = 1 << 16;
  ExpectError("{{ range(1000)|list|tojson(indent='" + std::string(100, ' ') + "') }}",
              "exceeds the limit", "{}", limits);
}

TEST(JinjaLimitsTest, DeepJsonInputIsRejected) {
  std::string deep;
  for (int i = 0; i < 500; ++i) deep += "[";
  for (int i = 0; i < 500; ++i) deep += "]";
  auto t = Template::Parse("{{ x }}");
  ASSERT_TRUE(t.ok());
  EXPECT_THROW(FromJson(nlohmann::json::parse(deep)), Error);
}

}  // namespace
}  // namespace strata::model::jinja
