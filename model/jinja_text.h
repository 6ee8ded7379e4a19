// Text helpers for the Jinja engine: UTF-8 code points and the Python str semantics that
// chat templates rely on (str.strip/split/upper..., repr(), float repr).
//
// Strings are UTF-8 bytes. Invalid bytes decode losslessly to U+DC80..U+DCFF (Python's
// surrogateescape) and encode back to the same byte, so nothing is lost or rejected.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace strata::model::jinja {

// Decodes UTF-8 into code points (see the surrogateescape note above).
std::u32string DecodeUtf8(std::string_view text);
// Appends the UTF-8 encoding of `cp` (surrogateescape code points become their raw byte).
void AppendUtf8(char32_t cp, std::string& out);
std::string EncodeUtf8(std::u32string_view cps);

// Number of code points (Python len(str)).
int64_t CodepointCount(std::string_view text);
bool IsAscii(std::string_view text);

// Python str.isspace() for one code point.
bool IsPythonSpace(char32_t cp);
char32_t ToUpper(char32_t cp);
char32_t ToLower(char32_t cp);
bool IsAlpha(char32_t cp);
bool IsDigit(char32_t cp);
bool IsAlnum(char32_t cp);
bool IsCased(char32_t cp);

// Python str methods.
std::string PyUpper(std::string_view s);
std::string PyLower(std::string_view s);
std::string PyTitle(std::string_view s);       // str.title()
std::string PyCapitalize(std::string_view s);  // str.capitalize()
// strip/lstrip/rstrip: `chars` null means whitespace.
std::string PyStrip(std::string_view s, const std::string* chars, bool left, bool right);
// str.split(sep=None, maxsplit=-1); `sep` null means runs of whitespace. Throws on empty sep.
std::vector<std::string> PySplit(std::string_view s, const std::string* sep, int64_t maxsplit);
std::vector<std::string> PyRSplit(std::string_view s, const std::string* sep, int64_t maxsplit);
// str.replace(old, new, count=-1). Returns false if the result would exceed `max_bytes`.
bool PyReplace(std::string_view s, std::string_view old_text, std::string_view new_text,
               int64_t count, size_t max_bytes, std::string& out);
// str.splitlines() (keepends=False).
std::vector<std::string> PySplitLines(std::string_view s);

// repr() of a str: quotes and escapes as CPython does.
std::string PyReprString(std::string_view s);
// repr()/str() of a float, e.g. 1.0, 0.1, 1e+20, inf, nan.
std::string PyFloatRepr(double v);

// Appends `s` as a JSON string literal as Python's json.dumps does.
void AppendJsonString(std::string_view s, bool ensure_ascii, std::string& out);

}  // namespace strata::model::jinja
