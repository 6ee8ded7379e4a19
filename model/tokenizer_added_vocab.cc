#include "model/tokenizer_added_vocab.h"

#include <algorithm>

#include "model/tokenizer_unicode.h"

namespace strata::model::tok {
namespace {

// Rust's char::is_alphanumeric() || '_', which is how HF defines a word character.
bool IsWordChar(char32_t cp) { return cp == '_' || IsLetter(cp) || IsNumeric(cp); }

size_t PrevCharStart(std::string_view text, size_t end) {
  size_t start = end - 1;
  while (start > 0 && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80) --start;
  return start;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(const std::vector<AddedToken>& tokens, bool normalized) {
  nodes_.emplace_back();
  for (const AddedToken& token : tokens) {
    if (token.normalized != normalized || token.content.empty()) continue;
    int32_t index = static_cast<int32_t>(tokens_.size());
    tokens_.push_back(token);
    int32_t node = 0;
    for (char c : token.content) {
      uint8_t byte = static_cast<uint8_t>(c);
      int32_t next = Child(node, byte);
      if (next < 0) {
        next = static_cast<int32_t>(nodes_.size());
        nodes_.emplace_back();
        auto& children = nodes_[node].children;
        auto at = std::lower_bound(children.begin(), children.end(), std::make_pair(byte, 0));
        children.insert(at, {byte, next});
      }
      node = next;
    }
    // A later duplicate of the same content wins, as in a map keyed by content.
    nodes_[node].token = index;
    first_byte_[static_cast<uint8_t>(token.content[0])] = true;
  }
}

int32_t AddedTokenMatcher::Child(int32_t node, uint8_t byte) const {
  const auto& children = nodes_[node].children;
  auto at = std::lower_bound(children.begin(), children.end(), std::make_pair(byte, 0));
  if (at == children.end() || at->first != byte) return -1;
  return at->second;
}

void AddedTokenMatcher::Split(std::string_view text, std::vector<TextSpan>& out) const {
  size_t plain_begin = 0;  // start of the pending plain-text span
  size_t pos = 0;
  const size_t n = text.size();
  while (pos < n) {
    if (!first_byte_[static_cast<uint8_t>(text[pos])]) {
      ++pos;
      continue;
    }
    // Longest token starting at pos.
    int32_t node = 0, best = -1;
    size_t best_end = 0;
    for (size_t i = pos; i < n; ++i) {
      node = Child(node, static_cast<uint8_t>(text[i]));
      if (node < 0) break;
      if (nodes_[node].token >= 0) {
        best = nodes_[node].token;
        best_end = i + 1;
      }
    }
    if (best < 0) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[best];
    size_t begin = pos, end = best_end;
    if (token.single_word) {
      bool left_ok = begin == 0 || [&] {
        size_t p = PrevCharStart(text, begin);
        return !IsWordChar(NextCodePoint(text, p));
      }();
      bool right_ok = end == n || [&] {
        size_t p = end;
        return !IsWordChar(NextCodePoint(text, p));
      }();
      if (!left_ok || !right_ok) {
        pos = best_end;  // as HF's non-overlapping match iterator, which skips the rejected match
        continue;
      }
    }
    if (token.lstrip) {
      while (begin > plain_begin) {
        size_t p = PrevCharStart(text, begin);
        size_t q = p;
        if (!IsWhitespace(NextCodePoint(text, q))) break;
        begin = p;
      }
    }
    if (token.rstrip) {
      while (end < n) {
        size_t q = end;
        if (!IsWhitespace(NextCodePoint(text, q))) break;
        end = q;
      }
    }
    if (begin > plain_begin) out.push_back({plain_begin, begin, -1});
    out.push_back({begin, end, token.id});
    pos = plain_begin = end;
  }
  if (plain_begin < n || n == 0) out.push_back({plain_begin, n, -1});
}

}  // namespace strata::model::tok
