// The OpenAI-compatible API on top of HttpServer: routes, API-key check, request validation,
// prompt construction (chat template, tokenization, context-length check) and hand-off to a
// CompletionJob. Endpoints:
//   POST /v1/chat/completions, POST /v1/completions   (JSON or SSE)
//   GET  /v1/models, /v1/models/{id}
//   GET  /health    200 when ready, 503 while loading or draining
//   GET  /metrics   Prometheus text
//   GET  /version
// Until SetBackend() is called (the model is loading) generation endpoints answer 503.
// Thread-safe: Handle() runs on I/O threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "common/metrics.h"
#include "decode/generation.h"
#include "server/http_server.h"
#include "server/server_metrics.h"
#include "server/text_codec.h"

namespace strata::server {

struct ApiServerOptions {
  std::string served_model_name = "strata";
  int max_model_len = 4096;
  std::string api_key;                     // empty: no authentication
  int64_t request_timeout_ms = 0;          // 0: none
  int retry_after_seconds = 1;             // sent with 429 and 503
  int default_completion_max_tokens = 16;  // /v1/completions without max_tokens (as OpenAI)
};

class ApiServer {
 public:
  ApiServer(ApiServerOptions options, MetricsRegistry* registry);

  // Makes the generation endpoints live. Both must outlive this object's use.
  void SetBackend(decode::GenerationService* service, const TextCodec* codec);
  // The context length, once the model is known (before SetBackend).
  void SetMaxModelLen(int max_model_len) { max_model_len_.store(max_model_len); }
  // From now on /health answers 503 and new generation requests are refused (503).
  void StartDraining();

  void Handle(HttpRequest request, std::shared_ptr<Exchange> exchange);

  // Generation requests accepted and not yet finished.
  int num_in_flight() const { return num_in_flight_.load(); }
  ServerMetrics& metrics() { return metrics_; }

 private:
  void HandleChat(const HttpRequest& request, const std::shared_ptr<Exchange>& exchange);
  void HandleCompletion(const HttpRequest& request, const std::shared_ptr<Exchange>& exchange);
  void HandleModels(const HttpRequest& request, const std::shared_ptr<Exchange>& exchange);
  void HandleHealth(const std::shared_ptr<Exchange>& exchange);
  void HandleMetrics(const std::shared_ptr<Exchange>& exchange);
  void HandleVersion(const std::shared_ptr<Exchange>& exchange);

  // Answers an error in OpenAI's shape and records it.
  void RespondError(const std::shared_ptr<Exchange>& exchange, const std::string& endpoint,
                    const Status& status);
  void RespondJson(const std::shared_ptr<Exchange>& exchange, const std::string& endpoint,
                   int http_status, const std::string& body);
  Status CheckApiKey(const HttpRequest& request) const;
  // The service and codec when ready, or kUnavailable.
  Status Backend(decode::GenerationService** service, const TextCodec** codec) const;

  ApiServerOptions options_;
  MetricsRegistry* registry_;
  ServerMetrics metrics_;
  int64_t created_unix_s_;
  std::string system_fingerprint_;
  std::atomic<decode::GenerationService*> service_{nullptr};
  std::atomic<const TextCodec*> codec_{nullptr};
  std::atomic<int> max_model_len_;
  std::atomic<bool> draining_{false};
  std::atomic<int> num_in_flight_{0};
};

}  // namespace strata::server
