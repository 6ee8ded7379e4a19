#include "bench/driver/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <numeric>
#include <set>

namespace strata::bench {

bool Slo::Met(const RequestRecord& r) const {
  if (!r.success) return false;
  if (ttft_ms > 0 && r.TtftMs() > ttft_ms) return false;
  if (tpot_ms > 0 && r.TpotMs() > tpot_ms) return false;
  if (e2el_ms > 0 && r.E2eMs() > e2el_ms) return false;
  return true;
}

StatusOr<Slo> ParseSlo(const std::vector<std::string>& items) {
  Slo slo;
  for (const std::string& item : items) {
    size_t colon = item.find(':');
    if (colon == std::string::npos) {
      return InvalidArgumentError("goodput item '" + item + "' must look like ttft:MS");
    }
    std::string key = item.substr(0, colon);
    std::string value = item.substr(colon + 1);
    double ms = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), ms);
    if (ec != std::errc() || ptr != value.data() + value.size() || !(ms > 0) ||
        !std::isfinite(ms)) {
      return InvalidArgumentError("goodput item '" + item + "': '" + value +
                                  "' is not a positive number of milliseconds");
    }
    if (key == "ttft") {
      slo.ttft_ms = ms;
    } else if (key == "tpot") {
      slo.tpot_ms = ms;
    } else if (key == "e2el") {
      slo.e2el_ms = ms;
    } else {
      return InvalidArgumentError("goodput item '" + item +
                                  "': the metric must be ttft, tpot or e2el");
    }
  }
  return slo;
}

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0.0;
  double rank = p / 100.0 * static_cast<double>(sorted.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(rank));
  size_t hi = std::min(lo + 1, sorted.size() - 1);
  double frac = rank - static_cast<double>(lo);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

Distribution Summarize(std::vector<double> values) {
  Distribution d;
  if (values.empty()) return d;
  std::sort(values.begin(), values.end());
  d.count = static_cast<int64_t>(values.size());
  double n = static_cast<double>(values.size());
  d.mean = std::accumulate(values.begin(), values.end(), 0.0) / n;
  double sq = 0;
  for (double v : values) sq += (v - d.mean) * (v - d.mean);
  d.std = std::sqrt(sq / n);
  d.median = Percentile(values, 50);
  d.p90 = Percentile(values, 90);
  d.p99 = Percentile(values, 99);
  d.p999 = Percentile(values, 99.9);
  d.min = values.front();
  d.max = values.back();
  return d;
}

Summary Summarize(const std::deque<RequestRecord>& records, double duration_s, const Slo& slo) {
  Summary s;
  s.duration_s = duration_s;
  std::vector<double> ttft, tpot, itl, e2el;
  std::set<std::string> errors;
  int64_t start_ns = INT64_MAX;
  for (const auto& r : records) {
    if (r.send_ns != 0) start_ns = std::min(start_ns, r.send_ns);
  }
  std::map<int64_t, int64_t> chunks_per_second;
  std::vector<std::pair<int64_t, int>> in_flight_edges;
  for (const auto& r : records) {
    if (r.send_ns != 0 && r.end_ns != 0) {
      in_flight_edges.emplace_back(r.send_ns, 1);
      in_flight_edges.emplace_back(r.end_ns, -1);
    }
    if (r.aborted) {
      ++s.aborted;
      continue;
    }
    if (!r.success) {
      ++s.failed;
      if (errors.size() < 20) errors.insert(r.error);
      continue;
    }
    ++s.completed;
    s.total_input_tokens += r.input_len;
    s.total_output_tokens += r.output_tokens;
    if (r.cached_tokens > 0) s.total_cached_tokens += r.cached_tokens;
    if (slo.Met(r)) ++s.num_good;
    if (r.first_token_ns != 0) {
      ttft.push_back(r.TtftMs());
      int64_t t = r.first_token_ns;
      ++chunks_per_second[(t - start_ns) / 1000000000];
      for (int64_t gap : r.itl_ns) {
        itl.push_back(gap * 1e-6);
        t += gap;
        ++chunks_per_second[(t - start_ns) / 1000000000];
      }
    }
    if (r.output_tokens > 1) tpot.push_back(r.TpotMs());
    e2el.push_back(r.E2eMs());
  }
  for (const auto& [second, n] : chunks_per_second) {
    s.max_output_tokens_per_s = std::max(s.max_output_tokens_per_s, static_cast<double>(n));
  }
  // Ends sort before starts at the same instant: back-to-back requests do not overlap.
  std::sort(in_flight_edges.begin(), in_flight_edges.end());
  int64_t level = 0;
  for (const auto& [t, delta] : in_flight_edges) {
    level += delta;
    s.max_concurrent_requests = std::max(s.max_concurrent_requests, level);
  }
  s.errors.assign(errors.begin(), errors.end());
  if (duration_s > 0) {
    s.request_throughput = static_cast<double>(s.completed) / duration_s;
    s.request_goodput = static_cast<double>(s.num_good) / duration_s;
    s.output_throughput = static_cast<double>(s.total_output_tokens) / duration_s;
    s.total_token_throughput =
        static_cast<double>(s.total_input_tokens + s.total_output_tokens) / duration_s;
  }
  int64_t attempted = s.completed + s.failed;
  s.slo_attainment = attempted > 0 ? static_cast<double>(s.num_good) / attempted : 0.0;
  s.ttft_ms = Summarize(std::move(ttft));
  s.tpot_ms = Summarize(std::move(tpot));
  s.itl_ms = Summarize(std::move(itl));
  s.e2el_ms = Summarize(std::move(e2el));
  return s;
}

}  // namespace strata::bench
