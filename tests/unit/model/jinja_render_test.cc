// Rendering semantics of the Jinja engine, one table per area. Every expected string is the
// output of Python's Jinja2 (as transformers configures it: ImmutableSandboxedEnvironment,
// trim_blocks, lstrip_blocks, loopcontrols) for the same template and context.
#include <gtest/gtest.h>

#include "tests/unit/model/jinja_test_util.h"

namespace strata::model::jinja {
namespace {

using testing::RenderWith;

struct Case {
  const char* source;
  const char* context;
  const char* expected;
};

void ExpectRenders(const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    SCOPED_TRACE(c.source);
    StatusOr<std::string> got = RenderWith(c.source, c.context);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(*got, c.expected);
  }
}

TEST(JinjaRenderTest, Expressions) {
  ExpectRenders({
      {R"J({{ 1 + 2 }}|{{ 1 - 2.5 }}|{{ 2 * 3 }}|{{ 7 / 2 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ 7 % 3 }}|{{ -7 % 3 }}|{{ 2 ** 10 }}|{{ 2 ** -1 }}|{{ 2 ** 3 ** 2 }})J",
       R"J({})J", R"J(3|-1.5|6|3.5|3|-4|1|2|1024|0.5|64)J"},
      {R"J({{ 'a' ~ 1 ~ none ~ true ~ 1.5 }}|{{ 'ab' * 3 }}|{{ 2 * 'x' }}|{{ [1] + [2] }}|{{ 'x' + 'y' }})J",
       R"J({})J", R"J(a1NoneTrue1.5|ababab|xx|[1, 2]|xy)J"},
      {R"J({{ 1 < 2 < 3 }}|{{ 3 > 2 > 5 }}|{{ 1 == 1.0 }}|{{ true == 1 }}|{{ 'a' != 'b' }}|{{ 'b' in 'abc' }}|{{ 2 not in [1,3] }}|{{ 'k' in {'k':1} }}|{{ [1, [2]] == [1, [2]] }}|{{ 'a' < 'b' }}|{{ [1, 2] < [1, 3] }})J",
       R"J({})J", R"J(True|False|True|True|True|True|True|True|True|True|True)J"},
      {R"J({{ not 1 == 2 }}|{{ 1 and 0 }}|{{ 0 or 'x' }}|{{ none or [] }}|{{ '' and 5 }}|{{ not none }}|{{ 1 and 2 and 3 }})J",
       R"J({})J", R"J(True|0|x|[]||True|3)J"},
      {R"J({{ 'yes' if 1 else 'no' }}|{{ 'yes' if 0 }}|{{ 'a' if false else 'b' if true else 'c' }})J",
       R"J({})J", R"J(yes||b)J"},
      {R"J({{ (1, 2) }}|{{ (1,) }}|{{ () }}|{{ [1, 'a', none, true, 1.0, {'k': [2]}] }}|{{ {'a': 'it\'s'} }}|{{ "q\"uote" }}|{{ 'adjacent' 'strings' }})J",
       R"J({})J",
       R"J((1, 2)|(1,)|()|[1, 'a', None, True, 1.0, {'k': [2]}]|{'a': "it's"}|q"uote|adjacentstrings)J"},
      {R"J({{ 1e3 }}|{{ 1.0 }}|{{ 0.1 + 0.2 }}|{{ 1e16 }}|{{ 1e15 }}|{{ 1e-5 }}|{{ 0.0001 }}|{{ 123456789.123 }}|{{ 1_000 }}|{{ -0.0 }}|{{ 2.0 * 3 }}|{{ 10 / 5 }})J",
       R"J({})J",
       R"J(1000.0|1.0|0.30000000000000004|1e+16|1000000000000000.0|1e-05|0.0001|123456789.123|1000|-0.0|6.0|2.0)J"},
      {R"J({{ -2|abs }}|{{ 3 - -2 }}|{{ --2 }}|{{ not not 1 }}|{{ -(1 + 2) }}|{{ +3 }})J",
       R"J({})J", R"J(2|5|2|True|-3|3)J"},
      {R"J({{ 1, 2 }}|{{ none }}|{{ true }}|{{ false }}|{{ True }}|{{ None }})J", R"J({})J",
       R"J((1, 2)|None|True|False|True|None)J"},
      {R"J({{ '%s-%d' % ('a', 3) }}|{{ '%05.2f' % 3.14159 }}|{{ '%s%%' % 5 }}|{{ '{} {}'.format(1, 'x') }}|{{ '{0}{0}'.format('r') }}|{{ '%s and %s'|format('a', 'b') }})J",
       R"J({})J", R"J(a-3|03.14|5%|1 x|rr|a and b)J"},
  });
}

