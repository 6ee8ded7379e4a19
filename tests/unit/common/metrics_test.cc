#include "common/metrics.h"

#include <gtest/gtest.h>

namespace strata {
namespace {

TEST(MetricsTest, TextExposition) {
  MetricsRegistry m;
  m.Counter("strata_requests_total", "Requests by status", {{"status", "200"}}).Increment(3);
  m.Gauge("strata_kv_usage_ratio", "KV usage").Set(0.25);
  auto& h = m.Histogram("strata_time_to_first_token_seconds", "TTFT", {0.1, 1.0});
  h.Observe(0.05);
  h.Observe(0.5);
  h.Observe(5.0);
  std::string text = m.SerializeText();
  EXPECT_NE(text.find("# HELP strata_requests_total Requests by status"), std::string::npos);
  EXPECT_NE(text.find("# TYPE strata_requests_total counter"), std::string::npos);
  EXPECT_NE(text.find("strata_requests_total{status=\"200\"} 3"), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE strata_kv_usage_ratio gauge"), std::string::npos);
  EXPECT_NE(text.find("strata_kv_usage_ratio 0.25"), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE strata_time_to_first_token_seconds histogram"), std::string::npos);
  EXPECT_NE(text.find("strata_time_to_first_token_seconds_bucket{le=\"0.1\"} 1"),
            std::string::npos) << text;
  EXPECT_NE(text.find("strata_time_to_first_token_seconds_bucket{le=\"1\"} 2"),
            std::string::npos) << text;
  EXPECT_NE(text.find("strata_time_to_first_token_seconds_bucket{le=\"+Inf\"} 3"),
            std::string::npos) << text;
  EXPECT_NE(text.find("strata_time_to_first_token_seconds_count 3"), std::string::npos);
}

TEST(MetricsTest, SameNameAndLabelsIsTheSameMetric) {
  MetricsRegistry m;
  m.Counter("strata_x_total", "x", {{"a", "1"}}).Increment();
  m.Counter("strata_x_total", "x", {{"a", "1"}}).Increment();
  m.Counter("strata_x_total", "x", {{"a", "2"}}).Increment();
  std::string text = m.SerializeText();
  EXPECT_NE(text.find("strata_x_total{a=\"1\"} 2"), std::string::npos) << text;
  EXPECT_NE(text.find("strata_x_total{a=\"2\"} 1"), std::string::npos) << text;
}

}  // namespace
}  // namespace strata
