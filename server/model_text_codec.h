// TextCodec over a model directory's tokenizer.json and tokenizer_config.json chat template.
// Chat prompts are encoded without adding special tokens (the template writes BOS itself, as
// vLLM and transformers' apply_chat_template do); completions prompts get the tokenizer's
// default special tokens. Output text skips special tokens (EOS never reaches the client).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "model/chat_template.h"
#include "model/tokenizer.h"
#include "server/text_codec.h"

namespace strata::server {

class ModelTextCodec : public TextCodec {
 public:
  // Errors from the tokenizer loader (kNotFound without tokenizer.json, ...). A model without a
  // chat template loads; its chat requests then fail with kInvalidArgument.
  static StatusOr<std::unique_ptr<ModelTextCodec>> Load(const std::string& dir);

  StatusOr<std::vector<int32_t>> Encode(std::string_view text,
                                        bool add_special_tokens) const override;
  StatusOr<std::string> RenderChat(const nlohmann::json& messages, const nlohmann::json& tools,
                                   bool add_generation_prompt,
                                   const nlohmann::json& extra_context) const override;
  bool chat_adds_special_tokens() const override { return false; }
  std::unique_ptr<Detokenizer> NewDetokenizer() const override;
  std::string TokenBytes(int32_t token_id) const override;
  std::string Decode(const std::vector<int32_t>& ids) const override;
  int vocab_size() const override { return tokenizer_->vocab_size(); }

  const model::Tokenizer& tokenizer() const { return *tokenizer_; }

 private:
  std::unique_ptr<model::Tokenizer> tokenizer_;
  std::optional<model::ChatTemplate> chat_template_;
  std::string chat_template_error_;
};

}  // namespace strata::server