TEST(JinjaRenderTest, Statements) {
  ExpectRenders({
      {R"J({% for x in [1,2,3] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.previtem }}{{ loop.nextitem }};{% endfor %})J",
       R"J({})J", R"J(1032TrueFalse32;2121FalseFalse313;3210FalseTrue32;)J"},
      {R"J({% for x in [] %}a{% else %}empty{% endfor %}|{% for x in [1,2,3,4] if x is even %}{{ x }}{{ loop.length }}{% else %}no{% endfor %}|{% for x in [1] if false %}{% else %}filtered{% endfor %})J",
       R"J({})J", R"J(empty|2242|filtered)J"},
      {R"J({% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }},{% endfor %}|{% for k in {'x':1,'y':2} %}{{ k }}{% endfor %}|{% for (a, b) in [(1, 2)] %}{{ a + b }}{% endfor %})J",
       R"J({})J", R"J(a=1,b=2,|xy|3)J"},
      {R"J({% for x in 'abc' %}{{ x }}-{% endfor %}|{% for x in undefined_thing %}x{% else %}none{% endfor %})J",
       R"J({})J", R"J(a-b-c-|none)J"},
      {R"J({% for i in range(5) %}{% if i == 3 %}{% break %}{% endif %}{{ i }}{% endfor %}|{% for i in range(5) %}{% if i is odd %}{% continue %}{% endif %}{{ i }}{% endfor %})J",
       R"J({})J", R"J(012|024)J"},
      {R"J({% for i in range(2) %}{% for j in range(3) %}{% if j == 1 %}{% break %}{% endif %}{{ i }}{{ j }} {% endfor %}{% endfor %})J",
       R"J({})J", R"J(00 10 )J"},
      {R"J({% for x in [1, 2] %}{% for y in [3] %}{{ loop.index }}{% endfor %}{{ loop.index }}{% endfor %})J",
       R"J({})J", R"J(1112)J"},
      {R"J({% for i in [1,2] %}{{ loop.cycle('odd', 'even') }}{% endfor %})J", R"J({})J",
       R"J(oddeven)J"},
      {R"J({% for item in tree recursive %}{{ item.name }}{% if item.children %}({{ loop(item.children) }}){% endif %}{{ loop.depth }}{% endfor %})J",
       R"J({"tree": [{"name": "a", "children": [{"name": "b", "children": []}, {"name": "c"}]}, {"name": "d"}]})J",
       R"J(a(b2c2)1d1)J"},
      {R"J({% if 0 %}a{% elif '' %}b{% elif [1] %}c{% else %}d{% endif %}|{% if none %}x{% else %}y{% endif %})J",
       R"J({})J", R"J(c|y)J"},
      {R"J({% set ns = namespace(a=1, b='x') %}{% for i in range(3) %}{% set ns.a = ns.a + i %}{% endfor %}{{ ns.a }}{{ ns.b }}|{% set n2 = namespace({'k': 'v'}) %}{{ n2.k }}|{{ ns }})J",
       R"J({})J", R"J(4x|v|<Namespace {'a': 4, 'b': 'x'}>)J"},
      {R"J({% set x = 1 %}{% for i in [1] %}{% set x = 5 %}{{ x }}{% endfor %}{{ x }})J", R"J({})J",
       R"J(51)J"},
      {R"J({% for i in [1,2] %}{% if i == 2 %}[{{ x }}]{% endif %}{% set x = i %}{% endfor %}[{{ x }}])J",
       R"J({})J", R"J([][])J"},
      {R"J({% if true %}{% set y = 'set in if' %}{% endif %}{{ y }})J", R"J({})J",
       R"J(set in if)J"},
      {R"J({% set a, b = 1, 2 %}{{ a }}{{ b }}|{% set t = (3, 4) %}{% set c, d = t %}{{ c + d }}|{% set e = 1, 2 %}{{ e }})J",
       R"J({})J", R"J(12|7|(1, 2))J"},
      {R"J({% set x %}inner {{ 1 + 1 }}{% endset %}[{{ x }}]|{% set y | upper %}abc{% endset %}{{ y }})J",
       R"J({})J", R"J([inner 2]|ABC)J"},
      {R"J({% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!{% endmacro %}{{ greet('Bob') }} {{ greet('Al', greeting='Hi') }} {{ greet(name='Z') }} {{ greet() }})J",
       R"J({})J", R"J(Hello, Bob! Hi, Al! Hello, Z! Hello, !)J"},
      {R"J({% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(5) }})J",
       R"J({})J", R"J(54321)J"},
      {R"J({% macro m() %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, a=3) }})J", R"J({})J",
       R"J((1, 2){'a': 3})J"},
      {R"J({% set g = 'global' %}{% macro show() %}{{ g }}{% endmacro %}{{ show() }})J", R"J({})J",
       R"J(global)J"},
      {R"J({% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}inside{% endcall %}|{% macro each(xs) %}{% for x in xs %}{{ caller(x) }}{% endfor %}{% endmacro %}{% call(v) each([1, 2]) %}[{{ v }}]{% endcall %})J",
       R"J({})J", R"J(<b>inside</b>|[1][2])J"},
      {R"J({% filter upper %}hello {{ 'x' }}{% endfilter %}|{% filter trim|replace('a', 'b') %}  aaa  {% endfilter %})J",
       R"J({})J", R"J(HELLO X|bbb)J"},
      {R"J({% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}])J", R"J({})J", R"J(3[])J"},
      {R"J({% raw %}{{ kept }}{% endraw %})J", R"J({})J", R"J({{ kept }})J"},
  });
}

