// Hugging Face tokenizer.json: encode text to token ids and decode them back, giving the same ids
// as the reference implementations (tokenizers / transformers.js) for the BPE tokenizers of
// DeepSeek-V3, Qwen3 and Llama 3 (byte-level or not).
//
// Pipeline of Encode: added tokens are split out first (those with normalized=false on the raw
// text, then normalized=true ones on the normalized text), the rest is normalized, pre-tokenized
// and run through the BPE model; the post-processor adds special tokens when asked.
//
// Special tokens with add_special_tokens=true: what the post_processor of tokenizer.json adds,
// except that a tokenizer_config.json naming a Llama tokenizer class (LlamaTokenizer[Fast],
// CodeLlamaTokenizer[Fast], GemmaTokenizer[Fast]) gets transformers' own template from its
// add_bos_token (default true) / add_eos_token (default false), as transformers does on load.
// So DeepSeek-V3 gets its BOS, as with transformers' AutoTokenizer (transformers.js ignores
// add_bos_token and adds none).
//
// Thread-safety: a loaded Tokenizer is immutable and may be used from many threads at once
// (its BPE cache is internally synchronized). An IncrementalDetokenizer belongs to one stream
// and one thread at a time; the Tokenizer must outlive it.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace strata::model {

namespace tok {
class AddedTokenMatcher;
class BpeModel;
class FlatStringIndex;
class Decoder;
class Normalizer;
class PostProcessor;
class PreTokenizer;
struct AddedToken;
struct ParsedTokenizerJson;
}  // namespace tok

class Tokenizer {
 public:
  ~Tokenizer();

  // Loads DIR/tokenizer.json and, when present, DIR/tokenizer_config.json. Errors name the file
  // and the component: NotFound (no tokenizer.json), DataLoss (unreadable or invalid JSON),
  // InvalidArgument (a malformed component), Unimplemented (a component type not supported).
  static StatusOr<std::unique_ptr<Tokenizer>> LoadFromDir(const std::string& dir);

  // Token ids of `text`, with the default special tokens when add_special_tokens is true.
  // InvalidArgument (naming the byte offset) when `text` is not valid UTF-8; never fails
  // otherwise.
  StatusOr<std::vector<int32_t>> Encode(std::string_view text,
                                        bool add_special_tokens = true) const;

  // Text of `ids`, as transformers' decode gives it: ids out of range are skipped, special
  // tokens are dropped when asked, and tokenizer_config.json's clean_up_tokenization_spaces
  // (default false) is applied. Invalid UTF-8 produced by byte tokens becomes U+FFFD.
  std::string Decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  // Max id + 1, added tokens included.
  int32_t vocab_size() const { return vocab_size_; }
  // Added tokens first, then the model's vocabulary.
  std::optional<int32_t> TokenToId(std::string_view token) const;
  // The token string of `id` ("" when there is none).
  std::string IdToToken(int32_t id) const;
  // True for added tokens marked special.
  bool IsSpecial(int32_t id) const;

  std::optional<int32_t> bos_token_id() const { return bos_token_id_; }
  std::optional<int32_t> eos_token_id() const { return eos_token_id_; }
  // From tokenizer_config.json (a string or an AddedToken object's content); "" when absent.
  const std::string& bos_token() const { return bos_token_; }
  const std::string& eos_token() const { return eos_token_; }
  // The parsed tokenizer_config.json ({} when absent).
  const nlohmann::json& tokenizer_config() const { return config_; }

 private:
  friend class IncrementalDetokenizer;
  Tokenizer();
  Status Init(tok::ParsedTokenizerJson& parsed);
  // Decode without the clean-up of tokenization spaces (what streaming uses).
  std::string DecodeRaw(std::span<const int32_t> ids, bool skip_special_tokens) const;
  const tok::AddedToken* FindAdded(int32_t id) const;
  Status EncodePlain(std::string_view text, bool at_input_start, std::vector<int32_t>& ids) const;

  std::unique_ptr<tok::Normalizer> normalizer_;
  std::unique_ptr<tok::PreTokenizer> pre_tokenizer_;
  std::unique_ptr<tok::BpeModel> model_;
  std::unique_ptr<tok::PostProcessor> post_processor_;
  std::unique_ptr<tok::Decoder> decoder_;
  std::vector<tok::AddedToken> added_tokens_;
  std::vector<int32_t> added_index_by_id_;                  // id -> index into added_tokens_, or -1
  std::unique_ptr<tok::FlatStringIndex> added_by_content_;  // content -> id
  std::unique_ptr<tok::AddedTokenMatcher> raw_matcher_;
  std::unique_ptr<tok::AddedTokenMatcher> normalized_matcher_;
  nlohmann::json config_ = nlohmann::json::object();
  bool clean_up_spaces_ = false;
  int32_t vocab_size_ = 0;
  std::string bos_token_, eos_token_;
  std::optional<int32_t> bos_token_id_, eos_token_id_;
};

// Streaming detokenization: push ids one at a time and get back only complete UTF-8 text. A
// character whose bytes span several tokens is emitted once, when its last byte arrives; text
// that depends on the following token (e.g. a Metaspace leading space) waits for it. The
// concatenation of all Push() results and Flush() equals Decode of all ids without the clean-up
// of tokenization spaces.
class IncrementalDetokenizer {
 public:
  IncrementalDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens);
  // New complete text after `id` (possibly "").
  std::string Push(int32_t id);
  // Whatever is still held back (an incomplete character becomes U+FFFD); resets the stream.
  std::string Flush();

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_tokens_;
  // As Hugging Face's DecodeStream: ids_ holds the ids of the last emitted chunk (context, whose
  // text is prefix_) followed by ids not emitted yet; ids_[0, prefix_index_) is dropped at the
  // next emission.
  std::vector<int32_t> ids_;
  std::string prefix_;
  size_t prefix_index_ = 0;
};

}  // namespace strata::model
