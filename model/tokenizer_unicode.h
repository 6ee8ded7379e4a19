// UTF-8 and Unicode helpers shared by the tokenizer components (internal to model/).
// All functions are pure and thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace strata::model::tok {

// Length in bytes of the valid UTF-8 sequence at text[pos], or 0 if it is not valid there
// (truncated, overlong, surrogate, > U+10FFFF, stray continuation byte).
size_t ValidUtf8SequenceLength(std::string_view text, size_t pos);

// Byte offset of the first invalid sequence, or npos when `text` is valid UTF-8.
size_t FindInvalidUtf8(std::string_view text);

// Decodes the code point at text[pos] (which must be valid UTF-8) and advances pos past it.
char32_t NextCodePoint(std::string_view text, size_t& pos);

// Appends the UTF-8 encoding of `cp`.
void AppendUtf8(char32_t cp, std::string& out);

// Replaces every invalid sequence by U+FFFD, one per maximal subpart (the WHATWG / Rust
// from_utf8_lossy rule), so decoders emit the same text as the reference implementations.
std::string Utf8Lossy(std::string_view bytes);

struct CodeRange {
  char32_t first, last;  // inclusive
};
// Code points added to major category 'L', 'M', 'N', 'P' or 'S' after Unicode 14.0 (PCRE2 10.42's
// tables; utf8proc 2.8 knows 15.0) up to 17.0, sorted; empty for other letters.
std::span<const CodeRange> AddedSinceUnicode14(char major_category);
bool InRanges(std::span<const CodeRange> ranges, char32_t cp);

// Unicode White_Space (what Rust's char::is_whitespace tests).
bool IsWhitespace(char32_t cp);
// General category letter (L*), number (N*), or mark (M*), as of Unicode 17.0.
bool IsLetter(char32_t cp);
bool IsNumeric(char32_t cp);
bool IsMark(char32_t cp);

// GPT-2 byte-level alphabet: every byte maps to one printable code point.
char32_t ByteToChar(uint8_t byte);
// The byte for a code point of that alphabet, or -1 when `cp` is not one of them.
int CharToByte(char32_t cp);
// UTF-8 of ByteToChar(byte), precomputed.
std::string_view ByteToUtf8(uint8_t byte);

}  // namespace strata::model::tok
