// ServerMetrics' cluster series: strata_instance_* from the router's view of each prefill and
// decode instance, and strata_router_requests_total.
#include "server/server_metrics.h"

#include <gtest/gtest.h>

namespace strata::server {
namespace {

decode::InstanceStats Instance(const std::string& id, const std::string& role, int64_t used) {
  decode::InstanceStats in;
  in.id = id;
  in.role = role;
  in.kv_blocks_total = 200;
  in.kv_blocks_used = used;
  in.running = 3;
  in.waiting = 1;
  in.queued_tokens = role == "prefill" ? 512 : 0;
  return in;
}

void ExpectLine(const std::string& text, const std::string& line) {
  EXPECT_NE(text.find(line + "\n"), std::string::npos) << line << "\n" << text;
}

TEST(ServerMetricsTest, InstancesAndRoutedRequests) {
  MetricsRegistry registry;
  ServerMetrics metrics(&registry);
  decode::GenerationStats stats;
  stats.instances = {Instance("prefill-0", "prefill", 10), Instance("decode-0", "decode", 50)};
  stats.requests_routed = {{"prefill-0", 5}, {"decode-0", 5}};
  std::string text = metrics.Scrape(&stats);
  ExpectLine(text, R"(strata_instance_up{instance="decode-0",role="decode"} 1)");
  ExpectLine(text, R"(strata_instance_kv_blocks_used{instance="decode-0",role="decode"} 50)");
  ExpectLine(text, R"(strata_instance_kv_blocks_total{instance="decode-0",role="decode"} 200)");
  ExpectLine(text, R"(strata_instance_kv_usage_ratio{instance="decode-0",role="decode"} 0.25)");
  ExpectLine(text, R"(strata_instance_requests_running{instance="prefill-0",role="prefill"} 3)");
  ExpectLine(text, R"(strata_instance_requests_waiting{instance="prefill-0",role="prefill"} 1)");
  ExpectLine(text,
             R"(strata_instance_queued_prompt_tokens{instance="prefill-0",role="prefill"} 512)");
  ExpectLine(text, R"(strata_router_requests_total{instance="prefill-0"} 5)");

  // decode-0 is dropped: its series stay with up 0; the counters never go back.
  stats.instances = {Instance("prefill-0", "prefill", 12)};
  stats.requests_routed = {{"prefill-0", 7}, {"decode-0", 5}};
  text = metrics.Scrape(&stats);
  ExpectLine(text, R"(strata_instance_up{instance="decode-0",role="decode"} 0)");
  ExpectLine(text, R"(strata_instance_up{instance="prefill-0",role="prefill"} 1)");
  ExpectLine(text, R"(strata_instance_kv_blocks_used{instance="prefill-0",role="prefill"} 12)");
  ExpectLine(text, R"(strata_router_requests_total{instance="prefill-0"} 7)");
  ExpectLine(text, R"(strata_router_requests_total{instance="decode-0"} 5)");

  // decode-0 registers again: up 1.
  stats.instances.push_back(Instance("decode-0", "decode", 0));
  text = metrics.Scrape(&stats);
  ExpectLine(text, R"(strata_instance_up{instance="decode-0",role="decode"} 1)");
}

}  // namespace
}  // namespace strata::server