TEST(JinjaRenderTest, Subscripts) {
  ExpectRenders({
      {R"J({{ messages[0].role }}|{{ messages[-1]['content'] }}|{{ messages|length }}|{{ messages[1:]|length }}|{{ messages[::-1][0].role }}|{{ messages.0.role }}|{{ messages[5] }}|{{ messages[-9] }})J",
       R"J({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]})J",
       R"J(system|a|3|2|assistant|system||)J"},
      {R"J({{ 'hello'[1:3] }}|{{ 'hello'[::-1] }}|{{ 'hello'[-2:] }}|{{ [1,2,3,4,5][::2] }}|{{ [1,2,3][5:] }}|{{ [1,2,3][:-1] }}|{{ [1,2,3][-2::-1] }}|{{ 'héllo'[1] }}|{{ 'héllo'[1:3] }}|{{ (1,2,3)[1:] }}|{{ 'abc'[none:2] }})J",
       R"J({})J", R"J(el|olleh|lo|[1, 3, 5]|[]|[1, 2]|[2, 1]|é|él|(2, 3)|ab)J"},
      {R"J({{ {'a': 1}['a'] }}|{{ {'a': {'b': [10, 20]}}.a.b[1] }}|{{ {'a': {'b': [10, 20]}}.a.b.0 }}|{{ d['items'] }}|{{ d.items is defined }}|{{ d.get('items') }})J",
       R"J({"d": {"items": "key wins for []"}})J",
       R"J(1|20|10|key wins for []|True|key wins for [])J"},
  });
}

