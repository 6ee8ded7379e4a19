// Turns one choice's generated tokens into the text a client sees: incremental
// detokenization, stop strings (never sent to the client, even when one spans several tokens
// while streaming: text that could be the start of a stop string is held back until it is
// known not to be), logprobs as text and completions' text_offset. Not thread-safe: one per
// choice, fed in event order.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "decode/generation.h"
#include "server/openai_protocol.h"
#include "server/text_codec.h"

namespace strata::server {

class OutputProcessor {
 public:
  // `text_offset_base`: where the generated text starts in the choice's text (echo).
  OutputProcessor(int index, const TextCodec& codec, std::vector<std::string> stop,
                  bool want_logprobs, int text_offset_base = 0);

  // Feeds one event's tokens. Returns the delta that is safe to show now; its `finish` is set
  // when the choice ended (by a stop string, or by the event's own finish reason). Tokens
  // after a stop string are dropped. Once finished, further events return an empty delta.
  ChoiceOutput Push(const std::vector<decode::GeneratedToken>& tokens, decode::FinishReason finish);

  // The echoed prompt's part of the logprobs (completions' echo with logprobs): one entry per
  // prompt token, the first without a logprob, entry i + 1 from `logprobs[i]` (the event's
  // prompt_logprobs); text_offsets count from the start of the echoed text. Call once, before
  // the first Push() output is sent.
  ChoiceOutput PromptLogprobs(std::span<const int32_t> prompt,
                              const std::vector<decode::GeneratedToken>& logprobs) const;

  bool finished() const { return finished_; }
  bool stopped_by_string() const { return stopped_by_string_; }
  // Tokens accepted so far (the ones up to and including a stop string's last token).
  int num_tokens() const { return num_tokens_; }

 private:
  TokenLogprobText LogprobText(int32_t token_id, std::optional<float> logprob,
                               const std::vector<decode::TokenLogprob>& top) const;
  // Moves text that can no longer start a stop string from pending_ to `out`.
  void Release(std::string* out, bool all);

  int index_;
  const TextCodec& codec_;
  std::unique_ptr<Detokenizer> detok_;
  std::vector<std::string> stop_;
  bool want_logprobs_;
  int text_offset_base_ = 0;
  int text_len_ = 0;  // bytes of text produced so far (emitted + pending), from the base
  std::string pending_;
  int num_tokens_ = 0;
  bool finished_ = false;
  bool stopped_by_string_ = false;
};

// OpenAI's display form of raw token bytes: the bytes themselves when they are valid UTF-8,
// else each byte of an invalid sequence written as "\xNN".
std::string TokenDisplayText(const std::string& bytes);

}  // namespace strata::server
