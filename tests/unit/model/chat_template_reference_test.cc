// Compares ChatTemplate against the independent JavaScript reference byte for byte:
// @huggingface/jinja rendering the real DeepSeek-V3 / Qwen3 / Llama-3 chat templates with the
// context transformers.js' apply_chat_template builds (and, where its bundled Jinja can parse
// the template, @lenml/tokenizers' apply_chat_template itself), plus synthetic templates that
// exercise each Jinja feature. Cases live in testdata/chat_template_cases.json; node runs once.
//
// A few cases carry "reference_differs" (a documented @huggingface/jinja deviation from
// Jinja2) and "python_jinja2" (the output of Python's Jinja2, which transformers uses); those
// are checked against the Python output instead.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "model/chat_template.h"

namespace strata::model {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs `command` and returns its stdout; sets `exit_code`.
std::string RunCommand(const std::string& command, int& exit_code) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    exit_code = -1;
    return out;
  }
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  exit_code = pclose(pipe);
  return out;
}

std::string Quote(const std::string& s) { return "'" + s + "'"; }

StatusOr<std::string> RenderCase(const ojson& c, const fs::path& assets) {
  if (c.contains("model")) {
    const fs::path config_path =
        assets / "tokenizers" / c["model"].get<std::string>() / "tokenizer_config.json";
    STRATA_ASSIGN_OR_RETURN(ChatTemplate t, ChatTemplate::FromTokenizerConfig(
                                                nlohmann::json::parse(ReadFile(config_path))));
    return t.Render(c["messages"], c["add_generation_prompt"].get<bool>(),
                    c.value("tools", ojson(nullptr)), c.value("extra", ojson::object()));
  }
  STRATA_ASSIGN_OR_RETURN(ChatTemplate t,
                          ChatTemplate::FromSource(c["template"].get<std::string>(), "", ""));
  return t.Render(ojson::array(), false, nullptr, c["context"]);
}

TEST(ChatTemplateReferenceTest, MatchesJavaScriptReferenceByteForByte) {
  const fs::path assets = Env("STRATA_TEST_ASSETS");
  if (assets.empty() || !fs::exists(assets / "node_modules" / "@huggingface" / "jinja")) {
    GTEST_SKIP() << "test assets missing (run scripts/fetch-test-assets): " << assets;
  }
  const fs::path source_dir = Env("STRATA_SOURCE_DIR");
  const fs::path cases_path = source_dir / "tests/unit/model/testdata/chat_template_cases.json";
  const fs::path script = source_dir / "tests/unit/model/chat_template_reference.js";
  const ojson cases = ojson::parse(ReadFile(cases_path));
  ASSERT_GT(cases.size(), 100u);

  int exit_code = 0;
  const std::string output =
      RunCommand("node " + Quote(script.string()) + " " + Quote(assets.string()) + " " +
                     Quote(cases_path.string()),
                 exit_code);
  ASSERT_EQ(exit_code, 0) << "node reference failed: " << output;
  const ojson reference = ojson::parse(output);
  ASSERT_EQ(reference.size(), cases.size());

  int matched = 0;
  int lenml_checked = 0;
  int model_cases = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const ojson& c = cases[i];
    const std::string name = c["name"].get<std::string>();
    SCOPED_TRACE(name);
    const ojson& want = c.contains("python_jinja2") ? c["python_jinja2"] : reference[i];
    if (c.contains("python_jinja2")) {
      EXPECT_TRUE(c.contains("reference_differs"));
    }
    StatusOr<std::string> got = RenderCase(c, assets);
    if (want["ok"].get<bool>()) {
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      EXPECT_EQ(*got, want["text"].get<std::string>());
      if (*got == want["text"].get<std::string>()) ++matched;
    } else {
      EXPECT_FALSE(got.ok()) << "reference failed with: " << want["error"]
                             << "\nwe rendered: " << (got.ok() ? *got : "");
      if (!got.ok()) {
        EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
        ++matched;
      }
    }
    if (c.contains("model")) ++model_cases;
    if (reference[i].contains("lenml") && !reference[i]["lenml"].is_null()) {
      // transformers.js' own apply_chat_template agrees with the rendering above.
      EXPECT_EQ(reference[i]["lenml"].get<std::string>(), reference[i]["text"].get<std::string>());
      ++lenml_checked;
    }
  }
  EXPECT_GT(lenml_checked, 20);
  EXPECT_GT(model_cases, 50);
  std::printf(
      "[ reference ] %d of %zu cases match (%d real-model conversations, %d also "
      "checked through @lenml apply_chat_template)\n",
      matched, cases.size(), model_cases, lenml_checked);
}

}  // namespace
}  // namespace strata::model