TEST(JinjaRenderTest, Filters) {
  ExpectRenders({
      {R"J({{ '  a b  '|trim }}|{{ 'xxaxx'|trim('x') }}|{{ 'abc'|upper }}|{{ 'ABC'|lower }}|{{ 'hello world-foo (bar'|title }}|{{ "it's o'neil"|title }}|{{ 'hELLO wORLD'|capitalize }}|{{ 'ÉCOLE'|lower }}|{{ 'straße'|upper }})J",
       R"J({})J", R"J(a b|a|ABC|abc|Hello World-Foo (Bar|It's O'neil|Hello world|école|STRASSE)J"},
      {R"J({{ [3,1,2]|sort }}|{{ [3,1,2]|sort(reverse=true) }}|{{ ['b','A','c']|sort }}|{{ ['b','A','c']|sort(case_sensitive=true) }}|{{ [{'n':2},{'n':1}]|sort(attribute='n') }}|{{ [('b', 1), ('a', 2)]|sort }})J",
       R"J({})J",
       R"J([1, 2, 3]|[3, 2, 1]|['A', 'b', 'c']|['A', 'b', 'c']|[{'n': 1}, {'n': 2}]|[('a', 2), ('b', 1)])J"},
      {R"J({{ [1,2,3]|first }}|{{ [1,2,3]|last }}|{{ []|first }}|{{ 'abc'|first }}|{{ 'abc'|last }}|{{ [1,2,3]|reverse|list }}|{{ 'abc'|reverse }}|{{ 'abc'|list }}|{{ {'k': 1}|list }}|{{ {'k': 1}|first }})J",
       R"J({})J", R"J(1|3||a|c|[3, 2, 1]|cba|['a', 'b', 'c']|['k']|k)J"},
      {R"J({{ [1,2,3]|join(', ') }}|{{ ['a','b']|join }}|{{ [{'n':'x'},{'n':'y'}]|join(',', attribute='n') }}|{{ [1,2,3]|length }}|{{ {'a':1}|length }}|{{ 'abc'|count }}|{{ 'é'|length }}|{{ x|length }})J",
       R"J({})J", R"J(1, 2, 3|ab|x,y|3|1|3|1|0)J"},
      {R"J({{ x|default('d') }}|{{ ''|default('d') }}|{{ ''|default('d', true) }}|{{ none|default('d') }}|{{ x|d('dd') }}|{{ 0|default(5, boolean=true) }})J",
       R"J({})J", R"J(d||d|None|dd|5)J"},
      {R"J({{ '42'|int }}|{{ '4.7'|int }}|{{ 'x'|int }}|{{ 'x'|int(7) }}|{{ 3.9|int }}|{{ -3.9|int }}|{{ ' 12 '|int }}|{{ '1_000'|int }}|{{ '3.5'|float }}|{{ 'x'|float }}|{{ 3|float }}|{{ true|int }}|{{ none|int }})J",
       R"J({})J", R"J(42|4|0|7|3|-3|12|1000|3.5|0.0|3.0|1|0)J"},
      {R"J({{ 2.5|round }}|{{ 3.5|round }}|{{ 2.675|round(2) }}|{{ 5|round }}|{{ 2.1|round(0, 'ceil') }}|{{ 2.9|round(method='floor') }}|{{ -1.5|abs }}|{{ -3|abs }}|{{ 1234.5|round(-2) }})J",
       R"J({})J", R"J(2.0|4.0|2.67|5|3.0|2.0|1.5|3|1200.0)J"},
      {R"J({{ 'a b a'|replace('a', 'x') }}|{{ 'aaa'|replace('a', 'b', 2) }}|{{ 'ab'|replace('', '-') }}|{{ 1|string }}|{{ [1]|string }}|{{ 'a<b>&"\''|escape }}|{{ 'x'|safe }}|{{ 1|safe }}|{{ '<'|e }})J",
       R"J({})J", R"J(x b x|bba|-a-b-|1|[1]|a&lt;b&gt;&amp;&#34;&#39;|x|1|&lt;)J"},
      {R"J({{ [1,2,1,'A','a']|unique|list }}|{{ ['a','A']|unique(case_sensitive=true)|list }}|{{ [1,5,3]|max }}|{{ [4,2,8]|min }}|{{ ['b','C','a']|max }}|{{ [1,2,3]|sum }}|{{ [{'v':1},{'v':2}]|sum(attribute='v') }}|{{ [1]|sum(start=10) }}|{{ []|max }})J",
       R"J({})J", R"J([1, 2, 'A']|['a', 'A']|5|2|C|6|3|11|)J"},
      {R"J({{ {'b':1,'a':2}|dictsort }}|{{ {'b':1,'a':2}|dictsort(by='value', reverse=true) }}|{{ {'b':1,'a':2}|items|list }}|{{ x|items|list }})J",
       R"J({})J", R"J([('a', 2), ('b', 1)]|[('a', 2), ('b', 1)]|[('b', 1), ('a', 2)]|[])J"},
      {R"J({{ {'a': [1, {'b': none}]}|tojson }}|{{ {'a':1,'b':[1,2]}|tojson(indent=2) }}|{{ 'é"\n\u0001<>&'|tojson }}|{{ [1,2]|tojson(separators=(',', ':')) }}|{{ {'b':1,'a':2}|tojson(sort_keys=true) }}|{{ 'é😀'|tojson(ensure_ascii=true) }}|{{ [[], {}]|tojson(indent=2) }}|{{ 1.0|tojson }}|{{ {'a': 1}|tojson(indent='\t') }})J",
       R"J({})J",
       R"J({"a": [1, {"b": null}]}|{
  "a": 1,
  "b": [
    1,
    2
  ]
}|"é\"\n\u0001<>&"|[1,2]|{"a": 2, "b": 1}|"\u00e9\ud83d\ude00"|[
  [],
  {}
]|1.0|{
	"a": 1
})J"},
      {R"J({{ [{'role':'user','x':1},{'role':'bot'},{'role':'user'}]|selectattr('role','equalto','user')|list|length }}|{{ [{'a':1},{'a':0},{}]|selectattr('a')|list }}|{{ [{'a':1},{'a':0}]|rejectattr('a')|list }}|{{ [{'a':none},{'a':2}]|selectattr('a', 'none')|list }}|{{ [{'a':{'b':1}},{'a':{'b':2}}]|selectattr('a.b', 'gt', 1)|list }})J",
       R"J({})J", R"J(2|[{'a': 1}]|[{'a': 0}]|[{'a': None}]|[{'a': {'b': 2}}])J"},
      {R"J({{ [{'a':1},{'a':2}]|map(attribute='a')|list }}|{{ ['a','b']|map('upper')|list }}|{{ [1,2,3,4]|select('odd')|list }}|{{ [1,2,3,4]|reject('odd')|list }}|{{ [{'a':1},{}]|map(attribute='a', default=0)|list }}|{{ ['a', 'b']|map('replace', 'a', 'z')|list }}|{{ [0, 1, '']|select|list }})J",
       R"J({})J", R"J([1, 2]|['A', 'B']|[1, 3]|[2, 4]|[1, 0]|['z', 'b']|[1])J"},
      {R"J({{ 'line1\nline2\n\nline4'|indent }}|{{ 'a\nb'|indent(2, true) }}|{{ 'a\n\nb'|indent(2, blank=true) }}|{{ 'a\nb'|indent('> ') }})J",
       R"J({})J",
       R"J(line1
    line2

    line4|  a
  b|a
  
  b|a
> b)J"},
      {R"J({{ [1,2,3,4,5]|batch(2)|list }}|{{ [1,2,3]|batch(2, 'x')|list }}|{{ 'ab'|center(6) }}|{{ 'one two, three'|wordcount }}|{{ {'a': 1}|attr('a') }}|{{ 'x'|attr('upper') is defined }})J",
       R"J({})J", R"J([[1, 2], [3, 4], [5]]|[[1, 2], [3, 'x']]|  ab  |3||True)J"},
  });
}

