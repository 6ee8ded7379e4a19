#include "server/model_text_codec.h"

#include <array>

namespace strata::server {
namespace {

class TokenizerDetokenizer : public Detokenizer {
 public:
  explicit TokenizerDetokenizer(const model::Tokenizer& tokenizer)
      : detok_(tokenizer, /*skip_special_tokens=*/true) {}
  std::string Push(int32_t id) override { return detok_.Push(id); }
  std::string Flush() override { return detok_.Flush(); }

 private:
  model::IncrementalDetokenizer detok_;
};

// GPT-2's byte-level alphabet inverted: code point -> byte (-1 when not in the alphabet).
const std::array<int, 512>& ByteLevelInverse() {
  static const std::array<int, 512> table = [] {
    std::array<int, 512> t;
    t.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      int cp = printable ? b : 256 + n++;
      t[cp] = b;
    }
    return t;
  }();
  return table;
}

// The raw bytes of a byte-level BPE token string, or nullopt when it is not one.
std::optional<std::string> ByteLevelBytes(const std::string& token) {
  const auto& inv = ByteLevelInverse();
  std::string out;
  for (size_t i = 0; i < token.size();) {
    auto c = static_cast<unsigned char>(token[i]);
    int cp;
    if (c < 0x80) {
      cp = c;
      i += 1;
    } else if ((c >> 5) == 6 && i + 1 < token.size()) {
      cp = ((c & 0x1F) << 6) | (static_cast<unsigned char>(token[i + 1]) & 0x3F);
      i += 2;
    } else {
      return std::nullopt;
    }
    if (cp >= 512 || inv[cp] < 0) return std::nullopt;
    out += static_cast<char>(inv[cp]);
  }
  return out;
}

}  // namespace

StatusOr<std::unique_ptr<ModelTextCodec>> ModelTextCodec::Load(const std::string& dir) {
  auto codec = std::unique_ptr<ModelTextCodec>(new ModelTextCodec());
  STRATA_ASSIGN_OR_RETURN(codec->tokenizer_, model::Tokenizer::LoadFromDir(dir));
  auto tmpl = model::ChatTemplate::FromTokenizerConfig(codec->tokenizer_->tokenizer_config());
  if (tmpl.ok()) {
    codec->chat_template_.emplace(std::move(*tmpl));
  } else {
    codec->chat_template_error_ = tmpl.status().message();
  }
  return codec;
}

StatusOr<std::vector<int32_t>> ModelTextCodec::Encode(std::string_view text,
                                                      bool add_special_tokens) const {
  return tokenizer_->Encode(text, add_special_tokens);
}

StatusOr<std::string> ModelTextCodec::RenderChat(const nlohmann::json& messages,
                                                 const nlohmann::json& tools,
                                                 bool add_generation_prompt,
                                                 const nlohmann::json& extra_context) const {
  if (!chat_template_) {
    return InvalidArgumentError("this model has no usable chat template (" + chat_template_error_ +
                                "); use /v1/completions");
  }
  return chat_template_->Render(messages, add_generation_prompt, tools, extra_context);
}

std::unique_ptr<Detokenizer> ModelTextCodec::NewDetokenizer() const {
  return std::make_unique<TokenizerDetokenizer>(*tokenizer_);
}

std::string ModelTextCodec::TokenBytes(int32_t token_id) const {
  if (!tokenizer_->IsSpecial(token_id)) {
    if (auto bytes = ByteLevelBytes(tokenizer_->IdToToken(token_id))) return *bytes;
  }
  int32_t id = token_id;
  return tokenizer_->Decode(std::span<const int32_t>(&id, 1), /*skip_special_tokens=*/false);
}

std::string ModelTextCodec::Decode(const std::vector<int32_t>& ids) const {
  return tokenizer_->Decode(ids, /*skip_special_tokens=*/true);
}

}  // namespace strata::server
