#include "model/jinja_lexer.h"

#include <gtest/gtest.h>

#include "model/jinja_value.h"

namespace strata::model::jinja {
namespace {

using TT = Token::Type;

std::vector<std::pair<TT, std::string>> Kinds(const std::string& source) {
  std::vector<std::pair<TT, std::string>> out;
  for (const Token& t : Tokenize(source)) out.emplace_back(t.type, t.text);
  return out;
}

// Concatenated data tokens: what the template would print if it had no tags.
std::string Data(const std::string& source) {
  std::string out;
  for (const Token& t : Tokenize(source)) {
    if (t.type == TT::kData) out += t.text;
  }
  return out;
}

TEST(JinjaLexerTest, SplitsDataAndTags) {
  const auto tokens = Kinds("a{{ x.y | f(1, 'z') }}b{% if n >= 2 %}c{% endif %}");
  const std::vector<std::pair<TT, std::string>> want = {
      {TT::kData, "a"},    {TT::kVarBegin, "{{"},   {TT::kName, "x"},        {TT::kOperator, "."},
      {TT::kName, "y"},    {TT::kOperator, "|"},    {TT::kName, "f"},        {TT::kOperator, "("},
      {TT::kInteger, "1"}, {TT::kOperator, ","},    {TT::kString, "z"},      {TT::kOperator, ")"},
      {TT::kVarEnd, "}}"}, {TT::kData, "b"},        {TT::kBlockBegin, "{%"}, {TT::kName, "if"},
      {TT::kName, "n"},    {TT::kOperator, ">="},   {TT::kInteger, "2"},     {TT::kBlockEnd, "%}"},
      {TT::kData, "c"},    {TT::kBlockBegin, "{%"}, {TT::kName, "endif"},    {TT::kBlockEnd, "%}"},
      {TT::kEof, ""},
  };
  EXPECT_EQ(tokens, want);
}

TEST(JinjaLexerTest, OperatorsAndNumbers) {
  const auto tokens = Tokenize("{{ 1.5e3 // 2 ** 3 ~ messages.0 != -1_000 }}");
  EXPECT_EQ(tokens[1].type, TT::kFloat);
  EXPECT_DOUBLE_EQ(tokens[1].float_value, 1500.0);
  EXPECT_EQ(tokens[2].text, "//");
  EXPECT_EQ(tokens[4].text, "**");
  EXPECT_EQ(tokens[6].text, "~");
  // "messages.0" is name, dot, integer (not a float).
  EXPECT_EQ(tokens[7].text, "messages");
  EXPECT_EQ(tokens[8].text, ".");
  EXPECT_EQ(tokens[9].type, TT::kInteger);
  EXPECT_EQ(tokens[10].text, "!=");
  EXPECT_EQ(tokens[11].text, "-");
  EXPECT_EQ(tokens[12].int_value, 1000);
}

TEST(JinjaLexerTest, StringEscapesFollowPython) {
  const auto tokens = Tokenize(R"({{ 'a\'b\n\t\\\x41\u00e9\U0001F600\d' ~ "q\"" }})");
  EXPECT_EQ(tokens[1].type, TT::kString);
  EXPECT_EQ(tokens[1].text, "a'b\n\t\\A\xC3\xA9\xF0\x9F\x98\x80\\d");
  EXPECT_EQ(tokens[3].text, "q\"");
}

TEST(JinjaLexerTest, WhitespaceControlStripsAroundTags) {
  EXPECT_EQ(Data("a  \n {%- if x -%} \n b \n{%- endif %}"), "ab");
  EXPECT_EQ(Data("a  {{- x -}}  b"), "ab");
  EXPECT_EQ(Data("a  {#- c -#}  b"), "ab");
}

TEST(JinjaLexerTest, TrimBlocksRemovesOneNewlineAfterBlockTags) {
  EXPECT_EQ(Data("{% if x %}\n\nb{% endif %}\n"), "\nb");
  // Not after variables.
  EXPECT_EQ(Data("{{ x }}\nb"), "\nb");
  // "+%}" keeps it.
  EXPECT_EQ(Data("{% if x +%}\nb{% endif %}"), "\nb");
  // Comments are block-like.
  EXPECT_EQ(Data("{# c #}\nb"), "b");
}

TEST(JinjaLexerTest, LstripBlocksRemovesIndentBeforeBlockTags) {
  EXPECT_EQ(Data("a\n    {% if x %}b"), "a\nb");
  EXPECT_EQ(Data("    {% if x %}b"), "b");  // start of template counts as a line start
  // Not before variables, and not when other text precedes the tag on its line.
  EXPECT_EQ(Data("a\n    {{ x }}"), "a\n    ");
  EXPECT_EQ(Data("a\n  z {% if x %}"), "a\n  z ");
  // "{%+" opts out.
  EXPECT_EQ(Data("a\n    {%+ if x %}"), "a\n    ");
  // Indentation after a tag that consumed its newline (trim_blocks) is a line start too.
  EXPECT_EQ(Data("{% if x %}\n    {% if y %}b"), "b");
}

TEST(JinjaLexerTest, UnicodeWhitespaceCountsAsWhitespace) {
  // U+3000 (ideographic space) and U+00A0 are whitespace to Python's regex \s.
  EXPECT_EQ(Data("a {{- x -}}\u3000\u00a0b"), "ab");
  EXPECT_EQ(Data("{{\u3000x\u00a0}}"), "");
  EXPECT_EQ(Data("a\n\u3000{% if x %}b"), "a\nb");
}

TEST(JinjaLexerTest, NormalizesNewlinesAndDropsOneTrailingNewline) {
  EXPECT_EQ(Data("a\r\nb\rc\n"), "a\nb\nc");
  EXPECT_EQ(Data("a\n\n"), "a\n");
}

TEST(JinjaLexerTest, RawBlocksAndComments) {
  EXPECT_EQ(Data("{% raw %}{{ x }}{% if %}{% endraw %}"), "{{ x }}{% if %}");
  EXPECT_EQ(Data("a{# {{ ignored }} #}b"), "ab");
}

TEST(JinjaLexerTest, CurlyBracesInsideExpressionsAreBalanced) {
  const auto tokens = Kinds("{{ {'a': {'b': 1}} }}");
  EXPECT_EQ(tokens[tokens.size() - 2].first, TT::kVarEnd);
  EXPECT_EQ(tokens[tokens.size() - 3], std::make_pair(TT::kOperator, std::string("}")));
}

TEST(JinjaLexerTest, ErrorsCarryLineAndColumn) {
  try {
    Tokenize("line1\nline2 {{ a $ b }}");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.line(), 2);
    EXPECT_EQ(e.column(), 12);
    EXPECT_NE(std::string(e.what()).find("unexpected char '$'"), std::string::npos);
  }
  EXPECT_THROW(Tokenize("{{ 'unterminated }}"), Error);
  EXPECT_THROW(Tokenize("{# no end"), Error);
  EXPECT_THROW(Tokenize("{{ x "), Error);
  EXPECT_THROW(Tokenize("{{ (x ]}}"), Error);
  EXPECT_THROW(Tokenize("{% raw %}never ends"), Error);
}

}  // namespace
}  // namespace strata::model::jinja
