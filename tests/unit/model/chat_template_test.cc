#include "model/chat_template.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace strata::model {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

json Config(const std::string& chat_template) {
  return json{{"chat_template", chat_template},
              {"bos_token", {{"__type", "AddedToken"}, {"content", "<s>"}}},
              {"eos_token", "</s>"},
              {"pad_token", nullptr}};
}

std::string MustRender(const ChatTemplate& t, const json& messages, bool gen = false,
                       const json& tools = nullptr, const json& extra = json::object()) {
  StatusOr<std::string> out = t.Render(messages, gen, tools, extra);
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  return out.ok() ? *out : "";
}

TEST(ChatTemplateTest, StringTemplateWithAddedTokens) {
  auto t = ChatTemplate::FromTokenizerConfig(
      Config("{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}"
             "{% if add_generation_prompt %}[assistant]{% endif %}{{ eos_token }}"
             "{{ pad_token is defined }}"));
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->template_names(), std::vector<std::string>{"default"});
  const json messages = json::array({{{"role", "user"}, {"content", "hi"}}});
  EXPECT_EQ(MustRender(*t, messages, true), "<s>[user]hi[assistant]</s>False");
  EXPECT_EQ(MustRender(*t, messages, false), "<s>[user]hi</s>False");
}

TEST(ChatTemplateTest, ContextHasToolsDocumentsAndExtraKeys) {
  auto t = ChatTemplate::FromSource(
      "{{ tools is none }}|{{ documents is none }}|{{ tools|length if tools else 0 }}|"
      "{{ enable_thinking }}|{{ messages|length }}|{{ bos_token is defined }}",
      "", "</s>");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(MustRender(*t, json::array()), "True|True|0||0|False");
  EXPECT_EQ(MustRender(*t, json::array(), false, json::array({{{"type", "function"}}}),
                       {{"enable_thinking", false}}),
            "False|True|1|False|0|False");
}

TEST(ChatTemplateTest, NamedTemplatesPickToolUseWhenToolsAreGiven) {
  json config = Config("");
  config["chat_template"] =
      json::array({{{"name", "default"}, {"template", "plain"}},
                   {{"name", "tool_use"}, {"template", "tools:{{ tools|length }}"}}});
  auto t = ChatTemplate::FromTokenizerConfig(config);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(MustRender(*t, json::array()), "plain");
  EXPECT_EQ(MustRender(*t, json::array(), false, json::array({json::object()})), "tools:1");

  config["chat_template"] = json::array({{{"name", "rag"}, {"template", "x"}}});
  auto no_default = ChatTemplate::FromTokenizerConfig(config);
  ASSERT_TRUE(no_default.ok());
  EXPECT_EQ(no_default->Render(json::array(), false).status().code(), StatusCode::kInvalidArgument);
}

