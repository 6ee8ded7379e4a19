#include "model/jinja_lexer.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "model/jinja_text.h"
#include "model/jinja_value.h"

namespace strata::model::jinja {
namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool IsDigitChar(char c) { return c >= '0' && c <= '9'; }
bool IsNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsNameChar(char c) { return IsNameStart(c) || IsDigitChar(c); }

// Whitespace as Python's str.isspace()/regex \s sees it, over the whole (UTF-8) text.
bool AllWhitespace(std::string_view text) {
  for (char32_t cp : DecodeUtf8(text)) {
    if (!IsPythonSpace(cp)) return false;
  }
  return true;
}

class Lexer {
 public:
  Lexer(std::string source, const LexerOptions& options)
      : src_(std::move(source)), options_(options) {
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i) {
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
    }
  }

  std::vector<Token> Run() {
    while (pos_ < src_.size()) LexRoot();
    Push(Token::Type::kEof, "", src_.size());
    return std::move(tokens_);
  }

 private:
  enum class TagKind { kVariable, kBlock, kComment, kRaw };

  [[noreturn]] void Fail(const std::string& message, size_t at) const {
    const auto [line, column] = Position(at);
    throw Error(message, line, column);
  }

  std::pair<int, int> Position(size_t at) const {
    auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), at);
    const size_t line_index = static_cast<size_t>(it - line_starts_.begin()) - 1;
    return {static_cast<int>(line_index) + 1, static_cast<int>(at - line_starts_[line_index]) + 1};
  }

  Token& Push(Token::Type type, std::string text, size_t at) {
    Token t;
    t.type = type;
    t.text = std::move(text);
    std::tie(t.line, t.column) = Position(at);
    tokens_.push_back(std::move(t));
    return tokens_.back();
  }

  // Skips whitespace as Python's regex \s sees it (str.isspace(), Unicode-aware).
  size_t SkipSpaces(size_t p) const {
    while (p < src_.size()) {
      if (IsSpace(src_[p])) {
        ++p;
        continue;
      }
      const auto b = static_cast<unsigned char>(src_[p]);
      if (b < 0x1C || (b > 0x1F && b < 0x80)) break;
      if (b < 0x80) {  // \x1c-\x1f
        ++p;
        continue;
      }
      const size_t len = (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : 4;
      const std::u32string cp = DecodeUtf8(std::string_view(src_).substr(p, len));
      if (cp.size() != 1 || !IsPythonSpace(cp[0])) break;
      p += len;
    }
    return p;
  }

  bool StartsWith(size_t at, std::string_view s) const {
    return src_.compare(at, s.size(), s) == 0;
  }

  // Returns the end of "{% raw %}" (with modifiers) starting at `at`, or npos.
  size_t MatchRawBegin(size_t at) const {
    size_t p = at + 2;
    if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ++p;
    p = SkipSpaces(p);
    if (!StartsWith(p, "raw")) return std::string::npos;
    p = SkipSpaces(p + 3);
    return MatchBlockEnd(p);
  }

  // Matches a block end ("+%}", "-%}\s*" or "%}\n?") at `p`; returns the position after it.
  size_t MatchBlockEnd(size_t p) const {
    if (StartsWith(p, "+%}")) return p + 3;
    if (StartsWith(p, "-%}")) return SkipSpaces(p + 3);
    if (StartsWith(p, "%}")) {
      p += 2;
      if (options_.trim_blocks && p < src_.size() && src_[p] == '\n') ++p;
      return p;
    }
    return std::string::npos;
  }

  // Emits `text` as data after applying the strip rules for a following tag.
  void EmitData(std::string_view text, size_t text_start, char modifier, bool lstrip_eligible) {
    std::string data(text);
    if (modifier == '-') {
      data = PyStrip(data, nullptr, false, true);
    } else if (modifier != '+' && options_.lstrip_blocks && lstrip_eligible) {
      const size_t nl = data.rfind('\n');
      const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
      if ((l_pos > 0 || line_starting_) && l_pos < data.size() &&
          AllWhitespace(std::string_view(data).substr(l_pos))) {
        data.resize(l_pos);
      }
    }
    if (!data.empty()) Push(Token::Type::kData, std::move(data), text_start);
  }

  void LexRoot() {
    size_t tag = pos_;
    TagKind kind = TagKind::kVariable;
    while (true) {
      tag = src_.find('{', tag);
      if (tag == std::string::npos || tag + 1 >= src_.size()) {
        tag = std::string::npos;
        break;
      }
      const char next = src_[tag + 1];
      if (next == '{' || next == '%' || next == '#') {
        kind = next == '{' ? TagKind::kVariable : next == '%' ? TagKind::kBlock : TagKind::kComment;
        break;
      }
      ++tag;
    }
    if (tag == std::string::npos) {
      EmitData(std::string_view(src_).substr(pos_), pos_, 0, false);
      pos_ = src_.size();
      return;
    }
    size_t raw_end = std::string::npos;
    if (kind == TagKind::kBlock) {
      raw_end = MatchRawBegin(tag);
      if (raw_end != std::string::npos) kind = TagKind::kRaw;
    }
    const char modifier = (tag + 2 < src_.size() && (src_[tag + 2] == '-' || src_[tag + 2] == '+'))
                              ? src_[tag + 2]
                              : 0;
    EmitData(std::string_view(src_).substr(pos_, tag - pos_), pos_, modifier,
             kind != TagKind::kVariable);
    switch (kind) {
      case TagKind::kComment:
        LexComment(tag);
        break;
      case TagKind::kRaw:
        LexRaw(tag, raw_end);
        break;
      case TagKind::kVariable:
      case TagKind::kBlock:
        LexTag(tag, kind, modifier);
        break;
    }
  }

  void LexComment(size_t tag) {
    size_t p = tag + 2;
    while (true) {
      const size_t end = src_.find("#}", p);
      if (end == std::string::npos) Fail("Missing end of comment tag", tag);
      size_t after = end + 2;
      if (end > tag + 2 && src_[end - 1] == '-') {
        after = SkipSpaces(after);
      } else if (end > tag + 2 && src_[end - 1] == '+') {
        // no trimming
      } else if (options_.trim_blocks && after < src_.size() && src_[after] == '\n') {
        ++after;
      }
      SetPos(after);
      return;
    }
  }

  void LexRaw(size_t tag, size_t body_start) {
    size_t p = body_start;
    while (true) {
      const size_t open = src_.find("{%", p);
      if (open == std::string::npos) Fail("Missing end of raw directive", tag);
      size_t q = open + 2;
      char modifier = 0;
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) modifier = src_[q++];
      q = SkipSpaces(q);
      if (StartsWith(q, "endraw")) {
        q = SkipSpaces(q + 6);
        const size_t end = MatchBlockEnd(q);
        if (end != std::string::npos) {
          line_starting_ = false;
          EmitData(std::string_view(src_).substr(body_start, open - body_start), body_start,
                   modifier, true);
          SetPos(end);
          return;
        }
      }
      p = open + 2;
    }
  }

  void SetPos(size_t p) {
    line_starting_ = p > 0 && src_[p - 1] == '\n';
    pos_ = p;
  }

  void LexTag(size_t tag, TagKind kind, char modifier) {
    Push(kind == TagKind::kVariable ? Token::Type::kVarBegin : Token::Type::kBlockBegin,
         kind == TagKind::kVariable ? "{{" : "{%", tag);
    size_t p = tag + 2 + (modifier != 0 ? 1 : 0);
    std::vector<char> balance;
    while (true) {
      p = SkipSpaces(p);
      if (p >= src_.size()) {
        Fail(kind == TagKind::kVariable ? "unexpected end of template, expected '}}'"
                                        : "unexpected end of template, expected '%}'",
             tag);
      }
      if (balance.empty()) {
        if (kind == TagKind::kBlock) {
          const size_t end = MatchBlockEnd(p);
          if (end != std::string::npos) {
            Push(Token::Type::kBlockEnd, "%}", p);
            SetPos(end);
            return;
          }
        } else if (StartsWith(p, "-}}") || StartsWith(p, "}}")) {
          Push(Token::Type::kVarEnd, "}}", p);
          size_t end = p + 2;
          if (src_[p] == '-') end = SkipSpaces(p + 3);
          SetPos(end);
          return;
        }
      }
      p = LexExpressionToken(p, balance);
    }
  }

  size_t LexExpressionToken(size_t p, std::vector<char>& balance) {
    const char c = src_[p];
    if (IsDigitChar(c)) return LexNumber(p);
    if (IsNameStart(c)) {
      size_t e = p;
      while (e < src_.size() && IsNameChar(src_[e])) ++e;
      Push(Token::Type::kName, src_.substr(p, e - p), p);
      return e;
    }
    if (c == '\'' || c == '"') return LexString(p);
    static constexpr std::string_view kTwoChar[] = {"//", "**", "==", "!=", ">=", "<="};
    for (std::string_view op : kTwoChar) {
      if (StartsWith(p, op)) {
        Push(Token::Type::kOperator, std::string(op), p);
        return p + 2;
      }
    }
    static constexpr std::string_view kOneChar = "+-/*%~[](){}><=.:|,;";
    if (kOneChar.find(c) == std::string_view::npos) {
      Fail(std::string("unexpected char '") + c + "'", p);
    }
    if (c == '(' || c == '[' || c == '{') {
      balance.push_back(c);
    } else if (c == ')' || c == ']' || c == '}') {
      const char want = c == ')' ? '(' : c == ']' ? '[' : '{';
      if (balance.empty() || balance.back() != want) {
        Fail(std::string("unexpected '") + c + "'", p);
      }
      balance.pop_back();
    }
    Push(Token::Type::kOperator, std::string(1, c), p);
    return p + 1;
  }

  size_t ScanDigits(size_t p) const {
    // \d(_?\d)*
    while (p < src_.size()) {
      if (IsDigitChar(src_[p])) {
        ++p;
      } else if (src_[p] == '_' && p + 1 < src_.size() && IsDigitChar(src_[p + 1]) && p > 0 &&
                 IsDigitChar(src_[p - 1])) {
        ++p;
      } else {
        break;
      }
    }
    return p;
  }

  size_t LexNumber(size_t start) {
    size_t p = ScanDigits(start);
    bool is_float = false;
    const bool after_dot = start > 0 && src_[start - 1] == '.';
    if (!after_dot && p + 1 < src_.size() && src_[p] == '.' && IsDigitChar(src_[p + 1])) {
      p = ScanDigits(p + 1);
      is_float = true;
    }
    if (!after_dot && p < src_.size() && (src_[p] == 'e' || src_[p] == 'E')) {
      size_t q = p + 1;
      if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) ++q;
      if (q < src_.size() && IsDigitChar(src_[q])) {
        p = ScanDigits(q);
        is_float = true;
      }
    }
    std::string text;
    for (size_t i = start; i < p; ++i) {
      if (src_[i] != '_') text.push_back(src_[i]);
    }
    Token& t = Push(is_float ? Token::Type::kFloat : Token::Type::kInteger, text, start);
    errno = 0;
    if (is_float) {
      t.float_value = std::strtod(text.c_str(), nullptr);
    } else {
      t.int_value = std::strtoll(text.c_str(), nullptr, 10);
      if (errno == ERANGE) Fail("integer literal out of range: " + text, start);
    }
    return p;
  }

  // Python unicode-escape decoding of a string literal body.
  size_t LexString(size_t start) {
    const char quote = src_[start];
    std::string value;
    size_t p = start + 1;
    while (true) {
      if (p >= src_.size()) Fail("unexpected end of string literal", start);
      const char c = src_[p];
      if (c == quote) break;
      if (c != '\\') {
        value.push_back(c);
        ++p;
        continue;
      }
      if (p + 1 >= src_.size()) Fail("unexpected end of string literal", start);
      const char e = src_[p + 1];
      p += 2;
      switch (e) {
        case '\n':
          break;  // line continuation
        case '\\':
          value.push_back('\\');
          break;
        case '\'':
          value.push_back('\'');
          break;
        case '"':
          value.push_back('"');
          break;
        case 'a':
          value.push_back('\a');
          break;
        case 'b':
          value.push_back('\b');
          break;
        case 'f':
          value.push_back('\f');
          break;
        case 'n':
          value.push_back('\n');
          break;
        case 'r':
          value.push_back('\r');
          break;
        case 't':
          value.push_back('\t');
          break;
        case 'v':
          value.push_back('\v');
          break;
        case 'x':
        case 'u':
        case 'U': {
          const size_t len = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (p + len > src_.size()) Fail("truncated \\" + std::string(1, e) + " escape", p - 2);
          const std::string hex = src_.substr(p, len);
          if (hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
            Fail("truncated \\" + std::string(1, e) + " escape", p - 2);
          }
          const auto cp = static_cast<char32_t>(std::strtoul(hex.c_str(), nullptr, 16));
          if (cp > 0x10FFFF) Fail("illegal Unicode character in escape", p - 2);
          AppendUtf8(cp, value);
          p += len;
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            unsigned v = static_cast<unsigned>(e - '0');
            for (int k = 0; k < 2 && p < src_.size() && src_[p] >= '0' && src_[p] <= '7'; ++k) {
              v = v * 8 + static_cast<unsigned>(src_[p++] - '0');
            }
            AppendUtf8(static_cast<char32_t>(v), value);
          } else {
            // Python keeps unknown escapes as written.
            value.push_back('\\');
            --p;
          }
          break;
      }
    }
    Push(Token::Type::kString, std::move(value), start);
    return p + 1;
  }

  std::string src_;
  LexerOptions options_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  bool line_starting_ = true;
};

std::string Normalize(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(source[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace

std::vector<Token> Tokenize(std::string_view source, const LexerOptions& options) {
  Lexer lexer(Normalize(source), options);
  return lexer.Run();
}

}  // namespace strata::model::jinja
