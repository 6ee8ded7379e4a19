#include "server/api_server.h"

#include <random>

#include "common/clock.h"
#include "common/log.h"
#include "common/version.h"
#include "server/completion_job.h"
#include "server/openai_protocol.h"

namespace strata::server {
namespace {

constexpr const char* kChatEndpoint = "/v1/chat/completions";
constexpr const char* kCompletionEndpoint = "/v1/completions";

std::string RandomHex(int digits) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(static_cast<size_t>(digits));
  uint64_t bits = 0;
  for (int i = 0; i < digits; ++i) {
    if (i % 16 == 0) bits = rng();
    out += kHex[bits & 0xF];
    bits >>= 4;
  }
  return out;
}

std::string Dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The prompt-length check of every generation request, and max_tokens when not given.
Status FitContext(int prompt_tokens, std::optional<int> requested, int default_max_tokens,
                  int max_model_len, int* max_tokens) {
  if (prompt_tokens >= max_model_len) {
    return InvalidArgumentError(
        "This model's maximum context length is " + std::to_string(max_model_len) +
        " tokens. However, your prompt has " + std::to_string(prompt_tokens) +
        " tokens, leaving no room for the completion. Please reduce the length of the "
        "prompt.");
  }
  int room = max_model_len - prompt_tokens;
  if (requested) {
    if (prompt_tokens + static_cast<int64_t>(*requested) > max_model_len) {
      return InvalidArgumentError(
          "'max_tokens': This model's maximum context length is " + std::to_string(max_model_len) +
          " tokens. However, you requested " +
          std::to_string(prompt_tokens + static_cast<int64_t>(*requested)) + " tokens (" +
          std::to_string(prompt_tokens) + " in the prompt, " + std::to_string(*requested) +
          " in the completion). Please reduce the prompt or the completion length.");
    }
    *max_tokens = *requested;
  } else {
    *max_tokens = default_max_tokens > 0 ? std::min(default_max_tokens, room) : room;
  }
  return OkStatus();
}

}  // namespace

ApiServer::ApiServer(ApiServerOptions options, MetricsRegistry* registry)
    : options_(std::move(options)),
      registry_(registry),
      metrics_(registry),
      created_unix_s_(UnixSeconds()),
      system_fingerprint_("fp_" + std::string(kGitSha).substr(0, 10)),
      max_model_len_(options_.max_model_len) {}

void ApiServer::SetBackend(decode::GenerationService* service, const TextCodec* codec) {
  codec_.store(codec);
  service_.store(service);
}

void ApiServer::StartDraining() { draining_.store(true); }

Status ApiServer::Backend(decode::GenerationService** service, const TextCodec** codec) const {
  if (draining_.load()) return UnavailableError("the server is shutting down");
  *service = service_.load();
  *codec = codec_.load();
  if (*service == nullptr || *codec == nullptr) {
    return UnavailableError("the model is still loading; retry shortly");
  }
  if (!(*service)->Ready()) {
    return UnavailableError((*service)->NotReadyReason() + "; retry shortly");
  }
  return OkStatus();
}

Status ApiServer::CheckApiKey(const HttpRequest& request) const {
  if (options_.api_key.empty()) return OkStatus();
  std::string auth = request.Header("authorization");
  const std::string prefix = "Bearer ";
  if (auth.empty()) {
    return UnauthenticatedError("Missing API key: send 'Authorization: Bearer <key>'.");
  }
  if (auth.compare(0, prefix.size(), prefix) != 0 ||
      auth.substr(prefix.size()) != options_.api_key) {
    return UnauthenticatedError("Incorrect API key provided.");
  }
  return OkStatus();
}

void ApiServer::RespondJson(const std::shared_ptr<Exchange>& exchange, const std::string& endpoint,
                            int http_status, const std::string& body) {
  HttpResponse res{http_status, "application/json", body, {}};
  if (http_status == 429 || http_status == 503) {
    res.headers.emplace_back("Retry-After", std::to_string(options_.retry_after_seconds));
  }
  metrics_.RecordRequest(endpoint, http_status);
  exchange->Respond(std::move(res));
}

void ApiServer::RespondError(const std::shared_ptr<Exchange>& exchange, const std::string& endpoint,
                             const Status& status) {
  RespondJson(exchange, endpoint, HttpStatusCode(status.code()), Dump(ErrorJson(status)));
}