TEST(ChatTemplateTest, BadConfigsAreInvalidArgument) {
  EXPECT_FALSE(ChatTemplate::FromTokenizerConfig(json::array()).ok());
  EXPECT_FALSE(ChatTemplate::FromTokenizerConfig(json{{"eos_token", "x"}}).ok());
  EXPECT_FALSE(ChatTemplate::FromTokenizerConfig(json{{"chat_template", 5}}).ok());
  EXPECT_FALSE(
      ChatTemplate::FromTokenizerConfig(json{{"chat_template", json::array({{{"name", 1}}})}})
          .ok());
  json bad_token = Config("x");
  bad_token["bos_token"] = 5;
  EXPECT_FALSE(ChatTemplate::FromTokenizerConfig(bad_token).ok());
  auto syntax = ChatTemplate::FromTokenizerConfig(Config("line\n{% if %}"));
  ASSERT_FALSE(syntax.ok());
  EXPECT_EQ(syntax.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(syntax.status().message().find("line 2"), std::string::npos)
      << syntax.status().ToString();
}

TEST(ChatTemplateTest, BadInputAndTemplateErrorsAreInvalidArgument) {
  auto t = ChatTemplate::FromSource(
      "{% for m in messages %}{% if m.role not in ['user', 'assistant'] %}"
      "{{ raise_exception('Unsupported role: ' ~ m.role) }}{% endif %}{{ m.content }}{% endfor %}",
      "", "");
  ASSERT_TRUE(t.ok());
  auto raised = t->Render(json::array({{{"role", "robot"}, {"content", "x"}}}), false);
  ASSERT_FALSE(raised.ok());
  EXPECT_EQ(raised.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(raised.status().message().find("Unsupported role: robot"), std::string::npos);
  EXPECT_EQ(t->Render(json::object(), false).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(t->Render(json::array({"not an object"}), false).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(t->Render(json::array(), false, json::object()).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(t->Render(json::array(), false, nullptr, json::array()).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(ChatTemplateTest, StrftimeNowFormatsLocalTime) {
  auto t = ChatTemplate::FromSource("{{ strftime_now('%Y') }}|{{ strftime_now('%d %B') }}", "", "");
  ASSERT_TRUE(t.ok());
  const std::string out = MustRender(*t, json::array());
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  EXPECT_EQ(out.substr(0, 4), std::to_string(1900 + local.tm_year));
}

TEST(ChatTemplateTest, KeyOrderFollowsTheJsonContainer) {
  auto t = ChatTemplate::FromSource("{% for tool in tools %}{{ tool|tojson }}{% endfor %}", "", "");
  ASSERT_TRUE(t.ok());
  const std::string text = R"([{"name": "f", "description": "d", "parameters": {"b": 1, "a": 2}}])";
  auto ordered = t->Render(ojson::array(), false, ojson::parse(text));
  ASSERT_TRUE(ordered.ok());
  EXPECT_EQ(*ordered, R"({"name": "f", "description": "d", "parameters": {"b": 1, "a": 2}})");
  auto sorted = t->Render(json::array(), false, json::parse(text));
  ASSERT_TRUE(sorted.ok());
  EXPECT_EQ(*sorted, R"({"description": "d", "name": "f", "parameters": {"a": 2, "b": 1}})");
}

TEST(ChatTemplateTest, RenderIsThreadSafe) {
  auto t = ChatTemplate::FromSource(
      "{% set ns = namespace(n=0) %}{% macro m(x) %}<{{ x }}>{% endmacro %}"
      "{% for msg in messages %}{% set ns.n = ns.n + 1 %}{{ m(msg.content) }}{% endfor %}{{ ns.n "
      "}}",
      "", "");
  ASSERT_TRUE(t.ok());
  std::vector<std::thread> threads;
  std::vector<std::string> results(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      json messages = json::array();
      for (int k = 0; k <= i; ++k) messages.push_back({{"role", "user"}, {"content", k}});
      for (int rep = 0; rep < 200; ++rep) {
        auto out = t->Render(messages, false);
        results[i] = out.ok() ? *out : out.status().ToString();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int i = 0; i < 8; ++i) {
    std::string want;
    for (int k = 0; k <= i; ++k) want += "<" + std::to_string(k) + ">";
    EXPECT_EQ(results[i], want + std::to_string(i + 1));
  }
}

// The real templates (assets from scripts/fetch-test-assets).
StatusOr<ChatTemplate> LoadModel(const std::string& model) {
  const char* assets = std::getenv("STRATA_TEST_ASSETS");
  const std::filesystem::path path =
      std::filesystem::path(assets ? assets : "") / "tokenizers" / model / "tokenizer_config.json";
  std::ifstream in(path);
  if (!in) return NotFoundError(path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ChatTemplate::FromTokenizerConfig(json::parse(ss.str()));
}

#define REQUIRE_MODEL(var, model)                                           \
  auto var##_or = LoadModel(model);                                         \
  if (var##_or.status().code() == StatusCode::kNotFound) {                  \
    GTEST_SKIP() << "test assets missing (run scripts/fetch-test-assets): " \
                 << var##_or.status().message();                            \
  }                                                                         \
  ASSERT_TRUE(var##_or.ok()) << var##_or.status().ToString();               \
  const ChatTemplate& var = *var##_or

TEST(ChatTemplateTest, Qwen3FollowsPythonJinjaWhereJavaScriptDiffers) {
  REQUIRE_MODEL(qwen3, "qwen3");
  // Python's str.lstrip('\n') keeps leading spaces (JavaScript's implementation drops them).
  const json messages =
      json::array({{{"role", "user"}, {"content", "q"}},
                   {{"role", "assistant"},
                    {"content", "<think>\n  indented reasoning\n</think>\n\n  answer"}}});
  EXPECT_EQ(MustRender(qwen3, messages),
            "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\n  indented "
            "reasoning\n</think>\n\n  answer<|im_end|>\n");
  // messages[0].role on an empty conversation is an UndefinedError in Jinja2.
  auto empty = qwen3.Render(json::array(), true);
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("has no element 0"), std::string::npos)
      << empty.status().ToString();
  // Content parts are passed as given; this template only accepts string content.
  auto parts = qwen3.Render(
      json::array({{{"role", "user"}, {"content", "x"}},
                   {{"role", "assistant"}, {"content", json::array({{{"type", "text"}}})}}}),
      false);
  EXPECT_EQ(parts.status().code(), StatusCode::kInvalidArgument);
}

TEST(ChatTemplateTest, LongConversationsRenderQuickly) {
  REQUIRE_MODEL(qwen3, "qwen3");
  json messages = json::array();
  messages.push_back({{"role", "system"}, {"content", "You are helpful."}});
  for (int i = 0; i < 2000; ++i) {
    messages.push_back({{"role", "user"}, {"content", "Question number " + std::to_string(i)}});
    messages.push_back({{"role", "assistant"}, {"content", std::string(200, 'a')}});
  }
  const auto start = std::chrono::steady_clock::now();
  auto out = qwen3.Render(messages, true);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_GT(out->size(), 400000u);
  std::printf("[ timing ] Qwen3 template, 4001 messages (%zu bytes out): %.1f ms\n", out->size(),
              ms);
}

}  // namespace
}  // namespace strata::model
