// Added tokens of tokenizer.json ("added_tokens"): found in the text before the model sees it,
// with Hugging Face tokenizers' rules (internal to model/). Tokens with normalized=false are
// matched on the raw text, those with normalized=true on the normalized text; leftmost match wins,
// and the longest at that position; single_word, lstrip and rstrip are honored.
// Immutable after construction; safe to use from many threads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace strata::model::tok {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
};

// A span of the text: an added token (id >= 0) or plain text (id == -1).
struct TextSpan {
  size_t begin;
  size_t end;
  int32_t id;
};

class AddedTokenMatcher {
 public:
  // Matches the tokens of `tokens` whose `normalized` flag equals `normalized`.
  AddedTokenMatcher(const std::vector<AddedToken>& tokens, bool normalized);

  bool empty() const { return nodes_.size() <= 1; }

  // Covers `text` with spans, in order. Whitespace swallowed by lstrip/rstrip belongs to the
  // token's span. Plain-text spans may be empty only when `text` is.
  void Split(std::string_view text, std::vector<TextSpan>& out) const;

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> children;  // sorted by byte
    int32_t token = -1;                                 // index into tokens_
  };
  int32_t Child(int32_t node, uint8_t byte) const;

  std::vector<AddedToken> tokens_;
  std::vector<Node> nodes_;
  bool first_byte_[256] = {};
};

}  // namespace strata::model::tok
