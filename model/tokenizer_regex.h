// Patterns of tokenizer.json ({"Regex": "..."} or {"String": "..."}) compiled once and matched
// many times (internal to model/).
//
// Regexes run on PCRE2 with UTF and UCP and the JIT. HF exports Oniguruma syntax, which PCRE2
// accepts as is for the constructs tokenizers use (\p{..}, (?i:..), lookahead); `\s` and `\S` are
// rewritten to the whitespace set of the reference implementation (JavaScript's: Unicode Zs plus
// \t\n\v\f\r, U+2028/9 and U+FEFF), so both split whitespace alike.
//
// Thread-safety: a compiled Pattern is immutable; FindAll may run on many threads at once (each
// thread keeps its own match scratch space).
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace strata::model::tok {

class Pattern {
 public:
  virtual ~Pattern() = default;
  // Calls on_match(begin, end) (byte offsets) for each non-overlapping, non-empty match, left to
  // right. `text` must be valid UTF-8. Fails only if the regex engine gives up (never for the
  // patterns of real tokenizers; the JIT stack grows to 64 MiB).
  virtual Status FindAll(std::string_view text,
                         const std::function<void(size_t, size_t)>& on_match) const = 0;
};

// Builds a Pattern from {"Regex": "..."} or {"String": "..."}; the error names what is wrong.
StatusOr<std::shared_ptr<const Pattern>> MakePattern(const nlohmann::json& spec);

// A regex in tokenizer.json syntax; exposed for tests.
StatusOr<std::shared_ptr<const Pattern>> CompileRegex(std::string_view pattern);

// The PCRE2 source that CompileRegex compiles for `pattern` (after the `\s` rewrite).
std::string TranslateRegex(std::string_view pattern);

}  // namespace strata::model::tok
