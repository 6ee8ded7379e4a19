#include "server/openai_protocol.h"

#include <gtest/gtest.h>

namespace strata::server {
namespace {

using nlohmann::json;

TEST(ParseChatRequest, ReadsEveryField) {
  auto r = ParseChatRequest(R"({
    "model": "m", "messages": [
      {"role": "system", "content": "be brief"},
      {"role": "user", "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}]},
      {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function"}]},
      {"role": "tool", "content": "42", "tool_call_id": "c1"}],
    "max_tokens": 10, "max_completion_tokens": 7, "temperature": 0.5, "top_p": 0.9, "top_k": 5,
    "min_p": 0.1, "presence_penalty": 0.5, "frequency_penalty": -0.5, "repetition_penalty": 1.2,
    "seed": 42, "stop": ["a", "bc"], "n": 3, "logprobs": true, "top_logprobs": 4,
    "stream": true, "stream_options": {"include_usage": true}, "ignore_eos": true,
    "some_unknown_field": {"x": 1}})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->params.model, "m");
  ASSERT_EQ(r->messages.size(), 4u);
  EXPECT_EQ(r->messages[1]["content"], "hi there");
  EXPECT_EQ(r->messages[2]["content"], "");
  EXPECT_EQ(r->messages[3]["tool_call_id"], "c1");
  EXPECT_EQ(r->params.max_tokens, 7);  // max_completion_tokens wins
  EXPECT_FLOAT_EQ(r->params.sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r->params.sampling.top_p, 0.9f);
  EXPECT_EQ(r->params.sampling.top_k, 5);
  EXPECT_FLOAT_EQ(r->params.sampling.min_p, 0.1f);
  EXPECT_FLOAT_EQ(r->params.sampling.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(r->params.sampling.frequency_penalty, -0.5f);
  EXPECT_FLOAT_EQ(r->params.sampling.repetition_penalty, 1.2f);
  EXPECT_EQ(r->params.sampling.seed, 42u);
  EXPECT_EQ(r->params.stop, (std::vector<std::string>{"a", "bc"}));
  EXPECT_EQ(r->params.n, 3);
  EXPECT_TRUE(r->logprobs);
  EXPECT_EQ(r->params.sampling.num_top_logprobs, 4);
  EXPECT_TRUE(r->params.stream);
  EXPECT_TRUE(r->params.include_usage);
  EXPECT_TRUE(r->params.sampling.ignore_eos);
}

TEST(ParseChatRequest, RejectsBadInputNamingTheParam) {
  struct Case {
    const char* body;
    const char* param;
  };
  const Case cases[] = {
      {R"({"model": "m", "messages": "hi"})", "messages"},
      {R"({"model": "m", "messages": []})", "messages"},
      {R"({"model": "m"})", "messages"},
      {R"({"messages": [{"role": "user", "content": "x"}]})", "model"},
      {R"({"model": "m", "messages": [{"role": "robot", "content": "x"}]})", "messages[0].role"},
      {R"({"model": "m", "messages": [{"role": "user", "content": 5}]})", "messages[0].content"},
      {R"({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]})",
       "messages[0].content"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": "5"})",
       "max_tokens"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0})",
       "max_tokens"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1.5})",
       "max_tokens"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 3})",
       "temperature"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "top_p": 0})", "top_p"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 0})", "n"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": 3})", "stop"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"})",
       "stream"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})",
       "top_logprobs"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "logprobs": true,
           "top_logprobs": 21})",
       "top_logprobs"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "presence_penalty": -3})",
       "presence_penalty"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "seed": "x"})", "seed"},
  };
  for (const auto& c : cases) {
    auto r = ParseChatRequest(c.body);
    ASSERT_FALSE(r.ok()) << c.body;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << c.body;
    EXPECT_EQ(ParamFromMessage(r.status().message()), c.param) << r.status().message();
  }
}

