// Unit tests of the tokenizer.json components, each on a small inline spec with hand-derived
// expectations.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "model/decoder.h"
#include "model/normalizer.h"
#include "model/pre_tokenizer.h"
#include "model/tokenizer_added_vocab.h"
#include "model/tokenizer_post_processor.h"
#include "model/tokenizer_regex.h"
#include "model/tokenizer_unicode.h"

namespace strata::model::tok {
namespace {

using ::testing::ElementsAre;
using json = nlohmann::json;

std::vector<std::string> PreTokenize(const json& spec, std::string text) {
  auto pre = MakePreTokenizer(spec);
  EXPECT_TRUE(pre.ok()) << pre.status().ToString();
  if (!pre.ok()) return {"<pre_tokenizer error>"};
  std::vector<Piece> pieces{{std::move(text), true}};
  EXPECT_TRUE((*pre)->PreTokenize(pieces).ok());
  std::vector<std::string> out;
  for (auto& p : pieces) out.push_back(p.text);
  return out;
}

std::string Normalize(const json& spec, std::string_view text) {
  auto n = MakeNormalizer(spec);
  EXPECT_TRUE(n.ok()) << n.status().ToString();
  if (!n.ok()) return "<normalizer error>";
  return (*n)->Normalize(text);
}

std::string DecodeTokens(const json& spec, std::vector<std::string> tokens) {
  auto d = MakeDecoder(spec);
  EXPECT_TRUE(d.ok()) << d.status().ToString();
  if (!d.ok()) return "<decoder error>";
  (*d)->DecodeChain(tokens);
  std::string out;
  for (auto& t : tokens) out += t;
  return out;
}

json SplitSpec(const std::string& behavior, bool invert = false) {
  return {{"type", "Split"},
          {"pattern", {{"String", "-"}}},
          {"behavior", behavior},
          {"invert", invert}};
}

TEST(TokenizerUnicodeTest, ValidatesUtf8) {
  EXPECT_EQ(FindInvalidUtf8("plain ascii text, long enough for the fast path"), std::string::npos);
  EXPECT_EQ(FindInvalidUtf8("caf\xC3\xA9 \xF0\x9F\x98\x80"), std::string::npos);
  EXPECT_EQ(FindInvalidUtf8("ab\xC3"), 2u);            // truncated
  EXPECT_EQ(FindInvalidUtf8("\xC0\xAF"), 0u);          // overlong
  EXPECT_EQ(FindInvalidUtf8("x\xED\xA0\x80"), 1u);     // surrogate
  EXPECT_EQ(FindInvalidUtf8("\xF4\x90\x80\x80"), 0u);  // > U+10FFFF
  EXPECT_EQ(FindInvalidUtf8("12345678\x80"), 8u);      // stray continuation after fast path
}

TEST(TokenizerUnicodeTest, LossyReplacesMaximalSubparts) {
  // F0 9F 98 is a truncated 4-byte sequence: one U+FFFD; a stray 80 is another.
  EXPECT_EQ(Utf8Lossy("a\xF0\x9F\x98"
                      "b\x80"),
            "a\xEF\xBF\xBD"
            "b\xEF\xBF\xBD");
  EXPECT_EQ(Utf8Lossy("\xE2\x82\xAC"), "\xE2\x82\xAC");
}

TEST(TokenizerUnicodeTest, ByteLevelAlphabetRoundTrips) {
  EXPECT_EQ(ByteToChar(' '), U'\u0120');  // 'Ġ'
  EXPECT_EQ(ByteToChar('\n'), U'\u010A');
  EXPECT_EQ(ByteToChar('A'), U'A');
  for (int b = 0; b < 256; ++b) EXPECT_EQ(CharToByte(ByteToChar(static_cast<uint8_t>(b))), b);
  EXPECT_EQ(CharToByte(U'\u4E00'), -1);
}

TEST(TokenizerRegexTest, RewritesWhitespaceClassesLikeJavaScript) {
  EXPECT_EQ(TranslateRegex("a\\d"), "a\\d");
  EXPECT_THAT(TranslateRegex("\\s+"), ::testing::StartsWith("[\\t\\n"));
  EXPECT_THAT(TranslateRegex("[^\\s\\p{L}]"), ::testing::StartsWith("[^\\t\\n"));
  auto re = CompileRegex("\\s+");
  ASSERT_TRUE(re.ok());
  std::vector<std::pair<size_t, size_t>> found;
  // U+FEFF counts as whitespace (JavaScript), U+0085 does not.
  std::string text =
      "a\xEF\xBB\xBF"
      "b\xC2\x85"
      "c";
  ASSERT_TRUE((*re)->FindAll(text, [&](size_t b, size_t e) { found.emplace_back(b, e); }).ok());
  EXPECT_THAT(found, ElementsAre(std::make_pair(size_t{1}, size_t{4})));
}

TEST(TokenizerRegexTest, LettersAddedAfterUnicode14AreLetters) {
  // U+11F06 KAWI LETTER (Unicode 15) and U+31350 (CJK Extension H) are \p{L} in current engines;
  // PCRE2 10.42's tables predate them, so the translation adds them.
  auto re = CompileRegex("\\p{L}+|[^\\s\\p{L}]+");
  ASSERT_TRUE(re.ok());
  std::vector<std::string> found;
  std::string text =
      "a\xF0\x91\xBC\x86"
      "b\xF0\xB1\x8D\x90'";
  ASSERT_TRUE(
      (*re)
          ->FindAll(text, [&](size_t b, size_t e) { found.push_back(text.substr(b, e - b)); })
          .ok());
  EXPECT_THAT(found, ElementsAre("a\xF0\x91\xBC\x86"
                                 "b\xF0\xB1\x8D\x90",
                                 "'"));
  EXPECT_TRUE(IsLetter(0x11F06));
  EXPECT_TRUE(IsNumeric(0x11F50));  // KAWI DIGIT ZERO
  EXPECT_FALSE(IsLetter(0x11F50));
}

TEST(TokenizerRegexTest, CaseInsensitiveGroupAndLookahead) {
  auto re = CompileRegex("(?i:'s|'ll)|\\s+(?!\\S)|\\s+|\\p{L}+");
  ASSERT_TRUE(re.ok());
  std::vector<std::string> found;
  std::string text = "it'S we'LL  go";
  ASSERT_TRUE(
      (*re)
          ->FindAll(text, [&](size_t b, size_t e) { found.push_back(text.substr(b, e - b)); })
          .ok());
  EXPECT_THAT(found, ElementsAre("it", "'S", " ", "we", "'LL", " ", " ", "go"));
}

TEST(TokenizerRegexTest, BadPatternIsAnError) {
  auto re = MakePattern(json{{"Regex", "(unclosed"}});
  ASSERT_FALSE(re.ok());
  EXPECT_THAT(re.status().message(), ::testing::HasSubstr("(unclosed"));
  EXPECT_FALSE(MakePattern(json{{"Other", 1}}).ok());
}

TEST(PreTokenizerTest, SplitBehaviorsMatchHuggingFaceDocs) {
  const std::string text = "the-final--countdown";
  EXPECT_THAT(PreTokenize(SplitSpec("Removed"), text), ElementsAre("the", "final", "countdown"));
  EXPECT_THAT(PreTokenize(SplitSpec("Isolated"), text),
              ElementsAre("the", "-", "final", "-", "-", "countdown"));
  EXPECT_THAT(PreTokenize(SplitSpec("MergedWithPrevious"), text),
              ElementsAre("the-", "final-", "-", "countdown"));
  EXPECT_THAT(PreTokenize(SplitSpec("MergedWithNext"), text),
              ElementsAre("the", "-final", "-", "-countdown"));
  EXPECT_THAT(PreTokenize(SplitSpec("Contiguous"), text),
              ElementsAre("the", "-", "final", "--", "countdown"));
  // Inverted + Removed keeps only what the pattern matches.
  EXPECT_THAT(PreTokenize(SplitSpec("Removed", true), text), ElementsAre("-", "-", "-"));
}

TEST(PreTokenizerTest, SplitWithRegexIsolatesMatches) {
  json spec = {{"type", "Split"},
               {"pattern", {{"Regex", "\\p{N}{1,3}"}}},
               {"behavior", "Isolated"},
               {"invert", false}};
  EXPECT_THAT(PreTokenize(spec, "abc1234567de"), ElementsAre("abc", "123", "456", "7", "de"));
}

TEST(PreTokenizerTest, Digits) {
  json individual = {{"type", "Digits"}, {"individual_digits", true}};
  json grouped = {{"type", "Digits"}, {"individual_digits", false}};
  EXPECT_THAT(PreTokenize(individual, "ab12c345"), ElementsAre("ab", "1", "2", "c", "3", "4", "5"));
  EXPECT_THAT(PreTokenize(grouped, "ab12c345"), ElementsAre("ab", "12", "c", "345"));
  // Unicode numerics count, as char::is_numeric does.
  EXPECT_THAT(PreTokenize(grouped, "x\xD9\xA1\xD9\xA2y"),
              ElementsAre("x", "\xD9\xA1\xD9\xA2", "y"));
}

TEST(PreTokenizerTest, ByteLevelMapsBytesAndSplitsWithGpt2Regex) {
  json spec = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  EXPECT_THAT(PreTokenize(spec, "Hello world\n"),
              ElementsAre("Hello", "\xC4\xA0world", "\xC4\x8A"));  // Ġworld, Ċ
  json prefix = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", false}};
  EXPECT_THAT(PreTokenize(prefix, "Hi you"), ElementsAre("\xC4\xA0Hi\xC4\xA0you"));
  // Non-ASCII bytes map to the byte alphabet: é = C3 A9 -> "Ã©".
  json plain = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}};
  EXPECT_THAT(PreTokenize(plain, "\xC3\xA9"), ElementsAre("\xC3\x83\xC2\xA9"));
}

