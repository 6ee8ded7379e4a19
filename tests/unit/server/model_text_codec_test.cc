// ModelTextCodec over the real DeepSeek-V3 tokenizer files.
#include "server/model_text_codec.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "server/output_processor.h"

namespace strata::server {
namespace {

std::string TokenizerDir() {
  const char* assets = std::getenv("STRATA_TEST_ASSETS");
  return assets ? std::string(assets) + "/tokenizers/deepseek_v3" : "";
}

class ModelTextCodecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (TokenizerDir().empty() || !std::filesystem::exists(TokenizerDir() + "/tokenizer.json")) {
      GTEST_SKIP() << "test assets missing (STRATA_TEST_ASSETS): run scripts/fetch-test-assets";
    }
    auto codec = ModelTextCodec::Load(TokenizerDir());
    ASSERT_TRUE(codec.ok()) << codec.status().ToString();
    codec_ = std::move(*codec);
  }
  std::unique_ptr<ModelTextCodec> codec_;
};

TEST_F(ModelTextCodecTest, ChatPromptAndRoundTrip) {
  nlohmann::json messages = {{{"role", "user"}, {"content", "Hello"}}};
  auto text = codec_->RenderChat(messages, nullptr, true, nlohmann::json::object());
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  EXPECT_NE(text->find("Hello"), std::string::npos);
  auto ids = codec_->Encode(*text, codec_->chat_adds_special_tokens());
  ASSERT_TRUE(ids.ok());
  // The template writes BOS itself; encoding must not add a second one.
  auto bos = codec_->tokenizer().bos_token_id();
  ASSERT_TRUE(bos.has_value());
  EXPECT_EQ((*ids)[0], *bos);
  EXPECT_NE((*ids)[1], *bos);
}

TEST_F(ModelTextCodecTest, TokenBytesAndStreamingTextAgree) {
  std::string text = "Grüße, 世界! naïve café";
  auto ids = codec_->Encode(text, false);
  ASSERT_TRUE(ids.ok());
  std::string from_bytes, streamed;
  auto detok = codec_->NewDetokenizer();
  for (int32_t id : *ids) {
    from_bytes += codec_->TokenBytes(id);
    streamed += detok->Push(id);
  }
  streamed += detok->Flush();
  EXPECT_EQ(from_bytes, text);  // raw bytes of byte-level tokens concatenate to the text
  EXPECT_EQ(streamed, text);
  EXPECT_EQ(codec_->Decode(*ids), text);
}

TEST_F(ModelTextCodecTest, EosProducesNoText) {
  auto eos = codec_->tokenizer().eos_token_id();
  ASSERT_TRUE(eos.has_value());
  auto ids = codec_->Encode("Hi", false);
  ASSERT_TRUE(ids.ok());
  OutputProcessor p(0, *codec_, {}, true);
  std::vector<decode::GeneratedToken> toks;
  for (int32_t id : *ids) toks.push_back({id, -1.0f, {}});
  toks.push_back({*eos, -0.5f, {}});
  auto d = p.Push(toks, decode::FinishReason::kStop);
  EXPECT_EQ(d.text, "Hi");
  ASSERT_EQ(d.logprobs.size(), ids->size() + 1);
  EXPECT_EQ(d.logprobs.back().text, codec_->tokenizer().eos_token());  // shown in logprobs
}

}  // namespace
}  // namespace strata::server
