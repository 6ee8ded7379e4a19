#include "server/server_metrics.h"

#include <algorithm>
#include <set>

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
                                             "Prompt tokens looked up in the prefix cache")),
      kv_pools_(registry) {}

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
    for (const decode::ExpertParallelStats& ep : stats->expert_parallel) SetExpertParallel(ep);
    kv_pools_.ExportAll(stats->kv_pools);
    SetInstances(stats->instances);
    for (const auto& [instance, routed] : stats->requests_routed) {
      int64_t& last = last_routed_[instance];
      prometheus::Counter& counter = registry_->Counter(
          "strata_router_requests_total",
          "Requests the router sent to a prefill or decode instance (retries count again)",
          {{"instance", instance}});
      if (routed > last) counter.Increment(static_cast<double>(routed - last));
      last = std::max(last, routed);
    }
    if (stats->prefix_cache_query_tokens > last_query_tokens_) {
      prefix_query_tokens_.Increment(
          static_cast<double>(stats->prefix_cache_query_tokens - last_query_tokens_));
      last_query_tokens_ = stats->prefix_cache_query_tokens;
    }
  }
  return registry_->SerializeText();
}

void ServerMetrics::SetInstances(const std::vector<decode::InstanceStats>& instances) {
  constexpr const char* kUp = "strata_instance_up";
  constexpr const char* kUpHelp =
      "1 while the instance is registered with the router, 0 once dropped";
  std::set<std::string> live;
  for (const decode::InstanceStats& in : instances) {
    live.insert(in.id);
    instance_roles_[in.id] = in.role;
    const MetricsRegistry::Labels labels = {{"instance", in.id}, {"role", in.role}};
    auto set = [&](const char* name, const char* help, double value) {
      registry_->Gauge(name, help, labels).Set(value);
    };
    set(kUp, kUpHelp, 1);
    set("strata_instance_kv_blocks_total", "KV blocks of the instance",
        static_cast<double>(in.kv_blocks_total));
    set("strata_instance_kv_blocks_used", "KV blocks the instance has in use",
        static_cast<double>(in.kv_blocks_used));
    set("strata_instance_kv_usage_ratio", "Share of the instance's KV blocks in use",
        in.kv_blocks_total > 0
            ? static_cast<double>(in.kv_blocks_used) / static_cast<double>(in.kv_blocks_total)
            : 0.0);
    set("strata_instance_requests_running", "Requests the instance runs", in.running);
    set("strata_instance_requests_waiting", "Requests the instance has queued", in.waiting);
    set("strata_instance_queued_prompt_tokens", "Prompt tokens the instance has queued",
        static_cast<double>(in.queued_tokens));
  }
  for (const auto& [id, role] : instance_roles_) {
    if (live.count(id) != 0) continue;
    registry_->Gauge(kUp, kUpHelp, {{"instance", id}, {"role", role}}).Set(0);
  }
}

void ServerMetrics::SetExpertParallel(const decode::ExpertParallelStats& ep) {
  const MetricsRegistry::Labels instance = {{"instance", ep.instance_id}};
  auto set = [&](const char* name, const char* help, double value) {
    registry_->Gauge(name, help, instance).Set(value);
  };
  set("strata_ep_ranks", "EP ranks of the instance", ep.ranks);
  set("strata_ep_max_mean_load_ratio",
      "Largest over mean tokens received by a rank, worst MoE layer (1 = even)",
      ep.max_mean_load_ratio);
  set("strata_ep_moe_rounds", "MoE layers run through dispatch and combine (rank 0)",
      static_cast<double>(ep.moe_rounds));
  set("strata_ep_dispatch_seconds", "Time in dispatch, total (rank 0)", ep.dispatch_seconds);
  set("strata_ep_combine_seconds", "Time in combine, total (rank 0)", ep.combine_seconds);
  set("strata_ep_wait_seconds", "Time waiting for peer ranks, total (rank 0)", ep.wait_seconds);
  set("strata_ep_overlap_fraction",
      "Share of the wait for peers during which the other microbatch computed (rank 0)",
      ep.overlap_fraction);
  set("strata_ep_steps", "Forward steps (rank 0)", static_cast<double>(ep.steps));
  set("strata_ep_microbatched_steps", "Steps split into two microbatches (rank 0)",
      static_cast<double>(ep.microbatched_steps));
  for (int l = 0; l < ep.layers; ++l) {
    for (int r = 0; r < ep.ranks; ++r) {
      const size_t i = static_cast<size_t>(l) * ep.ranks + r;
      if (i >= ep.tokens_received.size()) break;
      registry_
          ->Gauge("strata_ep_tokens_received", "Tokens a rank's experts received in a MoE layer",
                  {{"instance", ep.instance_id},
                   {"layer", std::to_string(l)},
                   {"rank", std::to_string(r)}})
          .Set(static_cast<double>(ep.tokens_received[i]));
    }
  }
  for (size_t r = 0; r < ep.requests_per_rank.size(); ++r) {
    registry_
        ->Gauge("strata_ep_requests", "Requests rank 0 gave each rank of the instance",
                {{"instance", ep.instance_id}, {"rank", std::to_string(r)}})
        .Set(static_cast<double>(ep.requests_per_rank[r]));
  }
}

}  // namespace strata::server