TEST(JinjaRenderTest, Tests) {
  ExpectRenders({
      {R"J({{ x is defined }}|{{ x is undefined }}|{{ none is none }}|{{ 'a' is string }}|{{ 1 is number }}|{{ true is number }}|{{ 1.5 is float }}|{{ 1 is integer }}|{{ true is integer }}|{{ true is boolean }}|{{ {} is mapping }}|{{ [] is mapping }})J",
       R"J({})J", R"J(False|True|True|True|True|True|True|True|False|True|True|False)J"},
      {R"J({{ [] is sequence }}|{{ {} is sequence }}|{{ 'a' is sequence }}|{{ 1 is sequence }}|{{ 'a' is iterable }}|{{ {} is iterable }}|{{ x is iterable }}|{{ 1 is iterable }}|{{ range is callable }}|{{ 'x'.upper is callable }}|{{ 1 is callable }})J",
       R"J({})J", R"J(True|True|True|False|True|True|True|False|True|True|False)J"},
      {R"J({{ 3 is odd }}|{{ 4 is even }}|{{ 6 is divisibleby 3 }}|{{ 7 is divisibleby(2) }}|{{ 1 is true }}|{{ true is true }}|{{ false is false }}|{{ 0 is false }}|{{ x is not defined }}|{{ none is not none }})J",
       R"J({})J", R"J(True|True|True|False|False|True|True|False|True|False)J"},
      {R"J({{ 'ab' is lower }}|{{ 'AB' is upper }}|{{ 'Ab' is lower }}|{{ 2 is in [1,2] }}|{{ 1 is eq 1 }}|{{ 1 is equalto 2 }}|{{ 2 is gt 1 }}|{{ 2 is greaterthan 3 }}|{{ 2 is lt 1 }}|{{ 1 is ge 1 }}|{{ 1 is le 0 }}|{{ 1 is ne 2 }}|{{ none is sameas none }})J",
       R"J({})J", R"J(True|True|False|True|True|False|True|False|False|True|False|True|True)J"},
  });
}

