// The Tokenizer as a whole on small inline tokenizer.json files: encode / decode, special tokens,
// tokenizer_config.json, errors, streaming detokenization and concurrent use.
#include "model/tokenizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "model/tokenizer_unicode.h"

namespace strata::model {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using json = nlohmann::json;
namespace fs = std::filesystem;

constexpr const char* kSpace = "\xE2\x96\x81";  // ▁

// Writes DIR/tokenizer.json (+ tokenizer_config.json when given) in a fresh temp directory.
std::string WriteDir(const std::string& tokenizer_json, const std::string* config = nullptr) {
  static std::atomic<int> counter{0};
  fs::path dir = fs::path(::testing::TempDir()) /
                 ("tok_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  fs::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << tokenizer_json;
  if (config != nullptr) std::ofstream(dir / "tokenizer_config.json") << *config;
  return dir.string();
}

std::string WriteDir(const json& spec) { return WriteDir(spec.dump()); }
std::string WriteDir(const json& spec, const json& config) {
  std::string c = config.dump();
  return WriteDir(spec.dump(), &c);
}

// A byte-level BPE: ids 0-255 are the bytes, then a few merges spelling "hello" and " world".
json ByteLevelSpec() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[std::string(tok::ByteToUtf8(static_cast<uint8_t>(b)))] = b;
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"h", "e"},          {"l", "l"},           {"he", "ll"},
      {"hell", "o"},       {"\xC4\xA0", "w"},    {"o", "r"},
      {"\xC4\xA0w", "or"}, {"\xC4\xA0wor", "l"}, {"\xC4\xA0worl", "d"}};
  json merge_list = json::array();
  int next = 256;
  for (const auto& [a, b] : merges) {
    vocab[a + b] = next++;
    merge_list.push_back(a + " " + b);  // the legacy "a b" format
  }
  return {
      {"version", "1.0"},
      {"added_tokens",
       {{{"id", 300}, {"content", "<|end|>"}, {"special", true}, {"normalized", false}},
        {{"id", 301}, {"content", "<tool>"}, {"special", false}, {"normalized", true}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single",
         {{{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
          {{"SpecialToken", {{"id", "<|end|>"}, {"type_id", 0}}}}}},
        {"special_tokens", {{"<|end|>", {{"id", "<|end|>"}, {"ids", {300}}}}}}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merge_list}}}};
}

