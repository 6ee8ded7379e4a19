// The server's Prometheus metrics (names per STYLE.md habit 11: strata_ prefix, units in the
// name). Request-level figures are recorded as requests finish; engine gauges (running,
// waiting, KV usage, prefix-cache hits) and, in cluster mode, the EP groups' and KV pools'
// figures are refreshed from GenerationService::Stats() on each scrape. Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/metrics.h"
#include "decode/generation.h"
#include "kvcache/pool_metrics.h"

namespace strata::server {

class ServerMetrics {
 public:
  explicit ServerMetrics(MetricsRegistry* registry);

  // One finished HTTP request on a generation or other endpoint, by status code.
  void RecordRequest(const std::string& endpoint, int http_status);
  void RecordTimeToFirstToken(double seconds);
  void RecordTimePerOutputToken(double seconds);
  void RecordEndToEnd(double seconds);
  void RecordQueueTime(double seconds);
  void AddPromptTokens(int64_t n);
  void AddGenerationTokens(int64_t n);
  void AddCachedPromptTokens(int64_t n);
  void SetInFlightRequests(int n);

  // Refreshes engine gauges from `stats` and serializes the registry.
  std::string Scrape(const decode::GenerationStats* stats);

 private:
  // strata_ep_* gauges of one EP instance (labels: instance, and layer / rank where per rank).
  void SetExpertParallel(const decode::ExpertParallelStats& ep);
  // strata_instance_* of the registered instances; those gone keep their last figures, up 0.
  void SetInstances(const std::vector<decode::InstanceStats>& instances);
  MetricsRegistry* registry_;
  prometheus::Histogram& ttft_;
  prometheus::Histogram& tpot_;
  prometheus::Histogram& e2e_;
  prometheus::Histogram& queue_;
  prometheus::Counter& prompt_tokens_;
  prometheus::Counter& generation_tokens_;
  prometheus::Counter& cached_prompt_tokens_;
  prometheus::Gauge& in_flight_;
  prometheus::Gauge& running_;
  prometheus::Gauge& waiting_;
  prometheus::Gauge& kv_blocks_total_;
  prometheus::Gauge& kv_blocks_used_;
  prometheus::Gauge& kv_usage_;
  prometheus::Counter& prefix_hit_tokens_;
  prometheus::Counter& prefix_query_tokens_;
  std::mutex mu_;
  int64_t last_hit_tokens_ = 0;
  int64_t last_query_tokens_ = 0;
  kvcache::KvPoolMetricsExporter kv_pools_;     // strata_kvpool_* of the pools given --router
  std::map<std::string, int64_t> last_routed_;  // strata_router_requests_total, by instance
  std::map<std::string, std::string> instance_roles_;  // strata_instance_* series, by instance
};

}  // namespace strata::server
