// Prompts of an exact token count, made from random tokens as vLLM's random dataset makes them:
// sample token ids, decode them to text, re-encode the text and fix the ids up (cut the excess or
// add more random ids) until the text encodes to exactly the requested count.
//
// TokenCodec is the slice of a tokenizer this needs; LoadTokenCodec() wraps the model's real
// tokenizer (model::Tokenizer, from DIR/tokenizer.json). Counts never include special tokens
// (no BOS; a server's chat template adds its own on top).
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace strata::bench {

// Thread-compatible: const methods may be called concurrently if the implementation allows.
class TokenCodec {
 public:
  virtual ~TokenCodec() = default;
  // Ids of `text` without special tokens. Fails only on invalid UTF-8.
  virtual StatusOr<std::vector<int32_t>> Encode(std::string_view text) const = 0;
  virtual std::string Decode(std::span<const int32_t> ids) const = 0;
  virtual int32_t vocab_size() const = 0;
  virtual bool IsSpecial(int32_t id) const = 0;
  // A name for reports (the tokenizer directory).
  virtual std::string name() const = 0;
};

// The model's tokenizer from DIR (tokenizer.json, tokenizer_config.json).
StatusOr<std::unique_ptr<TokenCodec>> LoadTokenCodec(const std::string& dir);

// Not thread-safe (it caches which token ids are usable).
class PromptMaker {
 public:
  explicit PromptMaker(const TokenCodec& codec) : codec_(codec) {}

  // Text T such that `prefix + T` encodes to exactly prefix_tokens + num_tokens ids, where
  // prefix_tokens is what `prefix` alone encodes to (pass "" and 0 for a standalone prompt).
  // `seed_ids`, when given, are the starting ids instead of random ones (truncated or extended).
  // Deterministic for a given rng state. FailedPrecondition when no exact text is found
  // (practically never: it restarts from fresh random ids up to 20 times).
  StatusOr<std::string> Make(std::string_view prefix, int prefix_tokens, int num_tokens,
                             std::mt19937_64& rng, std::span<const int32_t> seed_ids = {});

  // `count` random ids of ordinary tokens: not special, and decoding to valid text on their own.
  std::vector<int32_t> RandomIds(int count, std::mt19937_64& rng);

 private:
  bool Usable(int32_t id);

  const TokenCodec& codec_;
  std::vector<int8_t> usable_;  // per id: 0 unknown, 1 usable, -1 not
};

}  // namespace strata::bench