// A Llama-2 style tokenizer: Metaspace via normalizers, byte fallback, "<s> $A" template.
json Llama2Spec() {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    vocab[name] = 3 + b;
  }
  vocab[kSpace] = 259;
  vocab["h"] = 260;
  vocab["i"] = 261;
  vocab[std::string(kSpace) + "h"] = 262;
  vocab[std::string(kSpace) + "hi"] = 263;
  auto special = [](int id, const char* content) {
    return json{{"id", id}, {"content", content}, {"special", true}, {"normalized", false}};
  };
  return {{"added_tokens", {special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")}},
          {"normalizer",
           {{"type", "Sequence"},
            {"normalizers",
             {{{"type", "Prepend"}, {"prepend", kSpace}},
              {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSpace}}}}}},
          {"pre_tokenizer", nullptr},
          {"post_processor",
           {{"type", "TemplateProcessing"},
            {"single",
             {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
            {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}}}}}}},
          {"decoder",
           {{"type", "Sequence"},
            {"decoders",
             {{{"type", "Replace"}, {"pattern", {{"String", kSpace}}}, {"content", " "}},
              {{"type", "ByteFallback"}},
              {{"type", "Fuse"}},
              {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
          {"model",
           {{"type", "BPE"},
            {"unk_token", "<unk>"},
            {"fuse_unk", true},
            {"byte_fallback", true},
            {"vocab", vocab},
            {"merges", json::array({json::array({kSpace, "h"}),
                                    json::array({std::string(kSpace) + "h", "i"})})}}}};
}

std::unique_ptr<Tokenizer> Load(const std::string& dir) {
  auto t = Tokenizer::LoadFromDir(dir);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? std::move(*t) : nullptr;
}

std::vector<int32_t> Enc(const Tokenizer& t, std::string_view text, bool special = true) {
  auto ids = t.Encode(text, special);
  EXPECT_TRUE(ids.ok()) << ids.status().ToString();
  return ids.ok() ? *ids : std::vector<int32_t>{};
}

TEST(TokenizerTest, ByteLevelEncodeDecode) {
  auto t = Load(WriteDir(ByteLevelSpec()));
  ASSERT_NE(t, nullptr);
  EXPECT_THAT(Enc(*t, "hello world"), ElementsAre(259, 264, 300));
  EXPECT_THAT(Enc(*t, "hello world", false), ElementsAre(259, 264));
  // é = C3 A9 has no merge: two byte tokens. Added tokens are cut out before the model.
  std::vector<int32_t> ids = Enc(*t, "hello<|end|>\xC3\xA9<tool>", false);
  EXPECT_THAT(ids, ElementsAre(259, 300, 0xC3, 0xA9, 301));
  EXPECT_EQ(t->Decode(ids), "hello<|end|>\xC3\xA9<tool>");
  EXPECT_EQ(t->Decode(ids, /*skip_special_tokens=*/true), "hello\xC3\xA9<tool>");
  EXPECT_EQ(t->Decode(std::vector<int32_t>{}), "");
}

TEST(TokenizerTest, VocabularyAccessors) {
  auto t = Load(WriteDir(ByteLevelSpec()));
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->vocab_size(), 302);
  EXPECT_EQ(t->TokenToId("hello"), 259);
  EXPECT_EQ(t->TokenToId("<|end|>"), 300);
  EXPECT_EQ(t->TokenToId("nope"), std::nullopt);
  EXPECT_EQ(t->IdToToken(259), "hello");
  EXPECT_EQ(t->IdToToken(301), "<tool>");
  EXPECT_EQ(t->IdToToken(299), "");  // a hole in the id space
  EXPECT_EQ(t->IdToToken(-1), "");
  EXPECT_TRUE(t->IsSpecial(300));
  EXPECT_FALSE(t->IsSpecial(301));
  EXPECT_FALSE(t->IsSpecial(259));
  EXPECT_EQ(t->bos_token(), "");
  EXPECT_EQ(t->bos_token_id(), std::nullopt);
  EXPECT_TRUE(t->tokenizer_config().is_object());
  EXPECT_TRUE(t->tokenizer_config().empty());
}

TEST(TokenizerTest, DecodeSkipsIdsOutOfRange) {
  auto t = Load(WriteDir(ByteLevelSpec()));
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->Decode(std::vector<int32_t>{-5, 259, 299, 1 << 30, 264}), "hello world");
}

TEST(TokenizerTest, InvalidUtf8IsRejected) {
  auto t = Load(WriteDir(ByteLevelSpec()));
  ASSERT_NE(t, nullptr);
  auto ids = t->Encode("ok\xFF");
  ASSERT_FALSE(ids.ok());
  EXPECT_EQ(ids.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(ids.status().message(), HasSubstr("offset 2"));
}

TEST(TokenizerTest, MergeRanksDecideTheOrder) {
  json spec = {{"model",
                {{"type", "BPE"},
                 {"vocab", {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}}},
                 {"merges", {"b c", "a b"}}}}};
  auto t = Load(WriteDir(spec));
  ASSERT_NE(t, nullptr);
  EXPECT_THAT(Enc(*t, "abc"), ElementsAre(0, 4));
  spec["model"]["merges"] = {"a b", "b c"};
  t = Load(WriteDir(spec));
  ASSERT_NE(t, nullptr);
  EXPECT_THAT(Enc(*t, "abc"), ElementsAre(3, 2));
  // Characters outside the vocabulary, with no unk token and no byte fallback, are dropped (and
  // their neighbours then merge, as in HF).
  EXPECT_THAT(Enc(*t, "axb"), ElementsAre(3));
}

TEST(TokenizerTest, IgnoreMergesTakesWholeWordsFromTheVocabulary) {
  json spec = {{"model",
                {{"type", "BPE"},
                 {"ignore_merges", true},
                 {"vocab", {{"a", 0}, {"b", 1}, {"c", 2}, {"bc", 3}, {"abc", 4}}},
                 {"merges", {"b c"}}}}};
  auto t = Load(WriteDir(spec));
  ASSERT_NE(t, nullptr);
  EXPECT_THAT(Enc(*t, "abc"), ElementsAre(4));
  EXPECT_THAT(Enc(*t, "abcbc"), ElementsAre(0, 3, 3));
}

TEST(TokenizerTest, Llama2StyleByteFallbackAndTemplate) {
  auto t = Load(WriteDir(Llama2Spec()));
  ASSERT_NE(t, nullptr);
  std::vector<int32_t> ids = Enc(*t, "hi \xC3\xA9");
  EXPECT_THAT(ids, ElementsAre(1, 263, 259, 3 + 0xC3, 3 + 0xA9));
  EXPECT_EQ(t->Decode(ids), "<s> hi \xC3\xA9");
  EXPECT_EQ(t->Decode(ids, true), "hi \xC3\xA9");
  EXPECT_THAT(Enc(*t, "hi", false), ElementsAre(263));
}

TEST(TokenizerTest, UnknownCharactersBecomeOneFusedUnk) {
  json spec = Llama2Spec();
  spec["model"]["byte_fallback"] = false;
  auto t = Load(WriteDir(spec));
  ASSERT_NE(t, nullptr);
  EXPECT_THAT(Enc(*t, "hi\xC3\xA9\xC3\xA9", false), ElementsAre(263, 0));
}

TEST(TokenizerTest, LlamaTokenizerConfigAddsBosAsTransformersDoes) {
  json spec = ByteLevelSpec();
  spec["added_tokens"].push_back(
      {{"id", 302}, {"content", "<s>"}, {"special", true}, {"normalized", false}});
  json config = {{"tokenizer_class", "LlamaTokenizerFast"},
                 {"add_bos_token", true},
                 {"bos_token", {{"__type", "AddedToken"}, {"content", "<s>"}}},
                 {"eos_token", "<|end|>"},
                 {"clean_up_tokenization_spaces", false}};
  auto t = Load(WriteDir(spec, config));
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->bos_token(), "<s>");
  EXPECT_EQ(t->bos_token_id(), 302);
  EXPECT_EQ(t->eos_token(), "<|end|>");
  EXPECT_EQ(t->eos_token_id(), 300);
  EXPECT_EQ(t->tokenizer_config()["tokenizer_class"], "LlamaTokenizerFast");
  // The config's template replaces tokenizer.json's: BOS first, no <|end|> at the end.
  EXPECT_THAT(Enc(*t, "hello"), ElementsAre(302, 259));
  EXPECT_THAT(Enc(*t, "hello", false), ElementsAre(259));

  config["add_bos_token"] = false;
  config["add_eos_token"] = true;
  t = Load(WriteDir(spec, config));
  ASSERT_NE(t, nullptr);
  EXPECT_THAT(Enc(*t, "hello"), ElementsAre(259, 300));

  // Other tokenizer classes keep tokenizer.json's post-processor.
  config["tokenizer_class"] = "Qwen2Tokenizer";
  t = Load(WriteDir(spec, config));
  ASSERT_NE(t, nullptr);
  EXPECT_THAT(Enc(*t, "hello"), ElementsAre(259, 300));
}

