#include "model/jinja_text.h"

#include "model/tokenizer_unicode.h"

#include <utf8proc.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace strata::model::jinja {
namespace {

constexpr char32_t kEscapeBase = 0xDC00;  // surrogateescape: byte b -> U+DC00 + b

bool IsEscapedByte(char32_t cp) { return cp >= 0xDC80 && cp <= 0xDCFF; }

}  // namespace

std::u32string DecodeUtf8(std::string_view text) {
  std::u32string out;
  out.reserve(text.size());
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    const auto b0 = static_cast<unsigned char>(text[i]);
    if (b0 < 0x80) {
      out.push_back(b0);
      ++i;
      continue;
    }
    int len = 0;
    char32_t cp = 0;
    if ((b0 & 0xE0) == 0xC0) {
      len = 2;
      cp = b0 & 0x1F;
    } else if ((b0 & 0xF0) == 0xE0) {
      len = 3;
      cp = b0 & 0x0F;
    } else if ((b0 & 0xF8) == 0xF0) {
      len = 4;
      cp = b0 & 0x07;
    }
    bool ok = len > 0 && i + len <= n;
    for (int k = 1; ok && k < len; ++k) {
      const auto b = static_cast<unsigned char>(text[i + k]);
      if ((b & 0xC0) != 0x80) {
        ok = false;
      } else {
        cp = (cp << 6) | (b & 0x3F);
      }
    }
    if (ok) {
      // Reject overlong forms, surrogates and out-of-range values.
      const char32_t min_cp = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
      ok = cp >= min_cp && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    }
    if (ok) {
      out.push_back(cp);
      i += len;
    } else {
      out.push_back(kEscapeBase + b0);
      ++i;
    }
  }
  return out;
}

void AppendUtf8(char32_t cp, std::string& out) {
  if (IsEscapedByte(cp)) {
    out.push_back(static_cast<char>(cp - kEscapeBase));  // a raw byte of invalid input
  } else {
    tok::AppendUtf8(cp, out);
  }
}

std::string EncodeUtf8(std::u32string_view cps) {
  std::string out;
  out.reserve(cps.size());
  for (char32_t cp : cps) AppendUtf8(cp, out);
  return out;
}

bool IsAscii(std::string_view text) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

int64_t CodepointCount(std::string_view text) {
  if (IsAscii(text)) return static_cast<int64_t>(text.size());
  return static_cast<int64_t>(DecodeUtf8(text).size());
}

bool IsPythonSpace(char32_t cp) {
  switch (cp) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x1C:
    case 0x1D:
    case 0x1E:
    case 0x1F:
    case 0x20:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

char32_t ToUpper(char32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') ? cp - 32 : cp;
  if (IsEscapedByte(cp)) return cp;
  return static_cast<char32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(cp)));
}

char32_t ToLower(char32_t cp) {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  if (IsEscapedByte(cp)) return cp;
  return static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp)));
}

static char32_t ToTitle(char32_t cp) {
  if (cp < 0x80) return ToUpper(cp);
  if (IsEscapedByte(cp)) return cp;
  return static_cast<char32_t>(utf8proc_totitle(static_cast<utf8proc_int32_t>(cp)));
}

static utf8proc_category_t Category(char32_t cp) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(cp));
}

