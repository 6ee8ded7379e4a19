#include "bench/driver/report.h"

#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>

namespace strata::bench {
namespace {

nlohmann::json RateJson(double rate) {
  return std::isinf(rate) ? nlohmann::json("inf") : nlohmann::json(rate);
}

void AddDistribution(nlohmann::json& j, const std::string& name, const Distribution& d) {
  j["mean_" + name + "_ms"] = d.mean;
  j["median_" + name + "_ms"] = d.median;
  j["std_" + name + "_ms"] = d.std;
  j["p90_" + name + "_ms"] = d.p90;
  j["p99_" + name + "_ms"] = d.p99;
  j["p99.9_" + name + "_ms"] = d.p999;
}

std::string Fixed(double v, int digits = 2) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

// "{:<40} {:<10}" as in vLLM's table.
void Row(std::ostringstream& out, const std::string& name, const std::string& value) {
  char buf[160];
  std::snprintf(buf, sizeof(buf), "%-40s %-10s\n", name.c_str(), value.c_str());
  out << buf;
}

// A title centred in a 50-wide line of `fill`.
void Banner(std::ostringstream& out, const std::string& title, char fill) {
  int width = 50;
  int pad = std::max(0, width - static_cast<int>(title.size()));
  out << std::string(pad / 2, fill) << title << std::string(pad - pad / 2, fill) << "\n";
}

void Section(std::ostringstream& out, const std::string& title, const std::string& name,
             const Distribution& d) {
  Banner(out, title, '-');
  Row(out, "Mean " + name + " (ms):", Fixed(d.mean));
  Row(out, "Median " + name + " (ms):", Fixed(d.median));
  Row(out, "P90 " + name + " (ms):", Fixed(d.p90));
  Row(out, "P99 " + name + " (ms):", Fixed(d.p99));
  Row(out, "P99.9 " + name + " (ms):", Fixed(d.p999));
}

}  // namespace

std::string NowDateString() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%d-%H%M%S", &tm);
  return buf;
}

nlohmann::json ResultJson(const RunHeader& header, const PointSettings& point, const Summary& s,
                          const Slo& slo) {
  nlohmann::json j;
  j["date"] = header.date;
  j["backend"] = header.backend;
  j["model_id"] = header.model_id;
  j["tokenizer_id"] = header.tokenizer_id;
  j["num_prompts"] = point.num_prompts;
  j["request_rate"] = RateJson(point.request_rate);
  j["burstiness"] = point.burstiness;
  j["max_concurrency"] =
      point.max_concurrency > 0 ? nlohmann::json(point.max_concurrency) : nlohmann::json();
  j["duration"] = s.duration_s;
  j["completed"] = s.completed;
  j["failed"] = s.failed;
  j["aborted"] = s.aborted;
  j["total_input_tokens"] = s.total_input_tokens;
  j["total_output_tokens"] = s.total_output_tokens;
  j["request_throughput"] = s.request_throughput;
  j["request_goodput"] = slo.any() ? nlohmann::json(s.request_goodput) : nlohmann::json();
  j["output_throughput"] = s.output_throughput;
  j["total_token_throughput"] = s.total_token_throughput;
  j["max_output_tokens_per_s"] = s.max_output_tokens_per_s;
  j["max_concurrent_requests"] = s.max_concurrent_requests;
  AddDistribution(j, "ttft", s.ttft_ms);
  AddDistribution(j, "tpot", s.tpot_ms);
  AddDistribution(j, "itl", s.itl_ms);
  AddDistribution(j, "e2el", s.e2el_ms);
  j["errors"] = s.errors;
  nlohmann::json slo_json = nlohmann::json::object();
  if (slo.ttft_ms > 0) slo_json["ttft_ms"] = slo.ttft_ms;
  if (slo.tpot_ms > 0) slo_json["tpot_ms"] = slo.tpot_ms;
  if (slo.e2el_ms > 0) slo_json["e2el_ms"] = slo.e2el_ms;
  j["strata"] = {{"git_sha", header.git_sha},
                 {"version", header.version},
                 {"server_version", header.server_version},
                 {"settings", header.settings},
                 {"point", point.label},
                 {"slo", slo_json},
                 {"good_requests", s.num_good},
                 {"slo_attainment", s.slo_attainment},
                 {"total_cached_tokens", s.total_cached_tokens}};
  return j;
}

Status WriteTextFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return UnavailableError("cannot write '" + path + "'");
  out << text;
  out.close();
  if (!out) return DataLossError("writing '" + path + "' failed");
  return OkStatus();
}

