#include "bench/driver/chunk_scan.h"

#include <gtest/gtest.h>

namespace strata::bench {
namespace {

TEST(ChunkScanTest, ChatContentChunk) {
  StreamChunk c;
  ASSERT_TRUE(ScanStreamChunk(
      R"({"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel\"lo"},"finish_reason":null}]})",
      &c));
  EXPECT_TRUE(c.has_choices);
  EXPECT_TRUE(c.has_content);
  EXPECT_EQ(c.content_raw, R"(Hel\"lo)");
  EXPECT_TRUE(c.finish_reason.empty());
  EXPECT_FALSE(c.has_usage);
}

TEST(ChunkScanTest, RoleOnlyChunkHasNoContent) {
  StreamChunk c;
  ASSERT_TRUE(ScanStreamChunk(R"({"choices":[{"delta":{"role":"assistant","content":""}}]})", &c));
  EXPECT_TRUE(c.has_choices);
  EXPECT_FALSE(c.has_content);
  ASSERT_TRUE(ScanStreamChunk(R"({"choices":[{"delta":{"content":null}}]})", &c));
  EXPECT_FALSE(c.has_content);
}

TEST(ChunkScanTest, ReasoningContentCounts) {
  StreamChunk c;
  ASSERT_TRUE(
      ScanStreamChunk(R"({"choices":[{"delta":{"content":"","reasoning_content":"hm"}}]})", &c));
  EXPECT_TRUE(c.has_content);
  EXPECT_EQ(c.content_raw, "hm");
}

TEST(ChunkScanTest, CompletionTextAndFinish) {
  StreamChunk c;
  ASSERT_TRUE(ScanStreamChunk(
      R"({"choices":[{"index":0,"text":" world","logprobs":null,"finish_reason":"length","stop_reason":null}]})",
      &c));
  EXPECT_EQ(c.content_raw, " world");
  EXPECT_EQ(c.finish_reason, "length");
}

TEST(ChunkScanTest, UsageChunk) {
  StreamChunk c;
  ASSERT_TRUE(ScanStreamChunk(
      R"({"id":"x","choices":[],"usage":{"prompt_tokens":12,"total_tokens":20,"completion_tokens":8,"prompt_tokens_details":{"cached_tokens":4}}})",
      &c));
  EXPECT_FALSE(c.has_choices);
  EXPECT_FALSE(c.has_content);
  EXPECT_TRUE(c.has_usage);
  EXPECT_EQ(c.prompt_tokens, 12);
  EXPECT_EQ(c.completion_tokens, 8);
  EXPECT_EQ(c.cached_tokens, 4);
  ASSERT_TRUE(ScanStreamChunk(R"({"choices":[{"text":"a"}],"usage":null})", &c));
  EXPECT_FALSE(c.has_usage);
  ASSERT_TRUE(ScanStreamChunk(R"({"usage":{"prompt_tokens":3,"prompt_tokens_details":null}})", &c));
  EXPECT_EQ(c.prompt_tokens, 3);
  EXPECT_EQ(c.cached_tokens, -1);
}

TEST(ChunkScanTest, ErrorEvent) {
  StreamChunk c;
  ASSERT_TRUE(ScanStreamChunk(R"({"error":{"message":"boom","type":"x","code":500}})", &c));
  EXPECT_TRUE(c.is_error);
  EXPECT_EQ(c.error_message, "boom");
  ASSERT_TRUE(ScanStreamChunk(R"({"error":"plain"})", &c));
  EXPECT_EQ(c.error_message, "plain");
}

TEST(ChunkScanTest, SkipsNestedValuesAndEscapes) {
  StreamChunk c;
  ASSERT_TRUE(ScanStreamChunk(
      R"({"a":[1,2.5e3,-3,{"b":[true,false,null]}],"s":"x\\","choices":[{"delta":{"tool_calls":[{"f":{"x":"}"}}],"content":"ok\\\""}},{"text":"second"}]})",
      &c));
  EXPECT_EQ(c.content_raw, R"(ok\\\")");
}

TEST(ChunkScanTest, RejectsMalformed) {
  StreamChunk c;
  for (const char* bad :
       {"", "{", "[1]", R"({"a":})", R"({"a":1,})", R"({"a" 1})",
        R"({"choices":[{"text":"unterminated}]})", R"({"a":1} x)", "nul", R"({"a":tru})"}) {
    EXPECT_FALSE(ScanStreamChunk(bad, &c)) << bad;
  }
  std::string deep(100, '[');
  EXPECT_FALSE(ScanStreamChunk(R"({"a":)" + deep + "}", &c));
}

}  // namespace
}  // namespace strata::bench