TEST(ParseChatRequest, MalformedJson) {
  for (const char* body : {"{", "", "[1,2]", "null", "{\"model\": }"}) {
    auto r = ParseChatRequest(body);
    ASSERT_FALSE(r.ok()) << body;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
}

TEST(ParseCompletionRequest, PromptShapes) {
  auto one = ParseCompletionRequest(R"({"model": "m", "prompt": "hello"})");
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->prompts.size(), 1u);
  EXPECT_EQ(std::get<std::string>(one->prompts[0]), "hello");

  auto strings = ParseCompletionRequest(R"({"model": "m", "prompt": ["a", "b"]})");
  ASSERT_TRUE(strings.ok());
  EXPECT_EQ(strings->prompts.size(), 2u);

  auto ids = ParseCompletionRequest(R"({"model": "m", "prompt": [1, 2, 3]})");
  ASSERT_TRUE(ids.ok());
  ASSERT_EQ(ids->prompts.size(), 1u);
  EXPECT_EQ(std::get<std::vector<int32_t>>(ids->prompts[0]), (std::vector<int32_t>{1, 2, 3}));

  auto lists = ParseCompletionRequest(R"({"model": "m", "prompt": [[1], [2, 3]], "echo": true,
                                          "logprobs": null})");
  ASSERT_TRUE(lists.ok());
  EXPECT_EQ(lists->prompts.size(), 2u);
  EXPECT_TRUE(lists->echo);

  auto lp = ParseCompletionRequest(R"({"model": "m", "prompt": "x", "logprobs": 3})");
  ASSERT_TRUE(lp.ok());
  EXPECT_EQ(lp->logprobs, 3);
  EXPECT_EQ(lp->params.sampling.num_top_logprobs, 3);
  EXPECT_EQ(lp->params.sampling.num_prompt_logprobs, -1);  // no echo: the prompt is not scored
  auto echo_lp =
      ParseCompletionRequest(R"({"model": "m", "prompt": "x", "logprobs": 2, "echo": true})");
  ASSERT_TRUE(echo_lp.ok());
  EXPECT_EQ(echo_lp->params.sampling.num_top_logprobs, 2);
  EXPECT_EQ(echo_lp->params.sampling.num_prompt_logprobs, 2);
  EXPECT_EQ(lists->params.sampling.num_prompt_logprobs, -1);  // echo without logprobs

  for (const char* bad : {R"({"model": "m", "prompt": 5})", R"({"model": "m", "prompt": []})",
                          R"({"model": "m", "prompt": [-1]})", R"({"model": "m", "prompt": ""})",
                          R"({"model": "m", "prompt": [[1], {}]})",
                          R"({"model": "m", "prompt": "x", "logprobs": 30})"}) {
    auto r = ParseCompletionRequest(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
}

TEST(Serialize, ChatCompletionEnvelope) {
  Envelope env{"chatcmpl-1", 1700000000, "m", "fp_x"};
  ChoiceOutput c;
  c.text = "hi";
  c.finish = decode::FinishReason::kStop;
  json j = ChatCompletionJson(env, {c}, Usage{5, 2, 3});
  EXPECT_EQ(j["id"], "chatcmpl-1");
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["created"], 1700000000);
  EXPECT_EQ(j["model"], "m");
  EXPECT_EQ(j["system_fingerprint"], "fp_x");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], "hi");
  EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(j["usage"]["total_tokens"], 7);
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 3);
}

TEST(Serialize, ChatChunksAndLogprobs) {
  Envelope env{"chatcmpl-1", 1, "m", "fp"};
  ChoiceOutput d;
  d.text = "a";
  d.has_logprobs = true;
  TokenLogprobText t;
  t.text = "a";
  t.bytes = "a";
  t.logprob = -0.25f;
  t.top = {{"a", -0.25f}, {"b", -1.5f}};
  t.top_bytes = {"a", "b"};
  d.logprobs.push_back(t);
  json first = ChatChunkJson(env, d, /*first=*/true, /*with_usage_null=*/true);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(first["choices"][0]["delta"]["content"], "a");
  EXPECT_TRUE(first["choices"][0]["finish_reason"].is_null());
  EXPECT_TRUE(first.contains("usage") && first["usage"].is_null());
  const json& lp = first["choices"][0]["logprobs"]["content"][0];
  EXPECT_EQ(lp["token"], "a");
  EXPECT_FLOAT_EQ(lp["logprob"].get<float>(), -0.25f);
  EXPECT_EQ(lp["bytes"], json::array({97}));
  EXPECT_EQ(lp["top_logprobs"][1]["token"], "b");

  ChoiceOutput last;
  last.finish = decode::FinishReason::kLength;
  json end = ChatChunkJson(env, last, false, false);
  EXPECT_TRUE(end["choices"][0]["delta"].empty());
  EXPECT_EQ(end["choices"][0]["finish_reason"], "length");
  EXPECT_FALSE(end.contains("usage"));

  json usage = ChatUsageChunkJson(env, Usage{3, 4, 0});
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["completion_tokens"], 4);
}

