// What the server needs from a tokenizer and chat template: text -> token ids for prompts,
// token ids -> text for outputs (incrementally, whole UTF-8 characters only), and the raw
// bytes of single tokens for logprobs. ModelTextCodec (model_text_codec.h) implements it with
// the model's tokenizer.json and chat template; protocol tests implement it with a small
// scripted vocabulary. Implementations are immutable after construction and thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace strata::server {

// Turns a stream of generated token ids into text. Not thread-safe (one per choice).
class Detokenizer {
 public:
  virtual ~Detokenizer() = default;
  // Returns the text that became complete with this token (possibly empty: a partial UTF-8
  // character is held until it completes). Special tokens (EOS, ...) produce no text.
  virtual std::string Push(int32_t token_id) = 0;
  // Text still held at the end (an incomplete character becomes U+FFFD).
  virtual std::string Flush() = 0;
};

class TextCodec {
 public:
  virtual ~TextCodec() = default;
  virtual StatusOr<std::vector<int32_t>> Encode(std::string_view text,
                                                bool add_special_tokens) const = 0;
  // Renders chat messages (normalized: role + string content) to the prompt text.
  // `tools` may be null. Errors: kInvalidArgument when the template rejects the messages.
  virtual StatusOr<std::string> RenderChat(const nlohmann::json& messages,
                                           const nlohmann::json& tools, bool add_generation_prompt,
                                           const nlohmann::json& extra_context) const = 0;
  // Whether Encode() of a rendered chat prompt should add the BOS token (false when the
  // template already writes it).
  virtual bool chat_adds_special_tokens() const = 0;
  virtual std::unique_ptr<Detokenizer> NewDetokenizer() const = 0;
  // The raw bytes one token decodes to on its own (for logprobs).
  virtual std::string TokenBytes(int32_t token_id) const = 0;
  // Decodes a whole id sequence (for echo of token prompts).
  virtual std::string Decode(const std::vector<int32_t>& ids) const = 0;
  virtual int vocab_size() const = 0;
};

}  // namespace strata::server
