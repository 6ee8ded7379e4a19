#include "server/output_processor.h"

#include <gtest/gtest.h>

#include "tests/unit/server/fakes.h"

namespace strata::server {
namespace {

using decode::FinishReason;
using decode::GeneratedToken;

std::vector<GeneratedToken> Tokens(const std::string& s) {
  std::vector<GeneratedToken> out;
  for (unsigned char c : s) out.push_back({c, -1.0f, {}});
  return out;
}

TEST(OutputProcessor, StopStringSpanningTokensNeverReachesTheClient) {
  testing::ByteCodec codec;
  OutputProcessor p(0, codec, {"STOP"}, false);
  std::string seen;
  // Streamed one token at a time: "abST" must hold back "ST" until it is known.
  for (char c : std::string("abSTOxSTOPzz")) {
    auto d = p.Push(Tokens(std::string(1, c)), FinishReason::kNone);
    seen += d.text;
    EXPECT_EQ(seen.find("STOP"), std::string::npos);
    if (d.finish) {
      EXPECT_EQ(*d.finish, FinishReason::kStop);
      break;
    }
  }
  EXPECT_EQ(seen, "abSTOx");
  EXPECT_TRUE(p.finished());
  EXPECT_TRUE(p.stopped_by_string());
  EXPECT_EQ(p.num_tokens(), 10);  // up to and including the P
  // Later tokens are dropped.
  EXPECT_EQ(p.Push(Tokens("more"), FinishReason::kNone).text, "");
}

TEST(OutputProcessor, HeldTextIsReleasedAtTheEnd) {
  testing::ByteCodec codec;
  OutputProcessor p(0, codec, {"xyz"}, false);
  auto d1 = p.Push(Tokens("abx"), FinishReason::kNone);
  EXPECT_EQ(d1.text, "ab");
  auto d2 = p.Push(Tokens("y"), FinishReason::kNone);
  EXPECT_EQ(d2.text, "");
  auto d3 = p.Push({}, FinishReason::kLength);
  EXPECT_EQ(d3.text, "xy");
  EXPECT_EQ(d3.finish, FinishReason::kLength);
  EXPECT_FALSE(p.stopped_by_string());
}

TEST(OutputProcessor, PromptLogprobsOfAnEcho) {
  testing::ByteCodec codec;
  // The echoed text "abc" comes first in the choice's text; the output's offsets follow it.
  OutputProcessor p(0, codec, {}, /*want_logprobs=*/true, /*text_offset_base=*/3);
  std::vector<GeneratedToken> prompt_lps = {{'b', -0.5f, {{'x', -0.25f}, {'b', -0.5f}}},
                                            {'c', -2.0f, {{'a', -0.125f}, {'z', -1.0f}}}};
  std::vector<int32_t> prompt = {'a', 'b', 'c'};
  ChoiceOutput d = p.PromptLogprobs(prompt, prompt_lps);
  ASSERT_EQ(d.logprobs.size(), 3u);
  EXPECT_FALSE(d.logprobs[0].logprob.has_value());
  EXPECT_TRUE(d.logprobs[0].top.empty());
  EXPECT_EQ(d.logprobs[0].text, "a");
  EXPECT_EQ(d.logprobs[1].text, "b");
  EXPECT_EQ(d.logprobs[1].logprob, -0.5f);
  ASSERT_EQ(d.logprobs[1].top.size(), 2u);
  EXPECT_EQ(d.logprobs[1].top[0], (std::pair<std::string, float>{"x", -0.25f}));
  EXPECT_EQ(d.logprobs[2].logprob, -2.0f);
  EXPECT_EQ(d.logprobs[2].top[1].first, "z");
  EXPECT_EQ(d.text_offsets, (std::vector<int>{0, 1, 2}));
  auto out = p.Push(Tokens("de"), FinishReason::kNone);
  EXPECT_EQ(out.text_offsets, (std::vector<int>{3, 4}));
}

TEST(OutputProcessor, EarliestOfSeveralStopStrings) {
  testing::ByteCodec codec;
  OutputProcessor p(0, codec, {"cd", "b"}, false);
  auto d = p.Push(Tokens("abcd"), FinishReason::kNone);
  EXPECT_EQ(d.text, "a");
  EXPECT_EQ(d.finish, FinishReason::kStop);
}

TEST(OutputProcessor, MultiByteCharactersAndEos) {
  testing::ByteCodec codec;
  OutputProcessor p(0, codec, {}, true);
  std::string euro = "\xE2\x82\xAC";
  auto d1 = p.Push(Tokens(euro.substr(0, 2)), FinishReason::kNone);
  EXPECT_EQ(d1.text, "");
  ASSERT_EQ(d1.logprobs.size(), 2u);
  EXPECT_EQ(d1.logprobs[0].text, "\\xe2");  // a partial character is shown escaped
  EXPECT_EQ(d1.logprobs[0].bytes, "\xE2");
  auto d2 = p.Push(Tokens(euro.substr(2) + "!"), FinishReason::kNone);
  EXPECT_EQ(d2.text, euro + "!");
  EXPECT_EQ(d2.text_offsets, (std::vector<int>{0, 3}));
  auto d3 = p.Push({{testing::kEosId, -0.1f, {}}}, FinishReason::kStop);
  EXPECT_EQ(d3.text, "");
  EXPECT_EQ(d3.finish, FinishReason::kStop);
  EXPECT_EQ(p.num_tokens(), 5);
}

TEST(OutputProcessor, IncompleteCharacterAtEndBecomesReplacement) {
  testing::ByteCodec codec;
  OutputProcessor p(0, codec, {}, false);
  auto d = p.Push(Tokens("a\xE2"), FinishReason::kLength);
  EXPECT_EQ(d.text, "a\xEF\xBF\xBD");
}

TEST(TokenDisplayText, EscapesOnlyInvalidBytes) {
  EXPECT_EQ(TokenDisplayText("ab"), "ab");
  EXPECT_EQ(TokenDisplayText("\xC3\xA9"), "\xC3\xA9");
  EXPECT_EQ(TokenDisplayText("a\xFF"), "a\\xff");
}

}  // namespace
}  // namespace strata::server
