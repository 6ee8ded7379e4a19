#include "kvcache/pool_metrics.h"

#include <gtest/gtest.h>

#include <string>

namespace strata::kvcache {
namespace {

// The value of the sample `name{instance="<instance>"}` in the registry's text; -1 if absent.
double Sample(MetricsRegistry& registry, const std::string& name, const std::string& instance) {
  const std::string text = registry.SerializeText();
  const std::string key = name + "{instance=\"" + instance + "\"} ";
  const size_t at = text.find(key);
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + key.size()));
}

TEST(KvPoolMetricsExporterTest, GaugesFollowTheFiguresAndCountersAdvanceByWhatIsNew) {
  MetricsRegistry registry;
  KvPoolMetricsExporter exporter(&registry);
  v1::KvPoolLoad a;
  a.set_capacity_bytes(1 << 20);
  a.set_held_blocks(3);
  a.set_hit_blocks(10);
  a.set_bytes_in(4096);
  exporter.Export("kvcache-0", a);
  v1::KvPoolLoad b;
  b.set_capacity_bytes(2 << 20);
  b.set_hit_blocks(1);
  exporter.Export("kvcache-1", b);
  EXPECT_EQ(Sample(registry, "strata_kvpool_capacity_bytes", "kvcache-0"), 1 << 20);
  EXPECT_EQ(Sample(registry, "strata_kvpool_capacity_bytes", "kvcache-1"), 2 << 20);
  EXPECT_EQ(Sample(registry, "strata_kvpool_blocks", "kvcache-0"), 3);
  EXPECT_EQ(Sample(registry, "strata_kvpool_hit_blocks_total", "kvcache-0"), 10);
  EXPECT_EQ(Sample(registry, "strata_kvpool_in_bytes_total", "kvcache-0"), 4096);
  EXPECT_EQ(Sample(registry, "strata_kvpool_hit_blocks_total", "kvcache-1"), 1);

  a.set_held_blocks(1);  // evicted
  a.set_hit_blocks(15);
  a.set_evictions(2);
  exporter.Export("kvcache-0", a);
  exporter.Export("kvcache-0", a);  // the same figures again: counters stay
  EXPECT_EQ(Sample(registry, "strata_kvpool_blocks", "kvcache-0"), 1);
  EXPECT_EQ(Sample(registry, "strata_kvpool_hit_blocks_total", "kvcache-0"), 15);
  EXPECT_EQ(Sample(registry, "strata_kvpool_evictions_total", "kvcache-0"), 2);
  EXPECT_EQ(Sample(registry, "strata_kvpool_in_bytes_total", "kvcache-0"), 4096);
}

TEST(KvPoolMetricsExporterTest, APoolThatRestartedCountsOnFromItsNewFigures) {
  MetricsRegistry registry;
  KvPoolMetricsExporter exporter(&registry);
  v1::KvPoolLoad before;
  before.set_hit_blocks(100);
  exporter.Export("kvcache-0", before);
  v1::KvPoolLoad restarted;
  restarted.set_hit_blocks(7);  // its counts began again at 0
  exporter.Export("kvcache-0", restarted);
  EXPECT_EQ(Sample(registry, "strata_kvpool_hit_blocks_total", "kvcache-0"), 107)
      << "a counter never goes back";
  restarted.set_hit_blocks(9);
  exporter.Export("kvcache-0", restarted);
  EXPECT_EQ(Sample(registry, "strata_kvpool_hit_blocks_total", "kvcache-0"), 109);
}

TEST(KvPoolMetricsExporterTest, APoolTheRouterDroppedIsDownWithItsLastFigures) {
  MetricsRegistry registry;
  KvPoolMetricsExporter exporter(&registry);
  v1::KvPoolLoad a, b;
  a.set_capacity_bytes(1 << 20);
  b.set_capacity_bytes(2 << 20);
  b.set_hit_blocks(5);
  exporter.ExportAll({{"kvcache-0", a}, {"kvcache-1", b}});
  EXPECT_EQ(Sample(registry, "strata_kvpool_up", "kvcache-0"), 1);
  EXPECT_EQ(Sample(registry, "strata_kvpool_up", "kvcache-1"), 1);
  exporter.ExportAll({{"kvcache-0", a}});
  EXPECT_EQ(Sample(registry, "strata_kvpool_up", "kvcache-0"), 1);
  EXPECT_EQ(Sample(registry, "strata_kvpool_up", "kvcache-1"), 0);
  EXPECT_EQ(Sample(registry, "strata_kvpool_hit_blocks_total", "kvcache-1"), 5);
  exporter.ExportAll({{"kvcache-0", a}, {"kvcache-1", b}});  // back (restarted, or a late beat)
  EXPECT_EQ(Sample(registry, "strata_kvpool_up", "kvcache-1"), 1);
  EXPECT_EQ(Sample(registry, "strata_kvpool_hit_blocks_total", "kvcache-1"), 5);
}

}  // namespace
}  // namespace strata::kvcache
