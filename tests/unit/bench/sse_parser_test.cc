#include "bench/driver/sse_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace strata::bench {
namespace {

std::vector<std::string> FeedInPieces(const std::string& stream, size_t piece) {
  SseParser parser;
  std::vector<std::string> events;
  for (size_t i = 0; i < stream.size(); i += piece) {
    bool ok = parser.Feed(std::string_view(stream).substr(i, piece), [&](std::string_view d) {
      events.emplace_back(d);
      return true;
    });
    EXPECT_TRUE(ok);
  }
  return events;
}

TEST(SseParserTest, EventsSurviveAnySplit) {
  std::string stream =
      "data: {\"a\":1}\n\n"
      ": comment\n"
      "event: message\r\n"
      "data:{\"b\":2}\r\n\r\n"
      "id: 7\n"
      "data: line1\n"
      "data: line2\n\n"
      "data: [DONE]\n\n";
  std::vector<std::string> want = {"{\"a\":1}", "{\"b\":2}", "line1\nline2", "[DONE]"};
  for (size_t piece = 1; piece <= stream.size(); ++piece) {
    EXPECT_EQ(FeedInPieces(stream, piece), want) << "piece size " << piece;
  }
}

TEST(SseParserTest, ViewIsIntoInputWhenEventIsComplete) {
  SseParser parser;
  std::string input = "data: hello\n\n";
  const char* seen = nullptr;
  ASSERT_TRUE(parser.Feed(input, [&](std::string_view d) {
    seen = d.data();
    return true;
  }));
  EXPECT_EQ(seen, input.data() + 6);  // zero-copy
}

TEST(SseParserTest, IncompleteEventIsNotDispatched) {
  SseParser parser;
  int n = 0;
  ASSERT_TRUE(parser.Feed("data: x\n", [&](std::string_view) { return ++n, true; }));
  EXPECT_EQ(n, 0);
  ASSERT_TRUE(parser.Feed("\n", [&](std::string_view d) {
    EXPECT_EQ(d, "x");
    return ++n, true;
  }));
  EXPECT_EQ(n, 1);
}

TEST(SseParserTest, CallbackFalseStops) {
  SseParser parser;
  int n = 0;
  EXPECT_FALSE(parser.Feed("data: a\n\ndata: b\n\n", [&](std::string_view) {
    ++n;
    return false;
  }));
  EXPECT_EQ(n, 1);
}

}  // namespace
}  // namespace strata::bench
