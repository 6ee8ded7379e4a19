// What a run writes: the result JSON (field names as `vllm bench serve` uses them, plus a
// "strata" header), per-request JSONL, the summary table, and for sweeps a CSV and an SVG plot.
#pragma once

#include <nlohmann/json.hpp>

#include <deque>
#include <string>
#include <vector>

#include "bench/driver/metrics.h"
#include "bench/driver/request.h"
#include "common/status.h"

namespace strata::bench {

// The load one run (or sweep point) put on the server.
struct PointSettings {
  double request_rate = 0;  // +inf = unlimited
  double burstiness = 1.0;
  int max_concurrency = 0;  // 0 = unlimited
  int64_t num_prompts = 0;
  std::string label;  // sweep point label ("rate=4", "concurrency=8"); "" for single runs
};

// Who ran what against whom.
struct RunHeader {
  std::string date;     // "YYYYMMDD-HHMMSS" local time, as vLLM names results
  std::string backend;  // "openai-chat" or "openai" (vLLM's names for the two endpoints)
  std::string model_id;
  std::string tokenizer_id;
  std::string git_sha;
  std::string version;
  nlohmann::json server_version;  // the server's /version body, or null
  nlohmann::json settings;        // every setting of the run
};

std::string NowDateString();

// Metric field names: "{mean,median,std,p90,p99,p99.9}_{name}_ms".
nlohmann::json ResultJson(const RunHeader& header, const PointSettings& point,
                          const Summary& summary, const Slo& slo);

// One JSON object per request, in release order. Times are ms relative to `start_ns`.
Status WriteRequestsJsonl(const std::string& path, const std::deque<RequestRecord>& records,
                          int64_t start_ns);

Status WriteTextFile(const std::string& path, const std::string& text);

// The summary table printed at the end, laid out like vLLM's.
std::string SummaryTable(const PointSettings& point, const Summary& summary, const Slo& slo);

struct SweepPoint {
  PointSettings point;
  Summary summary;
};

// One row per point: the load, throughputs, latency percentiles, goodput and SLO attainment.
std::string SweepCsv(const std::vector<SweepPoint>& points, const Slo& slo);

// Two panels, output throughput (tok/s) against p99 TTFT and against p99 TPOT, points in sweep
// order, the SLO (when given) as a dashed line and the first point past it marked.
std::string SweepSvg(const std::vector<SweepPoint>& points, const Slo& slo,
                     const std::string& title);

}  // namespace strata::bench