Status WriteRequestsJsonl(const std::string& path, const std::deque<RequestRecord>& records,
                          int64_t start_ns) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return UnavailableError("cannot write '" + path + "'");
  auto rel_ms = [start_ns](int64_t t) {
    return t == 0 ? nlohmann::json() : nlohmann::json((t - start_ns) * 1e-6);
  };
  for (const auto& r : records) {
    nlohmann::json itl = nlohmann::json::array();
    for (int64_t gap : r.itl_ns) itl.push_back(gap * 1e-6);
    nlohmann::json j = {
        {"index", r.index},
        {"input_len", r.input_len},
        {"max_tokens", r.max_tokens},
        {"output_tokens", r.output_tokens},
        {"token_chunks", r.num_chunks},
        {"usage_prompt_tokens",
         r.usage_prompt_tokens >= 0 ? nlohmann::json(r.usage_prompt_tokens) : nlohmann::json()},
        {"cached_tokens",
         r.cached_tokens >= 0 ? nlohmann::json(r.cached_tokens) : nlohmann::json()},
        {"scheduled_ms", rel_ms(r.scheduled_ns)},
        {"send_ms", rel_ms(r.send_ns)},
        {"first_token_ms", rel_ms(r.first_token_ns)},
        {"end_ms", rel_ms(r.end_ns)},
        {"ttft_ms", r.first_token_ns ? nlohmann::json(r.TtftMs()) : nlohmann::json()},
        {"tpot_ms", r.output_tokens > 1 ? nlohmann::json(r.TpotMs()) : nlohmann::json()},
        {"e2el_ms", r.E2eMs()},
        {"itl_ms", std::move(itl)},
        {"http_status", r.http_status},
        {"finish_reason", r.finish_reason},
        {"status", r.aborted ? "aborted" : (r.success ? "ok" : "failed")},
        {"error", r.error}};
    out << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
  out.close();
  if (!out) return DataLossError("writing '" + path + "' failed");
  return OkStatus();
}

std::string SummaryTable(const PointSettings& point, const Summary& s, const Slo& slo) {
  std::ostringstream out;
  Banner(out, " Serving Benchmark Result ", '=');
  Row(out, "Successful requests:", std::to_string(s.completed));
  Row(out, "Failed requests:", std::to_string(s.failed));
  if (s.aborted > 0) Row(out, "Aborted requests (by the driver):", std::to_string(s.aborted));
  Row(out, "Maximum request concurrency:",
      point.max_concurrency > 0 ? std::to_string(point.max_concurrency) : "None");
  Row(out, "Request rate configured (RPS):",
      std::isinf(point.request_rate) ? "inf" : Fixed(point.request_rate));
  Row(out, "Benchmark duration (s):", Fixed(s.duration_s));
  Row(out, "Total input tokens:", std::to_string(s.total_input_tokens));
  Row(out, "Total generated tokens:", std::to_string(s.total_output_tokens));
  if (s.total_cached_tokens > 0) {
    Row(out, "Total cached prompt tokens:", std::to_string(s.total_cached_tokens));
  }
  Row(out, "Request throughput (req/s):", Fixed(s.request_throughput));
  if (slo.any()) {
    Row(out, "Request goodput (req/s):", Fixed(s.request_goodput));
    Row(out, "SLO attainment (%):", Fixed(100.0 * s.slo_attainment));
  }
  Row(out, "Output token throughput (tok/s):", Fixed(s.output_throughput));
  Row(out, "Peak output token throughput (tok/s):", Fixed(s.max_output_tokens_per_s));
  Row(out, "Peak concurrent requests:", std::to_string(s.max_concurrent_requests));
  Row(out, "Total Token throughput (tok/s):", Fixed(s.total_token_throughput));
  Section(out, "Time to First Token", "TTFT", s.ttft_ms);
  Section(out, "Time per Output Token (excl. 1st token)", "TPOT", s.tpot_ms);
  Section(out, "Inter-token Latency", "ITL", s.itl_ms);
  Section(out, "End-to-end Latency", "E2EL", s.e2el_ms);
  out << std::string(50, '=') << "\n";
  for (const auto& e : s.errors) out << "error: " << e << "\n";
  return out.str();
}

std::string SweepCsv(const std::vector<SweepPoint>& points, const Slo& slo) {
  std::ostringstream out;
  out << "point,request_rate,burstiness,max_concurrency,num_prompts,completed,failed,aborted,"
         "duration_s,request_throughput,output_throughput,total_token_throughput,"
         "median_ttft_ms,p90_ttft_ms,p99_ttft_ms,median_tpot_ms,p90_tpot_ms,p99_tpot_ms,"
         "median_itl_ms,p99_itl_ms,median_e2el_ms,p99_e2el_ms,request_goodput,slo_attainment\n";
  for (const auto& p : points) {
    const Summary& s = p.summary;
    out << '"' << p.point.label << "\","
        << (std::isinf(p.point.request_rate) ? std::string("inf") : Fixed(p.point.request_rate, 4))
        << ',' << Fixed(p.point.burstiness, 4) << ',' << p.point.max_concurrency << ','
        << p.point.num_prompts << ',' << s.completed << ',' << s.failed << ',' << s.aborted << ','
        << Fixed(s.duration_s, 4) << ',' << Fixed(s.request_throughput, 4) << ','
        << Fixed(s.output_throughput, 4) << ',' << Fixed(s.total_token_throughput, 4) << ','
        << Fixed(s.ttft_ms.median, 4) << ',' << Fixed(s.ttft_ms.p90, 4) << ','
        << Fixed(s.ttft_ms.p99, 4) << ',' << Fixed(s.tpot_ms.median, 4) << ','
        << Fixed(s.tpot_ms.p90, 4) << ',' << Fixed(s.tpot_ms.p99, 4) << ','
        << Fixed(s.itl_ms.median, 4) << ',' << Fixed(s.itl_ms.p99, 4) << ','
        << Fixed(s.e2el_ms.median, 4) << ',' << Fixed(s.e2el_ms.p99, 4) << ','
        << (slo.any() ? Fixed(s.request_goodput, 4) : std::string()) << ','
        << Fixed(s.slo_attainment, 4) << "\n";
  }
  return out.str();
}

}  // namespace strata::bench