void ApiServer::Handle(HttpRequest request, std::shared_ptr<Exchange> exchange) {
  const std::string& path = request.path;
  const bool is_api = path.rfind("/v1/", 0) == 0;
  if (is_api) {
    if (Status st = CheckApiKey(request); !st.ok()) {
      RespondError(exchange, path.rfind("/v1/models", 0) == 0 ? "/v1/models" : path, st);
      return;
    }
  }
  auto method_is = [&](const char* m) { return request.method == m; };
  if (path == kChatEndpoint || path == kCompletionEndpoint) {
    if (!method_is("POST")) {
      RespondError(exchange, path, InvalidArgumentError("use POST for " + path));
      return;
    }
    if (path == kChatEndpoint) {
      HandleChat(request, exchange);
    } else {
      HandleCompletion(request, exchange);
    }
  } else if (path == "/v1/models" || path.rfind("/v1/models/", 0) == 0) {
    HandleModels(request, exchange);
  } else if (path == "/health" || path == "/healthz" || path == "/ready") {
    HandleHealth(exchange);
  } else if (path == "/metrics") {
    HandleMetrics(exchange);
  } else if (path == "/version") {
    HandleVersion(exchange);
  } else {
    RespondError(exchange, "other", NotFoundError("no route for " + request.method + " " + path));
  }
}

void ApiServer::HandleModels(const HttpRequest& request,
                             const std::shared_ptr<Exchange>& exchange) {
  if (request.path == "/v1/models") {
    RespondJson(
        exchange, "/v1/models", 200,
        Dump(ModelListJson(options_.served_model_name, created_unix_s_, max_model_len_.load())));
    return;
  }
  std::string id = request.path.substr(std::string("/v1/models/").size());
  if (id != options_.served_model_name) {
    RespondError(exchange, "/v1/models", NotFoundError("The model '" + id + "' does not exist"));
    return;
  }
  RespondJson(exchange, "/v1/models", 200,
              Dump(ModelJson(id, created_unix_s_, max_model_len_.load())));
}

void ApiServer::HandleHealth(const std::shared_ptr<Exchange>& exchange) {
  decode::GenerationService* service = nullptr;
  const TextCodec* codec = nullptr;
  Status st = Backend(&service, &codec);
  if (!st.ok()) {
    RespondJson(
        exchange, "/health", 503,
        Dump({{"status", draining_.load() ? "draining" : "loading"}, {"detail", st.message()}}));
    return;
  }
  RespondJson(exchange, "/health", 200, Dump({{"status", "ok"}}));
}

void ApiServer::HandleMetrics(const std::shared_ptr<Exchange>& exchange) {
  metrics_.SetInFlightRequests(num_in_flight_.load());
  decode::GenerationService* service = service_.load();
  std::string text;
  if (service != nullptr) {
    decode::GenerationStats stats = service->Stats();
    text = metrics_.Scrape(&stats);
  } else {
    text = metrics_.Scrape(nullptr);
  }
  metrics_.RecordRequest("/metrics", 200);
  exchange->Respond({200, "text/plain; version=0.0.4; charset=utf-8", std::move(text), {}});
}

void ApiServer::HandleVersion(const std::shared_ptr<Exchange>& exchange) {
  RespondJson(exchange, "/version", 200, Dump({{"version", kVersion}, {"git_sha", kGitSha}}));
}

void ApiServer::HandleChat(const HttpRequest& request, const std::shared_ptr<Exchange>& exchange) {
  const int64_t arrival_ns = MonotonicNanos();
  // Not ready (loading, draining) answers 503 before anything else is looked at.
  decode::GenerationService* service = nullptr;
  const TextCodec* codec = nullptr;
  if (Status st = Backend(&service, &codec); !st.ok()) {
    return RespondError(exchange, kChatEndpoint, st);
  }
  auto parsed = ParseChatRequest(request.body);
  if (!parsed.ok()) return RespondError(exchange, kChatEndpoint, parsed.status());
  ChatRequest& req = *parsed;
  if (req.params.model != options_.served_model_name) {
    return RespondError(exchange, kChatEndpoint,
                        NotFoundError("The model '" + req.params.model + "' does not exist"));
  }
  auto text = codec->RenderChat(req.messages, req.tools, req.add_generation_prompt,
                                req.chat_template_kwargs);
  if (!text.ok()) return RespondError(exchange, kChatEndpoint, text.status());
  auto ids = codec->Encode(*text, codec->chat_adds_special_tokens());
  if (!ids.ok()) return RespondError(exchange, kChatEndpoint, ids.status());
  int max_tokens = 0;
  if (Status st = FitContext(static_cast<int>(ids->size()), req.params.max_tokens, 0,
                             max_model_len_.load(), &max_tokens);
      !st.ok()) {
    return RespondError(exchange, kChatEndpoint, st);
  }
  JobSpec spec;
  spec.chat = true;
  spec.stream = req.params.stream;
  spec.include_usage = req.params.stream && req.params.include_usage;
  spec.want_logprobs = req.logprobs;
  spec.envelope = {"chatcmpl-" + RandomHex(24), UnixSeconds(), req.params.model,
                   system_fingerprint_};
  spec.stop = req.params.stop;
  spec.arrival_ns = arrival_ns;
  spec.retry_after_seconds = options_.retry_after_seconds;
  if (options_.request_timeout_ms > 0) {
    spec.deadline_ns = arrival_ns + options_.request_timeout_ms * 1'000'000;
  }
  for (int i = 0; i < req.params.n; ++i) {
    JobChoice c;
    c.prompt_token_ids = *ids;
    c.sampling = req.params.sampling;
    c.sampling.max_tokens = max_tokens;
    if (c.sampling.seed) c.sampling.seed = *c.sampling.seed + static_cast<uint64_t>(i);
    spec.choices.push_back(std::move(c));
  }
  num_in_flight_.fetch_add(1);
  auto job = std::make_shared<CompletionJob>(std::move(spec), *codec, service, &metrics_, exchange,
                                             [this](int status) {
                                               metrics_.RecordRequest(kChatEndpoint, status);
                                               num_in_flight_.fetch_sub(1);
                                             });
  if (Status st = job->Start(); !st.ok()) {
    num_in_flight_.fetch_sub(1);
    RespondError(exchange, kChatEndpoint, st);
  }
}

