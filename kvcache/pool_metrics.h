// The strata_kvpool_* metrics of KV pool instances, from their figures (v1::KvPoolLoad). A pool's
// own /metrics (`strata kvcache --metrics-port`) and the server's (pools that report to its
// router, `strata kvcache --router`) name and describe them alike, labelled by instance.
#pragma once

#include <map>
#include <string>

#include "common/metrics.h"
#include "proto/registry.pb.h"

namespace strata::kvcache {

// Not thread-safe: one exporter per registry, called under its owner's lock.
class KvPoolMetricsExporter {
 public:
  explicit KvPoolMetricsExporter(MetricsRegistry* registry) : registry_(registry) {}

  // Sets the gauges of `instance` and advances its counters to `now` (a pool that restarted
  // under the same id, whose counts went back, counts on from its new figures).
  void Export(const std::string& instance, const v1::KvPoolLoad& now);
  // Export() of each of `pools` (by instance); a pool exported before and missing now (the
  // router dropped it) keeps its last figures with strata_kvpool_up 0.
  void ExportAll(const std::map<std::string, v1::KvPoolLoad>& pools);

 private:
  MetricsRegistry* registry_;
  std::map<std::string, v1::KvPoolLoad> exported_;  // by instance: what the counters hold
};

}  // namespace strata::kvcache