TEST(Serialize, CompletionLogprobsFormat) {
  Envelope env{"cmpl-1", 1, "m", "fp"};
  ChoiceOutput c;
  c.text = "ab";
  c.has_logprobs = true;
  for (const char* s : {"a", "b"}) {
    TokenLogprobText t;
    t.text = s;
    t.bytes = s;
    t.logprob = -1.0f;
    t.top = {{s, -1.0f}};
    c.logprobs.push_back(t);
  }
  c.text_offsets = {0, 1};
  c.finish = decode::FinishReason::kLength;
  json j = CompletionJson(env, {c}, Usage{1, 2, 0});
  EXPECT_EQ(j["object"], "text_completion");
  const json& lp = j["choices"][0]["logprobs"];
  EXPECT_EQ(lp["tokens"], json::array({"a", "b"}));
  EXPECT_EQ(lp["token_logprobs"], json::array({-1.0, -1.0}));
  EXPECT_EQ(lp["top_logprobs"][1], json({{"b", -1.0}}));
  EXPECT_EQ(lp["text_offset"], json::array({0, 1}));

  // An echoed prompt's first token has nothing before it: null logprob and alternatives.
  c.logprobs[0].logprob.reset();
  json echo = CompletionJson(env, {c}, Usage{1, 2, 0});
  const json& elp = echo["choices"][0]["logprobs"];
  EXPECT_EQ(elp["token_logprobs"], json::array({nullptr, -1.0}));
  EXPECT_TRUE(elp["top_logprobs"][0].is_null());
  EXPECT_EQ(elp["top_logprobs"][1], json({{"b", -1.0}}));
}

// The templated streaming chunk is byte for byte what dumping the JSON tree gives.
TEST(Serialize, StreamChunkWriterMatchesTheJsonTree) {
  auto dump = [](const json& j) {
    return "data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
  };
  const std::vector<std::string> texts = {"",
                                          "hello",
                                          " world",
                                          "quote \" back\\slash",
                                          "tab\tnl\ncr\rbs\bff\f",
                                          std::string("ctl\x01\x1f\x7f", 6),
                                          "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
                                          "bad \xff"
                                          " byte",
                                          "cut \xe2\x82",
                                          "overlong \xc0\xaf",
                                          "surrogate \xed\xa0\x80",
                                          "too big \xf4\x90\x80\x80",
                                          "</script><!--"};
  const std::vector<std::optional<decode::FinishReason>> finishes = {
      std::nullopt, decode::FinishReason::kStop, decode::FinishReason::kLength,
      decode::FinishReason::kError};
  for (const Envelope& env : {Envelope{"chatcmpl-abc", 1700000000, "tiny", "fp_0123"},
                              Envelope{"cmpl-\"x\"", 0, "m\u00e9/\\", ""}}) {
    for (bool usage : {false, true}) {
      StreamChunkWriter chat(env, /*chat=*/true, usage);
      StreamChunkWriter completion(env, /*chat=*/false, usage);
      for (const auto& text : texts) {
        for (const auto& finish : finishes) {
          for (int index : {0, 7}) {
            ChoiceOutput d;
            d.index = index;
            d.text = text;
            d.finish = finish;
            for (bool first : {false, true}) {
              std::string got;
              chat.AppendEvent(d, first, &got);
              EXPECT_EQ(got, dump(ChatChunkJson(env, d, first, usage))) << text;
            }
            std::string got;
            completion.AppendEvent(d, false, &got);
            EXPECT_EQ(got, dump(CompletionChunkJson(env, d, usage))) << text;
          }
        }
      }
      // With logprobs the tree is built.
      ChoiceOutput d;
      d.text = "a";
      d.has_logprobs = true;
      d.logprobs.push_back({"a", "a", -0.5f, {{"a", -0.5f}}, {"a"}});
      d.text_offsets = {3};
      std::string got;
      completion.AppendEvent(d, false, &got);
      EXPECT_EQ(got, dump(CompletionChunkJson(env, d, usage)));
      got.clear();
      chat.AppendEvent(d, true, &got);
      EXPECT_EQ(got, dump(ChatChunkJson(env, d, true, usage)));
    }
  }
}

TEST(Serialize, ErrorShape) {
  json e = ErrorJson(InvalidArgumentError("'max_tokens': must be an integer"));
  EXPECT_EQ(e["error"]["message"], "'max_tokens': must be an integer");
  EXPECT_EQ(e["error"]["type"], "invalid_request_error");
  EXPECT_EQ(e["error"]["param"], "max_tokens");
  EXPECT_TRUE(e["error"]["code"].is_null());
  json nf = ErrorJson(NotFoundError("The model 'x' does not exist"));
  EXPECT_EQ(nf["error"]["code"], "model_not_found");
  EXPECT_TRUE(nf["error"]["param"].is_null());
  EXPECT_EQ(ErrorJson(ResourceExhaustedError("full"))["error"]["type"], "rate_limit_error");
}

}  // namespace
}  // namespace strata::server
