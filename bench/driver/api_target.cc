#include "bench/driver/api_target.h"

#include <charconv>

namespace strata::bench {

StatusOr<EndpointKind> ParseEndpointKind(std::string_view name) {
  if (name == "chat") return EndpointKind::kChat;
  if (name == "completions") return EndpointKind::kCompletions;
  return InvalidArgumentError("endpoint must be 'chat' or 'completions', not '" +
                              std::string(name) + "'");
}

std::string_view EndpointKindName(EndpointKind kind) {
  return kind == EndpointKind::kChat ? "chat" : "completions";
}

std::string ApiTarget::GenerationPath() const {
  return root_path + (kind == EndpointKind::kChat ? "/v1/chat/completions" : "/v1/completions");
}

std::string ApiTarget::VersionPath() const { return root_path + "/version"; }

std::string ApiTarget::HostHeader() const { return host + ":" + std::to_string(port); }

Status ParseBaseUrl(std::string_view url, ApiTarget* target) {
  std::string_view rest = url;
  if (rest.substr(0, 8) == "https://") {
    return InvalidArgumentError("base URL '" + std::string(url) +
                                "': https is not supported; use plain http:// (e.g. through a "
                                "local TLS-terminating proxy)");
  }
  if (rest.substr(0, 7) != "http://") {
    return InvalidArgumentError("base URL '" + std::string(url) + "' must start with http://");
  }
  rest.remove_prefix(7);
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash);
  if (authority.empty()) {
    return InvalidArgumentError("base URL '" + std::string(url) + "' has no host");
  }
  uint16_t port = 80;
  std::string_view host = authority;
  if (authority.front() == '[') {  // [ipv6]:port
    size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return InvalidArgumentError("base URL '" + std::string(url) + "': unclosed '['");
    }
    host = authority.substr(1, close - 1);
    authority.remove_prefix(close + 1);
    if (!authority.empty() && authority.front() != ':') {
      return InvalidArgumentError("base URL '" + std::string(url) + "': junk after ']'");
    }
  } else {
    size_t colon = authority.rfind(':');
    host = authority.substr(0, colon);
    authority = colon == std::string_view::npos ? "" : authority.substr(colon);
  }
  if (!authority.empty()) {  // ":port"
    std::string_view digits = authority.substr(1);
    unsigned value = 0;
    auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (ec != std::errc() || ptr != digits.data() + digits.size() || value == 0 || value > 65535) {
      return InvalidArgumentError("base URL '" + std::string(url) + "': bad port '" +
                                  std::string(digits) + "'");
    }
    port = static_cast<uint16_t>(value);
  }
  if (host.empty()) return InvalidArgumentError("base URL '" + std::string(url) + "' has no host");
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  if (path.size() >= 3 && path.substr(path.size() - 3) == "/v1") path.remove_suffix(3);
  target->host = std::string(host);
  target->port = port;
  target->root_path = std::string(path);
  return OkStatus();
}

std::string BuildRequestBody(const ApiTarget& target, const RequestSpec& spec) {
  nlohmann::json body = {
      {"model", target.model}, {"stream", true}, {"stream_options", {{"include_usage", true}}}};
  if (target.kind == EndpointKind::kChat) {
    body["messages"] = nlohmann::json::array({{{"role", "user"}, {"content", spec.prompt}}});
    body["max_completion_tokens"] = spec.output_len;
  } else {
    body["prompt"] = spec.prompt;
    body["max_tokens"] = spec.output_len;
  }
  if (target.ignore_eos) body["ignore_eos"] = true;
  for (const auto& [key, value] : target.extra_body.items()) body[key] = value;
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string BuildHttpRequest(const ApiTarget& target, std::string_view body,
                             std::string_view request_id) {
  std::string out;
  out.reserve(body.size() + 256);
  out.append("POST ").append(target.GenerationPath()).append(" HTTP/1.1\r\nHost: ");
  out.append(target.HostHeader());
  out.append("\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\n");
  if (!target.api_key.empty())
    out.append("Authorization: Bearer ").append(target.api_key).append("\r\n");
  out.append("X-Request-Id: ").append(request_id).append("\r\n");
  out.append("Content-Length: ").append(std::to_string(body.size()));
  out.append("\r\nConnection: keep-alive\r\n\r\n");
  out.append(body);
  return out;
}

}  // namespace strata::bench