void ApiServer::HandleCompletion(const HttpRequest& request,
                                 const std::shared_ptr<Exchange>& exchange) {
  const int64_t arrival_ns = MonotonicNanos();
  decode::GenerationService* service = nullptr;
  const TextCodec* codec = nullptr;
  if (Status st = Backend(&service, &codec); !st.ok()) {
    return RespondError(exchange, kCompletionEndpoint, st);
  }
  auto parsed = ParseCompletionRequest(request.body);
  if (!parsed.ok()) return RespondError(exchange, kCompletionEndpoint, parsed.status());
  CompletionRequest& req = *parsed;
  if (req.params.model != options_.served_model_name) {
    return RespondError(exchange, kCompletionEndpoint,
                        NotFoundError("The model '" + req.params.model + "' does not exist"));
  }
  JobSpec spec;
  spec.chat = false;
  spec.stream = req.params.stream;
  spec.include_usage = req.params.stream && req.params.include_usage;
  spec.want_logprobs = req.logprobs.has_value();
  spec.envelope = {"cmpl-" + RandomHex(24), UnixSeconds(), req.params.model, system_fingerprint_};
  spec.stop = req.params.stop;
  spec.arrival_ns = arrival_ns;
  spec.retry_after_seconds = options_.retry_after_seconds;
  if (options_.request_timeout_ms > 0) {
    spec.deadline_ns = arrival_ns + options_.request_timeout_ms * 1'000'000;
  }
  for (size_t p = 0; p < req.prompts.size(); ++p) {
    std::vector<int32_t> ids;
    std::string echo_text;
    if (const auto* text = std::get_if<std::string>(&req.prompts[p])) {
      auto encoded = codec->Encode(*text, /*add_special_tokens=*/true);
      if (!encoded.ok()) return RespondError(exchange, kCompletionEndpoint, encoded.status());
      ids = std::move(*encoded);
      if (req.echo) echo_text = *text;
    } else {
      ids = std::get<std::vector<int32_t>>(req.prompts[p]);
      for (int32_t id : ids) {
        if (id >= codec->vocab_size()) {
          return RespondError(exchange, kCompletionEndpoint,
                              InvalidArgumentError("'prompt': token id " + std::to_string(id) +
                                                   " is outside the vocabulary (size " +
                                                   std::to_string(codec->vocab_size()) + ")"));
        }
      }
      if (req.echo) echo_text = codec->Decode(ids);
    }
    int max_tokens = 0;
    if (Status st =
            FitContext(static_cast<int>(ids.size()), req.params.max_tokens,
                       options_.default_completion_max_tokens, max_model_len_.load(), &max_tokens);
        !st.ok()) {
      return RespondError(exchange, kCompletionEndpoint, st);
    }
    for (int i = 0; i < req.params.n; ++i) {
      JobChoice c;
      c.prompt_index = static_cast<int>(p);
      c.prompt_token_ids = ids;
      c.echo_text = echo_text;
      c.sampling = req.params.sampling;
      c.sampling.max_tokens = max_tokens;
      if (c.sampling.seed) c.sampling.seed = *c.sampling.seed + static_cast<uint64_t>(i);
      spec.choices.push_back(std::move(c));
    }
  }
  num_in_flight_.fetch_add(1);
  auto job = std::make_shared<CompletionJob>(std::move(spec), *codec, service, &metrics_, exchange,
                                             [this](int status) {
                                               metrics_.RecordRequest(kCompletionEndpoint, status);
                                               num_in_flight_.fetch_sub(1);
                                             });
  if (Status st = job->Start(); !st.ok()) {
    num_in_flight_.fetch_sub(1);
    RespondError(exchange, kCompletionEndpoint, st);
  }
}

}  // namespace strata::server