bool IsAlpha(char32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
  switch (Category(cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      return true;
    default:
      return false;
  }
}

bool IsDigit(char32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return Category(cp) == UTF8PROC_CATEGORY_ND;
}

bool IsAlnum(char32_t cp) {
  if (IsAlpha(cp) || IsDigit(cp)) return true;
  if (cp < 0x80) return false;
  const auto c = Category(cp);
  return c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

bool IsCased(char32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
  const auto c = Category(cp);
  return c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT ||
         ToUpper(cp) != cp || ToLower(cp) != cp;
}

// Python's full case mappings that expand to several code points (SpecialCasing.txt);
// utf8proc only has the simple one-to-one mappings.
static bool AppendFullUpper(char32_t cp, std::string& out) {
  switch (cp) {
    case 0xDF:
      out += "SS";
      return true;  // ß
    case 0xFB00:
      out += "FF";
      return true;  // ﬀ
    case 0xFB01:
      out += "FI";
      return true;  // ﬁ
    case 0xFB02:
      out += "FL";
      return true;  // ﬂ
    case 0xFB03:
      out += "FFI";
      return true;  // ﬃ
    case 0xFB04:
      out += "FFL";
      return true;  // ﬄ
    case 0xFB05:
    case 0xFB06:
      out += "ST";
      return true;
    case 0x149:
      out += "\xCA\xBCN";
      return true;  // ŉ -> ʼN
    default:
      return false;
  }
}

std::string PyUpper(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  if (IsAscii(s)) {
    for (char c : s) out.push_back(static_cast<char>(ToUpper(static_cast<unsigned char>(c))));
    return out;
  }
  for (char32_t cp : DecodeUtf8(s)) {
    if (!AppendFullUpper(cp, out)) AppendUtf8(ToUpper(cp), out);
  }
  return out;
}

std::string PyLower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  if (IsAscii(s)) {
    for (char c : s) out.push_back(static_cast<char>(ToLower(static_cast<unsigned char>(c))));
    return out;
  }
  for (char32_t cp : DecodeUtf8(s)) {
    if (cp == 0x130) {
      out += "i\xCC\x87";  // İ -> i + combining dot above
    } else {
      AppendUtf8(ToLower(cp), out);
    }
  }
  return out;
}

std::string PyTitle(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool previous_cased = false;
  for (char32_t cp : DecodeUtf8(s)) {
    AppendUtf8(previous_cased ? ToLower(cp) : ToTitle(cp), out);
    previous_cased = IsCased(cp);
  }
  return out;
}

std::string PyCapitalize(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool first = true;
  for (char32_t cp : DecodeUtf8(s)) {
    AppendUtf8(first ? ToTitle(cp) : ToLower(cp), out);
    first = false;
  }
  return out;
}

std::string PyStrip(std::string_view s, const std::string* chars, bool left, bool right) {
  const std::u32string cps = DecodeUtf8(s);
  std::u32string set;
  if (chars != nullptr) set = DecodeUtf8(*chars);
  auto strip = [&](char32_t cp) {
    return chars == nullptr ? IsPythonSpace(cp) : set.find(cp) != std::u32string::npos;
  };
  size_t begin = 0;
  size_t end = cps.size();
  if (left) {
    while (begin < end && strip(cps[begin])) ++begin;
  }
  if (right) {
    while (end > begin && strip(cps[end - 1])) --end;
  }
  return EncodeUtf8(std::u32string_view(cps).substr(begin, end - begin));
}

std::vector<std::string> PySplit(std::string_view s, const std::string* sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep != nullptr) {
    if (sep->empty()) throw std::invalid_argument("empty separator");
    size_t pos = 0;
    while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
      const size_t hit = s.find(*sep, pos);
      if (hit == std::string_view::npos) break;
      out.emplace_back(s.substr(pos, hit - pos));
      pos = hit + sep->size();
    }
    out.emplace_back(s.substr(pos));
    return out;
  }
  const std::u32string cps = DecodeUtf8(s);
  size_t i = 0;
  const size_t n = cps.size();
  while (true) {
    while (i < n && IsPythonSpace(cps[i])) ++i;
    if (i == n) break;
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
      out.push_back(EncodeUtf8(std::u32string_view(cps).substr(i)));  // keeps trailing space
      break;
    }
    size_t j = i;
    while (j < n && !IsPythonSpace(cps[j])) ++j;
    out.push_back(EncodeUtf8(std::u32string_view(cps).substr(i, j - i)));
    i = j;
  }
  return out;
}

std::vector<std::string> PyRSplit(std::string_view s, const std::string* sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep != nullptr) {
    if (sep->empty()) throw std::invalid_argument("empty separator");
    size_t end = s.size();
    while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
      if (end < sep->size()) break;
      const size_t hit = s.rfind(*sep, end - sep->size());
      if (hit == std::string_view::npos) break;
      out.emplace_back(s.substr(hit + sep->size(), end - hit - sep->size()));
      end = hit;
    }
    out.emplace_back(s.substr(0, end));
    return {out.rbegin(), out.rend()};
  }
  const std::u32string cps = DecodeUtf8(s);
  size_t j = cps.size();
  while (true) {
    while (j > 0 && IsPythonSpace(cps[j - 1])) --j;
    if (j == 0) break;
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
      out.push_back(EncodeUtf8(std::u32string_view(cps).substr(0, j)));  // keeps leading space
      break;
    }
    size_t i = j;
    while (i > 0 && !IsPythonSpace(cps[i - 1])) --i;
    out.push_back(EncodeUtf8(std::u32string_view(cps).substr(i, j - i)));
    j = i;
  }
  return {out.rbegin(), out.rend()};
}

bool PyReplace(std::string_view s, std::string_view old_text, std::string_view new_text,
               int64_t count, size_t max_bytes, std::string& out) {
  out.clear();
  int64_t done = 0;
  auto room = [&](size_t extra) { return out.size() + extra <= max_bytes; };
  if (old_text.empty()) {
    // Python inserts `new` before every code point and at the end.
    const std::u32string cps = DecodeUtf8(s);
    for (char32_t cp : cps) {
      if (count < 0 || done < count) {
        if (!room(new_text.size())) return false;
        out.append(new_text);
        ++done;
      }
      AppendUtf8(cp, out);
    }
    if (count < 0 || done < count) out.append(new_text);
    return room(0);
  }
  size_t pos = 0;
  while (count < 0 || done < count) {
    const size_t hit = s.find(old_text, pos);
    if (hit == std::string_view::npos) break;
    if (!room(hit - pos + new_text.size())) return false;
    out.append(s.substr(pos, hit - pos));
    out.append(new_text);
    pos = hit + old_text.size();
    ++done;
  }
  if (!room(s.size() - pos)) return false;
  out.append(s.substr(pos));
  return true;
}

