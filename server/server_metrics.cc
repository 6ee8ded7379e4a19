#include "server/server_metrics.h"

namespace strata::server {
namespace {

std::vector<double> TokenLatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56};
}

}  // namespace

ServerMetrics::ServerMetrics(MetricsRegistry* registry)
    : registry_(registry),
      ttft_(registry->Histogram("strata_time_to_first_token_seconds",
                                "Time from request arrival to its first generated token",
                                LatencyBucketsSeconds())),
      tpot_(registry->Histogram("strata_time_per_output_token_seconds",
                                "Mean time between generated tokens after the first, per request",
                                TokenLatencyBuckets())),
      e2e_(registry->Histogram("strata_e2e_request_latency_seconds",
                               "Time from request arrival to its last token",
                               LatencyBucketsSeconds())),
      queue_(registry->Histogram("strata_request_queue_time_seconds",
                                 "Time from arrival to submission to the generation engine",
                                 LatencyBucketsSeconds())),
      prompt_tokens_(registry->Counter("strata_prompt_tokens_total", "Prompt tokens processed")),
      generation_tokens_(
          registry->Counter("strata_generation_tokens_total", "Tokens generated and returned")),
      cached_prompt_tokens_(registry->Counter("strata_cached_prompt_tokens_total",
                                              "Prompt tokens served from the prefix cache")),
      in_flight_(
          registry->Gauge("strata_http_requests_in_flight", "Generation requests being served")),
      running_(registry->Gauge("strata_num_requests_running", "Sequences in the running batch")),
      waiting_(registry->Gauge("strata_num_requests_waiting",
                               "Sequences waiting for admission (queue depth)")),
      kv_blocks_total_(registry->Gauge("strata_kv_cache_blocks_total", "KV cache blocks")),
      kv_blocks_used_(registry->Gauge("strata_kv_cache_blocks_used", "KV cache blocks in use")),
      kv_usage_(registry->Gauge("strata_kv_cache_usage_ratio", "Fraction of KV blocks in use")),
      prefix_hit_tokens_(registry->Counter("strata_prefix_cache_hit_tokens_total",
                                           "Prompt tokens found in the prefix cache")),
      prefix_query_tokens_(registry->Counter("strata_prefix_cache_query_tokens_total",
                                             "Prompt tokens looked up in the prefix cache")) {}

void ServerMetrics::RecordRequest(const std::string& endpoint, int http_status) {
  registry_
      ->Counter("strata_http_requests_total", "HTTP requests by endpoint and status code",
                {{"endpoint", endpoint}, {"status", std::to_string(http_status)}})
      .Increment();
}

void ServerMetrics::RecordTimeToFirstToken(double seconds) { ttft_.Observe(seconds); }
void ServerMetrics::RecordTimePerOutputToken(double seconds) { tpot_.Observe(seconds); }
void ServerMetrics::RecordEndToEnd(double seconds) { e2e_.Observe(seconds); }
void ServerMetrics::RecordQueueTime(double seconds) { queue_.Observe(seconds); }
void ServerMetrics::AddPromptTokens(int64_t n) { prompt_tokens_.Increment(static_cast<double>(n)); }
void ServerMetrics::AddGenerationTokens(int64_t n) {
  generation_tokens_.Increment(static_cast<double>(n));
}
void ServerMetrics::AddCachedPromptTokens(int64_t n) {
  cached_prompt_tokens_.Increment(static_cast<double>(n));
}
void ServerMetrics::SetInFlightRequests(int n) { in_flight_.Set(n); }

std::string ServerMetrics::Scrape(const decode::GenerationStats* stats) {
  if (stats != nullptr) {
    std::lock_guard lock(mu_);
    running_.Set(stats->num_running);
    waiting_.Set(stats->num_waiting);
    kv_blocks_total_.Set(static_cast<double>(stats->kv_blocks_total));
    kv_blocks_used_.Set(static_cast<double>(stats->kv_blocks_used));
    kv_usage_.Set(stats->kv_blocks_total > 0 ? static_cast<double>(stats->kv_blocks_used) /
                                                   static_cast<double>(stats->kv_blocks_total)
                                             : 0.0);
    if (stats->prefix_cache_hit_tokens > last_hit_tokens_) {
      prefix_hit_tokens_.Increment(
          static_cast<double>(stats->prefix_cache_hit_tokens - last_hit_tokens_));
      last_hit_tokens_ = stats->prefix_cache_hit_tokens;
    }
    if (stats->prefix_cache_query_tokens > last_query_tokens_) {
      prefix_query_tokens_.Increment(
          static_cast<double>(stats->prefix_cache_query_tokens - last_query_tokens_));
      last_query_tokens_ = stats->prefix_cache_query_tokens;
    }
  }
  return registry_->SerializeText();
}

}  // namespace strata::server