TEST(JinjaRenderTest, Methods) {
  ExpectRenders({
      {R"J({{ '  hi  '.strip() }}|{{ 'xxhixx'.strip('x') }}|{{ '\n\nhi\n'.lstrip('\n') }}|{{ ' hi '.rstrip() }}|{{ '\u3000hi\u00a0'.strip() }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'a-b-c'.rsplit('-', 1) }}|{{ ' a b '.split(none, 1) }}|{{ 'a\nb\r\nc'.splitlines() }})J",
       R"J({})J",
       R"J(hi|hi|hi
| hi|hi|['a', 'b', '', 'c']|['a', 'b']|['a', 'b c']|['a-b', 'c']|['a', 'b ']|['a', 'b', 'c'])J"},
      {R"J({{ 'hello'.startswith('he') }}|{{ 'hello'.endswith(('x', 'lo')) }}|{{ 'hello'.replace('l', 'L') }}|{{ 'hello'.replace('l', 'L', 1) }}|{{ 'hello'.upper() }}|{{ 'HeLLo'.lower() }}|{{ 'hello world'.title() }}|{{ "they're 1st".title() }}|{{ 'hELLO'.capitalize() }})J",
       R"J({})J", R"J(True|True|heLLo|heLlo|HELLO|hello|Hello World|They'Re 1St|Hello)J"},
      {R"J({{ 'hello'.find('l') }}|{{ 'hello'.rfind('l') }}|{{ 'hello'.find('z') }}|{{ 'héllo'.find('l') }}|{{ 'hello'.count('l') }}|{{ '-'.join(['a','b']) }}|{{ 'abc'.isalpha() }}|{{ '12'.isdigit() }}|{{ ' '.isspace() }}|{{ 'AB'.isupper() }}|{{ 'ab'.islower() }}|{{ 'prefix-x'.removeprefix('prefix-') }}|{{ 'x.txt'.removesuffix('.txt') }})J",
       R"J({})J", R"J(2|3|-1|2|2|a-b|True|True|True|True|True|x|x)J"},
      {R"J({{ d.get('a') }}|{{ d.get('z') }}|{{ d.get('z', 5) }}|{{ d.keys()|list }}|{{ d.values()|list }}|{{ d.items()|list }}|{{ d.a }}|{{ d['b'] }}|{{ d.zz }}|{{ [1, 2, 1].count(1) }}|{{ [1, 2, 1].index(2) }})J",
       R"J({"d": {"a": 1, "b": "x"}})J",
       R"J(1|None|5|['a', 'b']|[1, 'x']|[('a', 1), ('b', 'x')]|1|x||2|1)J"},
  });
}