std::vector<std::string> PySplitLines(std::string_view s) {
  std::vector<std::string> out;
  const std::u32string cps = DecodeUtf8(s);
  size_t start = 0;
  size_t i = 0;
  const size_t n = cps.size();
  while (i < n) {
    const char32_t c = cps[i];
    const bool is_break = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C ||
                          c == 0x1D || c == 0x1E || c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!is_break) {
      ++i;
      continue;
    }
    out.push_back(EncodeUtf8(std::u32string_view(cps).substr(start, i - start)));
    i += (c == '\r' && i + 1 < n && cps[i + 1] == '\n') ? 2 : 1;
    start = i;
  }
  if (start < n) out.push_back(EncodeUtf8(std::u32string_view(cps).substr(start)));
  return out;
}

static bool IsPrintable(char32_t cp) {
  if (cp < 0x80) return cp >= 0x20 && cp < 0x7F;
  if (IsEscapedByte(cp)) return false;
  switch (Category(cp)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
    case UTF8PROC_CATEGORY_ZS:
      return false;
    default:
      return true;
  }
}

std::string PyReprString(std::string_view s) {
  const bool has_single = s.find('\'') != std::string_view::npos;
  const bool has_double = s.find('"') != std::string_view::npos;
  const char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  char buf[16];
  for (char32_t cp : DecodeUtf8(s)) {
    if (cp == static_cast<char32_t>(quote) || cp == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(cp));
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (IsPrintable(cp)) {
      AppendUtf8(cp, out);
    } else {
      if (cp < 0x100) {
        std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(cp));
      } else if (cp < 0x10000) {
        std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(cp));
      } else {
        std::snprintf(buf, sizeof buf, "\\U%08x", static_cast<unsigned>(cp));
      }
      out += buf;
    }
  }
  out.push_back(quote);
  return out;
}

std::string PyFloatRepr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (v == 0) return std::signbit(v) ? "-0.0" : "0.0";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  std::string sci(buf, res.ptr);  // e.g. "-1.2345e+17"
  std::string sign;
  if (sci[0] == '-') {
    sign = "-";
    sci.erase(0, 1);
  }
  const size_t e_pos = sci.find('e');
  const int exp10 = std::stoi(sci.substr(e_pos + 1));
  std::string digits;
  for (size_t i = 0; i < e_pos; ++i) {
    if (sci[i] != '.') digits.push_back(sci[i]);
  }
  if (exp10 < -4 || exp10 >= 16) {
    std::string out = sign + digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    std::snprintf(buf, sizeof buf, "e%c%02d", exp10 < 0 ? '-' : '+', std::abs(exp10));
    return out + buf;
  }
  std::string out = sign;
  if (exp10 < 0) {
    out += "0." + std::string(static_cast<size_t>(-exp10 - 1), '0') + digits;
  } else {
    const size_t int_len = static_cast<size_t>(exp10) + 1;
    if (digits.size() <= int_len) {
      out += digits + std::string(int_len - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, int_len) + "." + digits.substr(int_len);
    }
  }
  return out;
}

void AppendJsonString(std::string_view s, bool ensure_ascii, std::string& out) {
  out.push_back('"');
  char buf[16];
  auto escape_unit = [&](unsigned unit) {
    std::snprintf(buf, sizeof buf, "\\u%04x", unit);
    out += buf;
  };
  auto plain = [&](char32_t cp) -> bool {
    switch (cp) {
      case '"':
        out += "\\\"";
        return true;
      case '\\':
        out += "\\\\";
        return true;
      case '\n':
        out += "\\n";
        return true;
      case '\r':
        out += "\\r";
        return true;
      case '\t':
        out += "\\t";
        return true;
      case '\b':
        out += "\\b";
        return true;
      case '\f':
        out += "\\f";
        return true;
      default:
        break;
    }
    if (cp < 0x20) {
      escape_unit(static_cast<unsigned>(cp));
      return true;
    }
    return false;
  };
  if (!ensure_ascii) {
    for (char c : s) {
      const auto b = static_cast<unsigned char>(c);
      if (b >= 0x80 || !plain(b)) out.push_back(c);
    }
    out.push_back('"');
    return;
  }
  for (char32_t cp : DecodeUtf8(s)) {
    if (plain(cp)) continue;
    if (cp >= 0x20 && cp < 0x7F) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x10000) {
      escape_unit(static_cast<unsigned>(cp));
    } else {
      const char32_t v = cp - 0x10000;
      escape_unit(0xD800 + static_cast<unsigned>(v >> 10));
      escape_unit(0xDC00 + static_cast<unsigned>(v & 0x3FF));
    }
  }
  out.push_back('"');
}

}  // namespace strata::model::jinja
