#include "kvcache/pool_metrics.h"

namespace strata::kvcache {
namespace {

constexpr const char* kUp = "strata_kvpool_up";
constexpr const char* kUpHelp = "1 while the pool reports its figures, 0 once it stopped";

}  // namespace

void KvPoolMetricsExporter::Export(const std::string& instance, const v1::KvPoolLoad& now) {
  const MetricsRegistry::Labels labels{{"instance", instance}};
  const v1::KvPoolLoad& last = exported_[instance];
  auto gauge = [&](const char* name, const char* help, uint64_t value) {
    registry_->Gauge(name, help, labels).Set(static_cast<double>(value));
  };
  auto counter = [&](const char* name, const char* help, uint64_t value, uint64_t exported) {
    auto& c = registry_->Counter(name, help, labels);
    const uint64_t delta = value >= exported ? value - exported : value;  // restarted: from 0
    if (delta > 0) c.Increment(static_cast<double>(delta));
  };
  gauge(kUp, kUpHelp, 1);
  gauge("strata_kvpool_capacity_bytes", "Bytes of the pool's arena", now.capacity_bytes());
  gauge("strata_kvpool_used_bytes", "Bytes of held and in-flight blocks", now.used_bytes());
  gauge("strata_kvpool_prefaulted_bytes", "Bytes of block memory faulted in ahead of Puts",
        now.prefaulted_bytes());
  gauge("strata_kvpool_blocks", "Blocks held", now.held_blocks());
  gauge("strata_kvpool_leased_blocks", "Blocks under a read lease", now.leased_blocks());
  gauge("strata_kvpool_leases", "Active read leases", now.active_leases());
  counter("strata_kvpool_hit_blocks_total", "Lookup blocks found", now.hit_blocks(),
          last.hit_blocks());
  counter("strata_kvpool_miss_blocks_total", "Lookup blocks not found", now.miss_blocks(),
          last.miss_blocks());
  counter("strata_kvpool_in_bytes_total", "Bytes stored by Puts", now.bytes_in(), last.bytes_in());
  counter("strata_kvpool_out_bytes_total", "Bytes read by readers (leased or direct)",
          now.bytes_out(), last.bytes_out());
  counter("strata_kvpool_evictions_total", "Blocks evicted to make room", now.evictions(),
          last.evictions());
  counter("strata_kvpool_leases_total", "Read leases granted", now.leases_granted(),
          last.leases_granted());
  counter("strata_kvpool_expired_leases_total", "Read leases that expired unreleased",
          now.leases_expired(), last.leases_expired());
  counter("strata_kvpool_failed_blocks_total", "Put blocks whose read failed", now.failed_blocks(),
          last.failed_blocks());
  counter("strata_kvpool_direct_read_blocks_total",
          "Blocks read by same-host readers without a lease", now.direct_read_blocks(),
          last.direct_read_blocks());
  exported_[instance] = now;
}

void KvPoolMetricsExporter::ExportAll(const std::map<std::string, v1::KvPoolLoad>& pools) {
  for (const auto& [instance, load] : pools) Export(instance, load);
  for (const auto& [instance, load] : exported_) {
    if (pools.count(instance) != 0) continue;
    registry_->Gauge(kUp, kUpHelp, {{"instance", instance}}).Set(0);
  }
}

}  // namespace strata::kvcache