TEST(JinjaRenderTest, Undefined) {
  ExpectRenders({
      {R"J({{ 'a' ~ undefined_var ~ 'b' }}|{{ undefined_var|length }}|{{ undefined_var|list }}|{{ undefined_var == undefined_other }}|{{ undefined_var == none }}|{{ 'x' in undefined_var }}|{{ undefined_var is none }}|{{ not undefined_var }}|{{ undefined_var|default('dv') }})J",
       R"J({})J", R"J(ab|0|[]|True|False|False|False|True|dv)J"},
      {R"J({{ none.x }}|{{ [1,2][5] }}|{{ 'ab'.nope }}|{{ d.missing }}|{{ d.missing is defined }}|{{ messages[0].tool_calls is defined }})J",
       R"J({"d": {}, "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]})J",
       R"J(||||False|False)J"},
      {R"J({% if undefined_var %}t{% else %}f{% endif %}|{% if undefined_var is defined and undefined_var.x %}never{% endif %}ok|{{ [1,2][1:5] }})J",
       R"J({})J", R"J(f|ok|[2])J"},
  });
}

TEST(JinjaRenderTest, Whitespace) {
  ExpectRenders({
      {R"J(a
  {% if true %}
    x
  {% endif %}
b)J",
       R"J({})J",
       R"J(a
    x
b)J"},
      {R"J(a
  {%- if true -%}
    x
  {%- endif -%}
  b)J",
       R"J({})J", R"J(axb)J"},
      {R"J({% for i in [1,2] %}
  {{ i }}
{% endfor %}
)J",
       R"J({})J",
       R"J(  1
  2
)J"},
      {R"J(  {{ 1 }}  {% if 1 %}  z  {% endif %}  
)J",
       R"J({})J", R"J(  1    z    )J"},
      {R"J(line1
{# comment #}
line2
  {# indented comment #}
line3 {#- strip -#}   line4)J",
       R"J({})J",
       R"J(line1
line2
line3line4)J"},
      {R"J({%+ if true %}plus{% endif +%}
after)J",
       R"J({})J",
       R"J(plus
after)J"},
      {R"J(   {% if true %}a{% endif %}
   {{- 'b' }}
{{ 'c' -}}
   d)J",
       R"J({})J",
       R"J(ab
cd)J"},
      {R"J({% raw %}{{ not rendered }}{% endraw %}|{%- raw -%}  x  {%- endraw -%}  |)J", R"J({})J",
       R"J({{ not rendered }}|x|)J"},
      {R"J(x
yz
)J",
       R"J({})J",
       R"J(x
y
z)J"},
      {R"J(text with trailing newline

)J",
       R"J({})J",
       R"J(text with trailing newline
)J"},
      {R"J(		{% for x in [1] %}	{{ x }}
		{% endfor %})J",
       R"J({})J",
       R"J(	1
)J"},
      {R"J({% macro m() -%}
  body
{%- endmacro %}[{{ m() }}])J",
       R"J({})J", R"J([body])J"},
      {R"J({{ "a" }}
{% if true %}
  {{ "b" }}
{% endif %}
{{ "c" }})J",
       R"J({})J",
       R"J(a
  b
c)J"},
      {R"J( {%- if true %} a {% endif -%} 
z)J",
       R"J({})J", R"J( a z)J"},
  });
}

}  // namespace
}  // namespace strata::model::jinja
