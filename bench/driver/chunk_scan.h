// Reads the few fields the load-test driver needs from one OpenAI streaming chunk (the JSON text
// of one SSE `data:` event) without building a DOM and without allocating: a forward scan that
// skips everything it does not look at. It understands chat chunks (choices[0].delta.content /
// reasoning_content / reasoning), completion chunks (choices[0].text), the usage chunk that
// stream_options.include_usage adds, and error events ({"error": {...}}).
//
// Thread-safe (pure function). The views in StreamChunk point into the input text.
#pragma once

#include <cstdint>
#include <string_view>

namespace strata::bench {

struct StreamChunk {
  bool has_choices = false;        // "choices" is a non-empty array
  std::string_view content_raw;    // choices[0] text/content/reasoning, still JSON-escaped
  bool has_content = false;        // content_raw is a non-empty string
  std::string_view finish_reason;  // choices[0].finish_reason when a string, else empty
  bool has_usage = false;          // "usage" is an object
  int64_t prompt_tokens = -1;      // usage.prompt_tokens (-1 when absent)
  int64_t completion_tokens = -1;  // usage.completion_tokens
  int64_t cached_tokens = -1;      // usage.prompt_tokens_details.cached_tokens
  bool is_error = false;           // top-level "error" member (object or string)
  std::string_view error_message;  // error.message or the error string, JSON-escaped
};

// Scans `json` (one object). Returns false when it is not a well-formed JSON object; `out` is
// then partly filled and must not be used. Nesting deeper than 64 levels is rejected.
bool ScanStreamChunk(std::string_view json, StreamChunk* out);

}  // namespace strata::bench