TEST(TokenizerTest, CleanUpTokenizationSpacesFollowsTheConfig) {
  json spec = ByteLevelSpec();
  auto plain = Load(WriteDir(spec));
  auto clean = Load(WriteDir(spec, json{{"clean_up_tokenization_spaces", true}}));
  ASSERT_NE(plain, nullptr);
  ASSERT_NE(clean, nullptr);
  std::vector<int32_t> ids = Enc(*plain, "hello . it 's", false);
  EXPECT_EQ(plain->Decode(ids), "hello . it 's");
  EXPECT_EQ(clean->Decode(ids), "hello. it's");
}

TEST(TokenizerLoadTest, MissingFileNamesIt) {
  auto t = Tokenizer::LoadFromDir("/nonexistent/strata/dir");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(t.status().message(), HasSubstr("/nonexistent/strata/dir/tokenizer.json"));
}

TEST(TokenizerLoadTest, CorruptFilesAreDataLoss) {
  auto t = Tokenizer::LoadFromDir(WriteDir(std::string("{\"model\": {\"vocab\": ")));
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kDataLoss);
  EXPECT_THAT(t.status().message(), HasSubstr("tokenizer.json"));

  std::string bad_config = "[1, 2";
  t = Tokenizer::LoadFromDir(WriteDir(ByteLevelSpec().dump(), &bad_config));
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kDataLoss);
  EXPECT_THAT(t.status().message(), HasSubstr("tokenizer_config.json"));
}

