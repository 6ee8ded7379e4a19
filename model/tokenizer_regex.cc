#include "model/tokenizer_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cstdio>

#include "model/tokenizer_unicode.h"

namespace strata::model::tok {
namespace {

// JavaScript's \s (WhiteSpace + LineTerminator), as a class body.
constexpr std::string_view kSpaceClass =
    "\\t\\n\\x{0B}\\f\\r \\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}"
    "\\x{205F}\\x{3000}\\x{FEFF}";

// "\x{A}-\x{B}..." for the code points of `major` added since Unicode 14 (see
// AddedSinceUnicode14), so PCRE2 10.42 classifies them as current engines do.
std::string DeltaRanges(char major) {
  std::string out;
  char buffer[40];
  for (const CodeRange& r : AddedSinceUnicode14(major)) {
    std::snprintf(buffer, sizeof(buffer), "\\x{%X}-\\x{%X}", static_cast<unsigned>(r.first),
                  static_cast<unsigned>(r.last));
    out += buffer;
  }
  return out;
}

std::string Pcre2Error(int code) {
  PCRE2_UCHAR buffer[256];
  int n = pcre2_get_error_message(code, buffer, sizeof(buffer));
  if (n < 0) return "PCRE2 error " + std::to_string(code);
  return std::string(reinterpret_cast<const char*>(buffer), static_cast<size_t>(n));
}

// Per-thread JIT stack and match context; PCRE2 objects are not shareable for matching.
struct ThreadScratch {
  pcre2_jit_stack* jit_stack = nullptr;
  pcre2_match_context* context = nullptr;
  ThreadScratch() {
    jit_stack = pcre2_jit_stack_create(64 * 1024, 64 * 1024 * 1024, nullptr);
    context = pcre2_match_context_create(nullptr);
    if (jit_stack != nullptr && context != nullptr) {
      pcre2_jit_stack_assign(context, nullptr, jit_stack);
    }
  }
  ~ThreadScratch() {
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(jit_stack);
  }
};

ThreadScratch& Scratch() {
  thread_local ThreadScratch scratch;
  return scratch;
}

class RegexPattern final : public Pattern {
 public:
  explicit RegexPattern(pcre2_code* code) : code_(code) {}
  ~RegexPattern() override { pcre2_code_free(code_); }

  Status FindAll(std::string_view text,
                 const std::function<void(size_t, size_t)>& on_match) const override {
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_, nullptr);
    if (md == nullptr) return ResourceExhaustedError("regex: out of memory for match data");
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    size_t pos = 0;
    Status status;
    while (pos <= text.size()) {
      int rc =
          pcre2_match(code_, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, Scratch().context);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        status = InternalError("regex match failed: " + Pcre2Error(rc));
        break;
      }
      PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      size_t begin = ov[0], end = ov[1];
      if (end > begin) {
        on_match(begin, end);
        pos = end;
      } else {
        // Empty match: step over one character, as JavaScript's matchAll does.
        if (begin >= text.size()) break;
        size_t next = begin;
        NextCodePoint(text, next);
        pos = next;
      }
    }
    pcre2_match_data_free(md);
    return status;
  }

 private:
  pcre2_code* code_;
};

class LiteralPattern final : public Pattern {
 public:
  explicit LiteralPattern(std::string literal) : literal_(std::move(literal)) {}

  Status FindAll(std::string_view text,
                 const std::function<void(size_t, size_t)>& on_match) const override {
    if (literal_.empty()) return OkStatus();
    size_t pos = 0;
    while ((pos = text.find(literal_, pos)) != std::string_view::npos) {
      on_match(pos, pos + literal_.size());
      pos += literal_.size();
    }
    return OkStatus();
  }

 private:
  std::string literal_;
};

}  // namespace

std::string TranslateRegex(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 64);
  bool in_class = false;
  size_t class_start = 0;  // index in `pattern` just after '[' or '[^'
  for (size_t i = 0; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      char e = pattern[i + 1];
      if (e == 's') {
        if (in_class) {
          out.append(kSpaceClass);
        } else {
          out.append("[").append(kSpaceClass).append("]");
        }
      } else if (e == 'S' && !in_class) {
        out.append("[^").append(kSpaceClass).append("]");
      } else if ((e == 'p' || (e == 'P' && !in_class)) && i + 4 < pattern.size() &&
                 pattern[i + 2] == '{' && pattern[i + 4] == '}' &&
                 !AddedSinceUnicode14(pattern[i + 3]).empty()) {
        // \p{L} -> [\p{L}<added ranges>]; \P{L} -> [^\p{L}<added ranges>].
        std::string body = std::string("\\p{") + pattern[i + 3] + "}" + DeltaRanges(pattern[i + 3]);
        if (in_class) {
          out.append(body);
        } else {
          out.append(e == 'p' ? "[" : "[^").append(body).append("]");
        }
        i += 4;
        continue;
      } else {
        out.push_back(c);
        out.push_back(e);
      }
      ++i;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out.push_back(c);
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') {
        out.push_back('^');
        ++i;
      }
      class_start = i + 1;
      continue;
    }
    if (in_class && c == '[' && i + 1 < pattern.size() && pattern[i + 1] == ':') {
      // POSIX class [:name:] inside a class: copy through its closing ":]".
      size_t close = pattern.find(":]", i + 2);
      if (close != std::string_view::npos) {
        out.append(pattern.substr(i, close + 2 - i));
        i = close + 1;
        continue;
      }
    }
    if (in_class && c == ']' && i != class_start) in_class = false;
    out.push_back(c);
  }
  return out;
}

StatusOr<std::shared_ptr<const Pattern>> CompileRegex(std::string_view pattern) {
  std::string source = TranslateRegex(pattern);
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(source.data()), source.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &error_code,
                                   &error_offset, nullptr);
  if (code == nullptr) {
    return InvalidArgumentError("bad regex '" + std::string(pattern) +
                                "': " + Pcre2Error(error_code) + " at offset " +
                                std::to_string(error_offset));
  }
  // Without the JIT PCRE2 still matches correctly, only slower; so a JIT failure is not fatal.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  return std::shared_ptr<const Pattern>(std::make_shared<RegexPattern>(code));
}

StatusOr<std::shared_ptr<const Pattern>> MakePattern(const nlohmann::json& spec) {
  if (!spec.is_object()) return InvalidArgumentError("pattern must be an object");
  if (auto it = spec.find("Regex"); it != spec.end() && it->is_string()) {
    return CompileRegex(it->get<std::string>());
  }
  if (auto it = spec.find("String"); it != spec.end() && it->is_string()) {
    std::string literal = it->get<std::string>();
    if (FindInvalidUtf8(literal) != std::string_view::npos) {
      return InvalidArgumentError("pattern String is not valid UTF-8");
    }
    return std::shared_ptr<const Pattern>(std::make_shared<LiteralPattern>(std::move(literal)));
  }
  return InvalidArgumentError("pattern needs a \"Regex\" or \"String\" string, got " + spec.dump());
}

}  // namespace strata::model::tok
