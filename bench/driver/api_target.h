// Where requests go and what they look like on the wire: the base URL, the endpoint (chat or
// completions), the model, and the JSON body for a RequestSpec. The body follows what
// `vllm bench serve` sends: stream: true with stream_options.include_usage, max_tokens
// (completions) or max_completion_tokens (chat), ignore_eos when asked, and any extra fields.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>

#include "bench/driver/request.h"
#include "common/status.h"

namespace strata::bench {

enum class EndpointKind { kChat, kCompletions };

StatusOr<EndpointKind> ParseEndpointKind(std::string_view name);  // "chat" | "completions"
std::string_view EndpointKindName(EndpointKind kind);

struct ApiTarget {
  std::string host;
  uint16_t port = 80;
  std::string root_path;  // path before /v1 ("" for "http://h:p" and "http://h:p/v1")
  EndpointKind kind = EndpointKind::kChat;
  std::string model;
  std::string api_key;  // sent as "Authorization: Bearer <key>" when not empty
  bool ignore_eos = false;
  nlohmann::json extra_body = nlohmann::json::object();  // merged into every request body

  std::string GenerationPath() const;  // e.g. "/v1/chat/completions"
  std::string VersionPath() const;     // "/version" under root_path
  std::string HostHeader() const;      // "host:port"
};

// Parses "http://host[:port][/path]" into target->host/port/root_path. A trailing "/v1" is
// dropped from the path (OpenAI SDKs put it in the base URL; the driver adds it). https is
// refused with a clear error: the driver speaks plain HTTP/1.1.
Status ParseBaseUrl(std::string_view url, ApiTarget* target);

// The JSON body for one request.
std::string BuildRequestBody(const ApiTarget& target, const RequestSpec& spec);

// The complete HTTP/1.1 request (keep-alive, Content-Length, X-Request-Id) carrying `body`.
std::string BuildHttpRequest(const ApiTarget& target, std::string_view body,
                             std::string_view request_id);

}  // namespace strata::bench