TEST(TokenizerLoadTest, UnsupportedComponentsNameFileAndComponent) {
  json spec = ByteLevelSpec();
  spec["model"]["type"] = "WordPiece";
  auto t = Tokenizer::LoadFromDir(WriteDir(spec));
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kUnimplemented);
  EXPECT_THAT(t.status().message(), HasSubstr("tokenizer.json"));
  EXPECT_THAT(t.status().message(), HasSubstr("WordPiece"));

  spec = ByteLevelSpec();
  spec["decoder"] = {{"type", "CTC"}};
  t = Tokenizer::LoadFromDir(WriteDir(spec));
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(), HasSubstr("CTC"));
}

TEST(TokenizerLoadTest, MalformedComponentsAreInvalidArgument) {
  json spec = ByteLevelSpec();
  spec["model"]["merges"].push_back("zz qq");
  auto t = Tokenizer::LoadFromDir(WriteDir(spec));
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(t.status().message(), HasSubstr("merge"));

  spec = ByteLevelSpec();
  spec["pre_tokenizer"]["add_prefix_space"] = "yes";  // wrong JSON type
  t = Tokenizer::LoadFromDir(WriteDir(spec));
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);

  spec = ByteLevelSpec();
  spec["added_tokens"][0].erase("id");
  t = Tokenizer::LoadFromDir(WriteDir(spec));
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(), HasSubstr("added_tokens[0]"));
}

TEST(IncrementalDetokenizerTest, HoldsSplitCharactersUntilComplete) {
  auto t = Load(WriteDir(ByteLevelSpec()));
  ASSERT_NE(t, nullptr);
  IncrementalDetokenizer stream(*t, /*skip_special_tokens=*/false);
  EXPECT_EQ(stream.Push(259), "hello");
  EXPECT_EQ(stream.Push(0xC3), "");
  EXPECT_EQ(stream.Push(0xA9), "\xC3\xA9");
  EXPECT_EQ(stream.Push(300), "<|end|>");
  EXPECT_EQ(stream.Push(264), " world");
  EXPECT_EQ(stream.Flush(), "");

  IncrementalDetokenizer skipping(*t, /*skip_special_tokens=*/true);
  EXPECT_EQ(skipping.Push(300), "");
  EXPECT_EQ(skipping.Push(259), "hello");
  // An incomplete character left at the end comes out of Flush as U+FFFD.
  EXPECT_EQ(skipping.Push(0xE4), "");
  EXPECT_EQ(skipping.Flush(), "\xEF\xBF\xBD");
}

TEST(IncrementalDetokenizerTest, FourByteEmojiOverFourTokens) {
  auto t = Load(WriteDir(ByteLevelSpec()));
  ASSERT_NE(t, nullptr);
  IncrementalDetokenizer stream(*t, false);
  const std::string emoji = "\xF0\x9F\x98\x80";
  std::string out;
  for (size_t i = 0; i < emoji.size(); ++i) {
    std::string piece = stream.Push(static_cast<uint8_t>(emoji[i]));
    if (i + 1 < emoji.size()) EXPECT_EQ(piece, "") << "byte " << i;
    out += piece;
  }
  EXPECT_EQ(out, emoji);
}

TEST(IncrementalDetokenizerTest, MetaspaceSpacesComeOutRight) {
  auto t = Load(WriteDir(Llama2Spec()));
  ASSERT_NE(t, nullptr);
  std::vector<int32_t> ids = Enc(*t, "hi hi \xC3\xA9", false);
  IncrementalDetokenizer stream(*t, true);
  std::string out;
  for (int32_t id : ids) out += stream.Push(id);
  out += stream.Flush();
  EXPECT_EQ(out, t->Decode(ids, true));
  EXPECT_EQ(out, "hi hi \xC3\xA9");
}

TEST(TokenizerTest, ConcurrentEncodesAgree) {
  auto t = Load(WriteDir(ByteLevelSpec()));
  ASSERT_NE(t, nullptr);
  const std::vector<std::string> texts = {"hello world", "world hello hello", "\xC3\xA9 hello",
                                          "helloworld<|end|>hello"};
  std::vector<std::vector<int32_t>> expected;
  for (const auto& text : texts) expected.push_back(Enc(*t, text));
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int th = 0; th < 4; ++th) {
    threads.emplace_back([&, th] {
      for (int i = 0; i < 500; ++i) {
        size_t k = static_cast<size_t>(i + th) % texts.size();
        auto ids = t->Encode(texts[k]);
        if (!ids.ok() || *ids != expected[k]) ++mismatches;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

}  // namespace
}  // namespace strata::model
