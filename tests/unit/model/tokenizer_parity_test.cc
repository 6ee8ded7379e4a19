// Parity with the reference tokenizer (transformers.js, @lenml/tokenizers) on the real DeepSeek-V3,
// Qwen3 and Llama 3 tokenizer files: every id of every corpus text, decode, and streaming.
// The corpus is testdata/tokenizer_corpus.json (hand-written hard cases) plus seeded random mixes
// of scripts, emoji, whitespace, digits and special tokens. Node runs once for all of it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "model/tokenizer.h"
#include "model/tokenizer_unicode.h"

namespace strata::model {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

const char* const kModels[] = {"deepseek_v3", "qwen3", "llama3"};

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::vector<std::string> GeneratedTexts() {
  std::vector<std::string> texts;
  for (int n : {1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 64, 100, 257}) {
    texts.push_back(std::string(n, ' '));
    texts.push_back("x" + std::string(n, ' ') + "y");
    texts.push_back(std::string(n, ' ') + "\n" + std::string(n % 5, ' ') + "z");
    texts.push_back(std::string(n, '\n'));
    texts.push_back("a" + std::string(n, '\t') + "\n");
    texts.push_back(std::string(static_cast<size_t>(n % 20 + 1), '9') + " " +
                    std::string(static_cast<size_t>(n % 13 + 1), '1'));
  }
  // Random mixes of atoms that exercise every branch of the split regexes.
  const std::vector<std::string> atoms = {"a",
                                          "Z",
                                          "hello",
                                          " the",
                                          "Word",
                                          "'s",
                                          "'LL",
                                          "'t",
                                          "'re",
                                          " ",
                                          "  ",
                                          "\t",
                                          "\n",
                                          "\r\n",
                                          "\n\n",
                                          "0",
                                          "12",
                                          "345",
                                          "2024",
                                          ".",
                                          ",",
                                          "!?",
                                          "...",
                                          "(",
                                          ")",
                                          "{",
                                          "}",
                                          "\"",
                                          "'",
                                          "-",
                                          "_",
                                          "/",
                                          "\\",
                                          "#",
                                          "@",
                                          "$",
                                          "%",
                                          "*",
                                          "=",
                                          "+",
                                          "<",
                                          ">",
                                          "|",
                                          "~",
                                          "`",
                                          "^",
                                          "&",
                                          ";",
                                          ":",
                                          "\xC2\xA0",
                                          "\xE3\x80\x80",
                                          "\xE2\x80\x8B",
                                          "\xEF\xBB\xBF",
                                          "\xE4\xB8\xAD",
                                          "\xE6\x96\x87",
                                          "\xE6\x97\xA5\xE6\x9C\xAC",
                                          "\xE3\x81\x82",
                                          "\xE3\x82\xAB",
                                          "\xE3\x80\x82",
                                          "\xEF\xBC\x8C",
                                          "\xD8\xB9\xD8\xB1\xD8\xA8\xD9\x8A",
                                          "\xD9\xA3",
                                          "\xE0\xA4\xB9\xE0\xA4\xBF\xE0\xA4\x82",
                                          "\xE0\xA5\xA7",
                                          "\xD0\x9F\xD1\x80\xD0\xB8",
                                          "\xC3\xA9",
                                          "e\xCC\x81",
                                          "\xCC\x88",
                                          "\xF0\x9F\x98\x80",
                                          "\xF0\x9F\x91\x8D",
                                          "\xF0\x9F\x8F\xBD",
                                          "\xE2\x80\x8D",
                                          "\xEF\xB8\x8F",
                                          "\xE2\x9D\xA4",
                                          "\xF0\x9F\x87\xAF",
                                          "\xF0\x9F\x87\xB5",
                                          "\xF0\x9F\xA7\x91",
                                          "\xF0\xA0\x80\x80",
                                          "\xEF\xBC\xA1",
                                          "\xEF\xBC\x91",
                                          "\xE2\x85\xA0",
                                          "\xC2\xBD",
                                          "<|im_start|>",
                                          "<|im_end|>",
                                          "<|endoftext|>",
                                          "<|begin_of_text|>",
                                          "<|eot_id|>",
                                          "<\xEF\xBD\x9C"
                                          "begin\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
                                          "<\xEF\xBD\x9CUser\xEF\xBD\x9C>",
                                          "<\xEF\xBD\x9C"
                                          "Assistant\xEF\xBD\x9C>",
                                          "<|im_",
                                          "\xE2\x96\x81"};
  std::mt19937 rng(20240607);
  for (int i = 0; i < 300; ++i) {
    std::string text;
    int len = 1 + static_cast<int>(rng() % 40);
    for (int j = 0; j < len; ++j) text += atoms[rng() % atoms.size()];
    texts.push_back(std::move(text));
  }
  return texts;
}

// Random id sequences valid in all three vocabularies (< 128256), special ids included: decoding
// must agree on partial UTF-8 sequences, byte tokens next to added tokens, and skipping.
std::vector<std::vector<int32_t>> RandomIdLists() {
  std::mt19937 rng(99);
  std::vector<std::vector<int32_t>> lists;
  for (int i = 0; i < 300; ++i) {
    std::vector<int32_t> ids;
    int len = 1 + static_cast<int>(rng() % 12);
    for (int j = 0; j < len; ++j) {
      switch (rng() % 4) {
        case 0:
          ids.push_back(static_cast<int32_t>(rng() % 256));
          break;  // byte-ish tokens
        case 1:
          ids.push_back(static_cast<int32_t>(127990 + rng() % 266));
          break;  // specials
        default:
          ids.push_back(static_cast<int32_t>(rng() % 128256));
          break;
      }
    }
    lists.push_back(std::move(ids));
  }
  return lists;
}

class TokenizerParityTest : public ::testing::TestWithParam<const char*> {
 protected:
  static void SetUpTestSuite() {
    assets_ = Env("STRATA_TEST_ASSETS");
    if (assets_.empty() || !fs::exists(fs::path(assets_) / "tokenizers") ||
        !fs::exists(fs::path(assets_) / "node_modules" / "@lenml" / "tokenizers")) {
      skip_reason_ =
          "test assets missing at '" + assets_ + "' (run scripts/fetch-test-assets or make test)";
      return;
    }
    const fs::path source = Env("STRATA_SOURCE_DIR");
    std::ifstream corpus_in(source / "tests/unit/model/testdata/tokenizer_corpus.json");
    json corpus = json::parse(corpus_in, nullptr, false);
    if (!corpus.is_array()) {
      setup_error_ = "cannot read testdata/tokenizer_corpus.json under " + source.string();
      return;
    }
    for (const auto& t : corpus) texts_.push_back(t.get<std::string>());
    for (auto& t : GeneratedTexts()) texts_.push_back(std::move(t));

    const fs::path dir =
        fs::path(::testing::TempDir()) / ("tok_parity_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    const fs::path in_path = dir / "in.json", out_path = dir / "out.json";
    id_lists_ = RandomIdLists();
    std::ofstream(in_path) << json{
        {"models", kModels},
        {"texts", texts_},
        {"id_lists", id_lists_}}.dump();
    std::string command = "node '" + (source / "tests/unit/model/tokenizer_reference.js").string() +
                          "' '" + assets_ + "' '" + in_path.string() + "' '" + out_path.string() +
                          "' 2>&1";
    int rc = std::system(command.c_str());
    std::ifstream out_in(out_path);
    reference_ = json::parse(out_in, nullptr, false);
    if (rc != 0 || !reference_.is_object()) {
      setup_error_ = "reference run failed (rc " + std::to_string(rc) + "): " + command;
    }
  }

  void SetUp() override {
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
    auto& cached = tokenizers_[GetParam()];  // loaded once per model for the whole suite
    if (!cached) {
      auto loaded = Tokenizer::LoadFromDir(assets_ + "/tokenizers/" + GetParam());
      ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
      cached = std::move(*loaded);
    }
    tokenizer_ = cached.get();
    ref_ = &reference_[GetParam()];
    ASSERT_TRUE(ref_->is_object()) << "no reference output for " << GetParam();
  }

  static std::string Show(const std::string& text) { return json(text).dump(); }

  static inline std::string assets_, skip_reason_, setup_error_;
  static inline std::vector<std::string> texts_;
  static inline std::vector<std::vector<int32_t>> id_lists_;
  static inline json reference_;
  static inline std::map<std::string, std::unique_ptr<Tokenizer>> tokenizers_;
  const Tokenizer* tokenizer_ = nullptr;
  const json* ref_ = nullptr;
};

TEST_P(TokenizerParityTest, EncodeMatchesReferenceOnEveryText) {
  int mismatches = 0;
  for (size_t i = 0; i < texts_.size(); ++i) {
    auto ids = tokenizer_->Encode(texts_[i], /*add_special_tokens=*/false);
    ASSERT_TRUE(ids.ok()) << ids.status().ToString();
    std::vector<int32_t> want = (*ref_)["without_special"][i].get<std::vector<int32_t>>();
    if (*ids != want && ++mismatches <= 5) {
      ADD_FAILURE() << GetParam() << " text " << i << " " << Show(texts_[i]) << "\n  got  "
                    << json(*ids).dump() << "\n  want " << json(want).dump();
    }
  }
  EXPECT_EQ(mismatches, 0) << "of " << texts_.size() << " texts";
}

TEST_P(TokenizerParityTest, SpecialTokensMatchTransformers) {
  // transformers.js applies tokenizer.json's post_processor only; transformers (Python) gives a
  // Llama-class tokenizer_config.json's add_bos_token precedence, so BOS goes first there.
  const json& config = tokenizer_->tokenizer_config();
  std::string cls = config.value("tokenizer_class", std::string());
  bool llama_bos = (cls == "LlamaTokenizerFast" || cls == "LlamaTokenizer") &&
                   config.value("add_bos_token", true);
  int mismatches = 0;
  for (size_t i = 0; i < texts_.size(); ++i) {
    auto ids = tokenizer_->Encode(texts_[i], /*add_special_tokens=*/true);
    ASSERT_TRUE(ids.ok());
    std::vector<int32_t> want = (*ref_)["with_special"][i].get<std::vector<int32_t>>();
    if (llama_bos) {
      ASSERT_TRUE(tokenizer_->bos_token_id().has_value());
      want.insert(want.begin(), *tokenizer_->bos_token_id());
    }
    if (*ids != want && ++mismatches <= 5) {
      ADD_FAILURE() << GetParam() << " text " << i << " " << Show(texts_[i]) << "\n  got  "
                    << json(*ids).dump() << "\n  want " << json(want).dump();
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST_P(TokenizerParityTest, DecodeMatchesReferenceAndRoundTrips) {
  int mismatches = 0;
  for (size_t i = 0; i < texts_.size(); ++i) {
    std::vector<int32_t> ids = (*ref_)["without_special"][i].get<std::vector<int32_t>>();
    const std::string want = (*ref_)["decoded"][i].get<std::string>();
    const std::string want_skip = (*ref_)["decoded_skip_special"][i].get<std::string>();
    std::string got = tokenizer_->Decode(ids, false);
    std::string got_skip = tokenizer_->Decode(ids, true);
    if ((got != want || got_skip != want_skip) && ++mismatches <= 5) {
      ADD_FAILURE() << GetParam() << " text " << i << "\n  got  " << Show(got) << " / "
                    << Show(got_skip) << "\n  want " << Show(want) << " / " << Show(want_skip);
    }
    if (want == texts_[i]) {
      auto ours = tokenizer_->Encode(texts_[i], false);
      ASSERT_TRUE(ours.ok());
      EXPECT_EQ(tokenizer_->Decode(*ours), texts_[i]) << "round trip of " << Show(texts_[i]);
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST_P(TokenizerParityTest, DecodeOfRandomIdsMatchesReference) {
  int mismatches = 0;
  for (size_t i = 0; i < id_lists_.size(); ++i) {
    const std::string want = (*ref_)["id_lists_decoded"][i].get<std::string>();
    const std::string want_skip = (*ref_)["id_lists_decoded_skip_special"][i].get<std::string>();
    std::string got = tokenizer_->Decode(id_lists_[i], false);
    std::string got_skip = tokenizer_->Decode(id_lists_[i], true);
    if ((got != want || got_skip != want_skip) && ++mismatches <= 5) {
      ADD_FAILURE() << GetParam() << " ids " << json(id_lists_[i]).dump() << "\n  got  "
                    << Show(got) << " / " << Show(got_skip) << "\n  want " << Show(want) << " / "
                    << Show(want_skip);
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST_P(TokenizerParityTest, StreamingGivesBackTheTextInCompleteCharacters) {
  // Byte-level BPE is lossless, so the stream gives back each text as normalized (NFC for Qwen3).
  // Decode equals that too unless it cleans up tokenization spaces (Llama 3), which the stream
  // never does.
  const bool clean_up = tokenizer_->tokenizer_config().value("clean_up_tokenization_spaces", false);
  for (const std::string& text : texts_) {
    auto ids = tokenizer_->Encode(text, false);
    ASSERT_TRUE(ids.ok());
    const std::string want = clean_up ? text : tokenizer_->Decode(*ids);
    IncrementalDetokenizer stream(*tokenizer_, /*skip_special_tokens=*/false);
    std::string out;
    for (int32_t id : *ids) {
      std::string piece = stream.Push(id);
      ASSERT_EQ(tok::FindInvalidUtf8(piece), std::string::npos) << Show(text);
      out += piece;
    }
    out += stream.Flush();
    ASSERT_EQ(out, want);
  }
}

TEST_P(TokenizerParityTest, StreamingHoldsEmojiAndCjkSplitAcrossTokens) {
  const std::string text =
      "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7 "  // family ZWJ
      "\xF0\x9F\xA7\x91\xF0\x9F\x8F\xBF\xE2\x80\x8D\xF0\x9F\x92\xBB "              // technologist
      "\xF0\xAA\x9A\xA5\xE9\xBE\x98\xE9\xBD\x89 \xE3\x8A\xBF";                     // rare CJK
  auto ids = tokenizer_->Encode(text, false);
  ASSERT_TRUE(ids.ok());
  IncrementalDetokenizer stream(*tokenizer_, false);
  std::string out;
  int held = 0;
  for (int32_t id : *ids) {
    std::string piece = stream.Push(id);
    if (piece.empty()) ++held;
    EXPECT_EQ(piece.find("\xEF\xBF\xBD"), std::string::npos);
    out += piece;
  }
  out += stream.Flush();
  EXPECT_EQ(out, text);
  EXPECT_GT(held, 0) << "no character was split across tokens; the test text is too easy";
}

INSTANTIATE_TEST_SUITE_P(RealTokenizers, TokenizerParityTest, ::testing::ValuesIn(kModels),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
}  // namespace strata::model
