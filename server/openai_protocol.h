// OpenAI JSON <-> internal structs, in one translation unit (STYLE.md habit 7).
//
// Parsing validates types and ranges and returns kInvalidArgument naming the offending field
// (OpenAI's `param`). Unknown fields are ignored, as OpenAI-compatible servers do. Serializing
// produces the envelopes OpenAI sends: id, object, created, model, system_fingerprint, choices,
// usage (with prompt_tokens_details.cached_tokens). Pure functions; thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/status.h"
#include "decode/generation.h"

namespace strata::server {

// Settings shared by /v1/chat/completions and /v1/completions.
struct CommonParams {
  std::string model;
  int n = 1;
  bool stream = false;
  bool include_usage = false;       // stream_options.include_usage
  std::optional<int> max_tokens;    // max_completion_tokens wins over max_tokens
  decode::SamplingParams sampling;  // max_tokens there is filled in by the handler
  std::vector<std::string> stop;
};

struct ChatRequest {
  CommonParams params;
  // Normalized messages: each {"role": ..., "content": string} plus the optional "name",
  // "tool_calls", "tool_call_id" fields as given. Content-part arrays are joined ({type:text}).
  nlohmann::json messages = nlohmann::json::array();
  nlohmann::json tools;  // null when absent
  bool add_generation_prompt = true;
  nlohmann::json chat_template_kwargs = nlohmann::json::object();
  bool logprobs = false;
  int top_logprobs = 0;  // 0..20, only with logprobs
};

// A completions prompt: text, or token ids given directly.
using PromptInput = std::variant<std::string, std::vector<int32_t>>;

struct CompletionRequest {
  CommonParams params;
  std::vector<PromptInput> prompts;  // at least one
  std::optional<int> logprobs;       // 0..20: top-N alternatives per token
  bool echo = false;  // with logprobs, params.sampling.num_prompt_logprobs is set too
};

// Parses a request body. `body` is the raw JSON text.
StatusOr<ChatRequest> ParseChatRequest(std::string_view body);
StatusOr<CompletionRequest> ParseCompletionRequest(std::string_view body);

// ---- Responses ----

struct Usage {
  int prompt_tokens = 0;
  int completion_tokens = 0;
  int cached_tokens = 0;
};

// One token with its logprob and alternatives, as text. `bytes` are the token's raw UTF-8
// bytes (possibly a partial character); `text` is what OpenAI shows as "token".
struct TokenLogprobText {
  std::string text;
  std::string bytes;
  // None only for the first token of an echoed prompt (nothing precedes it): OpenAI then
  // sends null as its logprob and its top_logprobs.
  std::optional<float> logprob;
  std::vector<std::pair<std::string, float>> top;  // (token text, logprob), best first
  std::vector<std::string> top_bytes;
};

// Output of one choice (or one streamed delta of it).
struct ChoiceOutput {
  int index = 0;
  std::string text;
  std::vector<TokenLogprobText> logprobs;  // with logprobs on
  bool has_logprobs = false;
  std::vector<int> text_offsets;  // completions format, same length as logprobs
  std::optional<decode::FinishReason> finish;
};

struct Envelope {
  std::string id;
  int64_t created = 0;
  std::string model;
  std::string system_fingerprint;
};

nlohmann::json ChatCompletionJson(const Envelope& env, const std::vector<ChoiceOutput>& choices,
                                  const Usage& usage);
// One chat.completion.chunk. `first` adds role "assistant" to the delta. `with_usage_null`
// adds "usage": null (stream_options.include_usage).
nlohmann::json ChatChunkJson(const Envelope& env, const ChoiceOutput& delta, bool first,
                             bool with_usage_null);
// The final chunk with "choices": [] and the usage.
nlohmann::json ChatUsageChunkJson(const Envelope& env, const Usage& usage);

nlohmann::json CompletionJson(const Envelope& env, const std::vector<ChoiceOutput>& choices,
                              const Usage& usage);
nlohmann::json CompletionChunkJson(const Envelope& env, const ChoiceOutput& delta,
                                   bool with_usage_null);
nlohmann::json CompletionUsageChunkJson(const Envelope& env, const Usage& usage);

// The hot path of streaming: one SSE event per token per stream. Writes the chunk of
// ChatChunkJson / CompletionChunkJson from a template made once per request, byte for byte what
// dumping those gives (keys in the same order), without building a JSON tree per token. Deltas
// with logprobs take the JSON-tree path. Immutable after construction; thread-safe.
class StreamChunkWriter {
 public:
  StreamChunkWriter(const Envelope& env, bool chat, bool with_usage_null);
  // Appends "data: <chunk>\n\n" to `out`. `first` as in ChatChunkJson (chat only).
  void AppendEvent(const ChoiceOutput& delta, bool first, std::string* out) const;

 private:
  Envelope env_;
  bool chat_;
  bool with_usage_null_;
  std::string suffix_;  // `}],"created":...` to the end of the object
};

// Appends `text` as a JSON string literal, as nlohmann::json's dump() writes it (UTF-8 kept,
// invalid sequences replaced by U+FFFD).
void AppendJsonString(std::string_view text, std::string* out);

nlohmann::json ModelJson(const std::string& id, int64_t created, int max_model_len);
nlohmann::json ModelListJson(const std::string& id, int64_t created, int max_model_len);

// {"error": {"message", "type", "param", "code"}} for a non-OK status. `param` may be empty.
nlohmann::json ErrorJson(const Status& status, const std::string& param = "");
// The OpenAI error type for a status code ("invalid_request_error", ...).
std::string ErrorType(StatusCode code);

// "stop" / "length" / null for kNone; kAbort and kError map to "abort" / "error" (they
// only reach a client that stays connected, e.g. after a deadline).
nlohmann::json FinishReasonJson(std::optional<decode::FinishReason> finish);

// The parameter name an InvalidArgument message refers to: messages from the parsers start
// with "'<param>': ...". Empty when none.
std::string ParamFromMessage(const std::string& message);

}  // namespace strata::server