TEST(PreTokenizerTest, MetaspaceReplacesSpacesAndSplits) {
  json spec = {{"type", "Metaspace"},
               {"replacement", "\xE2\x96\x81"},
               {"prepend_scheme", "always"},
               {"split", true}};
  EXPECT_THAT(PreTokenize(spec, "hello  world"),
              ElementsAre("\xE2\x96\x81hello", "\xE2\x96\x81", "\xE2\x96\x81world"));
  json never = {{"type", "Metaspace"}, {"prepend_scheme", "never"}, {"split", false}};
  EXPECT_THAT(PreTokenize(never, "a b"), ElementsAre("a\xE2\x96\x81"
                                                     "b"));
}

TEST(PreTokenizerTest, SequenceAppliesInOrderAndUnknownTypesFail) {
  json spec = {{"type", "Sequence"},
               {"pretokenizers",
                {{{"type", "Digits"}, {"individual_digits", true}},
                 {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  EXPECT_THAT(PreTokenize(spec, "a 12"), ElementsAre("a\xC4\xA0", "1", "2"));
  auto bad =
      MakePreTokenizer(json{{"type", "Sequence"}, {"pretokenizers", {{{"type", "Whitespace"}}}}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kUnimplemented);
  EXPECT_THAT(bad.status().message(), ::testing::HasSubstr("pre_tokenizer Sequence"));
  EXPECT_THAT(bad.status().message(), ::testing::HasSubstr("Whitespace"));
}

TEST(NormalizerTest, UnicodeForms) {
  EXPECT_EQ(Normalize({{"type", "NFC"}}, "e\xCC\x81"), "\xC3\xA9");
  EXPECT_EQ(Normalize({{"type", "NFD"}}, "\xC3\xA9"), "e\xCC\x81");
  EXPECT_EQ(Normalize({{"type", "NFKC"}}, "\xEF\xAC\x81"), "fi");  // ﬁ ligature
  EXPECT_EQ(Normalize({{"type", "NFKD"}}, "\xC2\xBD"),
            "1\xE2\x81\x84"
            "2");  // ½
  EXPECT_EQ(Normalize({{"type", "NFC"}}, "plain"), "plain");
}

TEST(NormalizerTest, SimpleNormalizersAndSequence) {
  EXPECT_EQ(Normalize({{"type", "Lowercase"}}, "HeLLo \xC3\x89"), "hello \xC3\xA9");
  EXPECT_EQ(
      Normalize({{"type", "Strip"}, {"strip_left", true}, {"strip_right", false}}, " \t x \n"),
      "x \n");
  EXPECT_EQ(Normalize({{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}}, "hi"), "\xE2\x96\x81hi");
  EXPECT_EQ(Normalize({{"type", "Prepend"}, {"prepend", "x"}}, ""), "");
  json llama2 = {
      {"type", "Sequence"},
      {"normalizers",
       {{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
        {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}}}};
  EXPECT_EQ(Normalize(llama2, "a b"),
            "\xE2\x96\x81"
            "a\xE2\x96\x81"
            "b");
  EXPECT_EQ(
      Normalize({{"type", "Replace"}, {"pattern", {{"Regex", "\\d+"}}}, {"content", "#"}}, "a12b3"),
      "a#b#");
  auto bad = MakeNormalizer(json{{"type", "Precompiled"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), ::testing::HasSubstr("Precompiled"));
}

TEST(DecoderTest, ByteLevelJoinsBytesAndReplacesInvalidOnes) {
  json spec = {{"type", "ByteLevel"}};
  // "Ġhé" split as "Ġh", "Ã", "©" -> " hé"
  EXPECT_EQ(DecodeTokens(spec, {"\xC4\xA0h", "\xC3\x83", "\xC2\xA9"}), " h\xC3\xA9");
  // A lone lead byte (Ã alone = C3) becomes U+FFFD.
  EXPECT_EQ(DecodeTokens(spec, {"a", "\xC3\x83"}), "a\xEF\xBF\xBD");
  // Text outside the byte alphabet is kept as is.
  EXPECT_EQ(DecodeTokens(spec, {"\xEF\xBD\x9C"}), "\xEF\xBD\x9C");
}

TEST(DecoderTest, Llama2StyleSequence) {
  json spec = {{"type", "Sequence"},
               {"decoders",
                {{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
                 {{"type", "ByteFallback"}},
                 {{"type", "Fuse"}},
                 {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  EXPECT_EQ(DecodeTokens(spec, {"\xE2\x96\x81hi", "\xE2\x96\x81", "<0xC3>", "<0xA9>"}),
            "hi \xC3\xA9");
  // Invalid byte runs give one U+FFFD per byte, as HF's ByteFallback does.
  EXPECT_EQ(DecodeTokens(spec, {"a", "<0xC3>", "<0x41>"}), "a\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(DecoderTest, MetaspaceStripsFirstSpaceUnlessNever) {
  json spec = {
      {"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "always"}};
  EXPECT_EQ(DecodeTokens(spec, {"\xE2\x96\x81hello", "\xE2\x96\x81world"}), "hello world");
  json never = {
      {"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "never"}};
  EXPECT_EQ(DecodeTokens(never, {"\xE2\x96\x81hello"}), " hello");
}

TEST(DecoderTest, StripCutsAtMostTheAskedCount) {
  json spec = {{"type", "Strip"}, {"content", "x"}, {"start", 2}, {"stop", 1}};
  EXPECT_EQ(DecodeTokens(spec, {"xxxaxx"}), "xax");
  EXPECT_EQ(DecodeTokens(spec, {"x"}), "");
}

TEST(PostProcessorTest, TemplateAddsSpecialTokensOnlyWhenAsked) {
  json spec = {{"type", "TemplateProcessing"},
               {"single",
                {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                 {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                 {{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}}},
               {"special_tokens",
                {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}},
                 {"</s>", {{"id", "</s>"}, {"ids", {2}}, {"tokens", {"</s>"}}}}}}};
  auto pp = MakePostProcessor(
      json{{"type", "Sequence"}, {"processors", {{{"type", "ByteLevel"}}, spec}}});
  ASSERT_TRUE(pp.ok()) << pp.status().ToString();
  std::vector<int32_t> ids{7, 8};
  (*pp)->Process(ids, true);
  EXPECT_THAT(ids, ElementsAre(1, 7, 8, 2));
  ids = {7, 8};
  (*pp)->Process(ids, false);
  EXPECT_THAT(ids, ElementsAre(7, 8));

  json missing = spec;
  missing["special_tokens"].erase("</s>");
  auto bad = MakePostProcessor(missing);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), ::testing::HasSubstr("</s>"));
}

TEST(PostProcessorTest, BertProcessing) {
  auto pp = MakePostProcessor(
      json{{"type", "BertProcessing"}, {"cls", {"[CLS]", 101}}, {"sep", {"[SEP]", 102}}});
  ASSERT_TRUE(pp.ok());
  std::vector<int32_t> ids{5};
  (*pp)->Process(ids, true);
  EXPECT_THAT(ids, ElementsAre(101, 5, 102));
}

std::vector<std::string> SplitAdded(const std::vector<AddedToken>& tokens, bool normalized,
                                    const std::string& text) {
  AddedTokenMatcher matcher(tokens, normalized);
  std::vector<TextSpan> spans;
  matcher.Split(text, spans);
  std::vector<std::string> out;
  for (const auto& s : spans) {
    out.push_back((s.id >= 0 ? "#" + std::to_string(s.id) + ":" : "") +
                  text.substr(s.begin, s.end - s.begin));
  }
  return out;
}

TEST(AddedTokensTest, LeftmostLongestMatch) {
  std::vector<AddedToken> tokens = {{10, "<a>", true}, {11, "<a><b>", true}, {12, "b>", true}};
  EXPECT_THAT(SplitAdded(tokens, false, "x<a><b>y<a>z"),
              ElementsAre("x", "#11:<a><b>", "y", "#10:<a>", "z"));
  EXPECT_THAT(SplitAdded(tokens, false, ""), ElementsAre(""));
}

TEST(AddedTokensTest, StripAndSingleWord) {
  AddedToken mask{5, "<mask>", true};
  mask.lstrip = true;
  mask.rstrip = true;
  EXPECT_THAT(SplitAdded({mask}, false, "a  <mask>\t b"), ElementsAre("a", "#5:  <mask>\t ", "b"));
  AddedToken word{6, "ok", false};
  word.single_word = true;
  word.normalized = true;
  EXPECT_THAT(SplitAdded({word}, true, "ok book ok."),
              ElementsAre("#6:ok", " book ", "#6:ok", "."));
  // Only tokens of the asked pass are matched.
  EXPECT_THAT(SplitAdded({word}, false, "ok"), ElementsAre("ok"));
}

}  // namespace
}  // namespace strata::model::tok
