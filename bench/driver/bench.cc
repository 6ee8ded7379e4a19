#include "bench/driver/bench.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <memory>
#include <optional>

#include "bench/driver/metrics.h"
#include "bench/driver/progress.h"
#include "bench/driver/report.h"
#include "bench/driver/runner.h"
#include "bench/driver/server_probe.h"
#include "common/config.h"
#include "common/log.h"
#include "common/version.h"

namespace strata::bench {
namespace {

StatusOr<double> ParseRate(std::string_view text) {
  if (text == "inf" || text == "Inf" || text == "INF") return INFINITY;
  double v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || !(v > 0) || !std::isfinite(v)) {
    return InvalidArgumentError("'" + std::string(text) + "' is not a rate > 0 or inf");
  }
  return v;
}

Status Flag(std::string_view flag, const Status& s) {
  return s.ok() ? s : Status(s.code(), "--" + std::string(flag) + ": " + s.message());
}

std::string RateLabel(double rate) {
  if (std::isinf(rate)) return "inf";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", rate);
  return buf;
}

struct Prepared {
  ApiTarget target;
  std::unique_ptr<TokenCodec> codec;
  std::vector<RequestSpec> specs;
  Slo slo;
  double rate = INFINITY;
  std::vector<PointSettings> points;
  bool sweep = false;
  RunHeader header;
};

Status Prepare(const BenchConfig& c, Prepared* p) {
  STRATA_RETURN_IF_ERROR(Flag("base-url", ParseBaseUrl(c.base_url, &p->target)));
  auto kind = ParseEndpointKind(c.endpoint);
  STRATA_RETURN_IF_ERROR(Flag("endpoint", kind.status()));
  p->target.kind = *kind;
  p->target.api_key = c.api_key;
  p->target.ignore_eos = c.ignore_eos;
  if (!c.extra_body.empty()) {
    auto extra = nlohmann::json::parse(c.extra_body, nullptr, false);
    if (extra.is_discarded() || !extra.is_object()) {
      return FlagError("extra-body", "must be a JSON object");
    }
    p->target.extra_body = std::move(extra);
  }
  auto slo = ParseSlo(c.goodput);
  STRATA_RETURN_IF_ERROR(Flag("goodput", slo.status()));
  p->slo = *slo;
  auto rate = ParseRate(c.request_rate);
  STRATA_RETURN_IF_ERROR(Flag("request-rate", rate.status()));
  p->rate = *rate;
  if (!(c.burstiness > 0) || !std::isfinite(c.burstiness)) {
    return FlagError("burstiness", "must be a finite number > 0");
  }
  if (c.max_concurrency < 0) return FlagError("max-concurrency", "must be >= 0 (0 = unlimited)");
  if (c.num_prompts < 1) return FlagError("num-prompts", "must be >= 1");
  if (c.duration_s < 0) return FlagError("duration", "must be >= 0");
  if (c.warmup < 0) return FlagError("warmup", "must be >= 0");
  if (!(c.abort_fraction >= 0 && c.abort_fraction <= 1)) {
    return FlagError("abort-fraction", "must be in [0, 1]");
  }
  if (c.timeout_s < 0) return FlagError("timeout", "must be >= 0 (0 = none)");
  if (c.num_io_threads < 1 || c.num_io_threads > 64) {
    return FlagError("num-io-threads", "must be in [1, 64]");
  }
  if (c.progress != "auto" && c.progress != "tty" && c.progress != "plain" && c.progress != "off") {
    return FlagError("progress", "must be auto, tty, plain or off");
  }
  if (!c.sweep_rates.empty() && !c.sweep_concurrency.empty()) {
    return FlagError("sweep-rates", "give --sweep-rates or --sweep-concurrency, not both");
  }
  bool trace = DatasetHasArrivals(c.workload.dataset);
  if (trace && (!c.sweep_rates.empty() || c.request_rate != "inf")) {
    return FlagError("request-rate", "a trace dataset brings its own arrival times");
  }
  if (std::isinf(p->rate) && !trace && c.duration_s > 0 && c.max_concurrency == 0 &&
      c.sweep_concurrency.empty()) {
    return FlagError("duration",
                     "at an unlimited request rate, a duration needs --max-concurrency");
  }
  WorkloadOptions w = c.workload;
  w.num_requests = c.num_prompts + c.warmup;
  STRATA_RETURN_IF_ERROR(Flag("dataset", ValidateWorkloadOptions(w)));

  // Load points.
  if (!c.sweep_rates.empty()) {
    auto rates = ParseRateList(c.sweep_rates);
    STRATA_RETURN_IF_ERROR(Flag("sweep-rates", rates.status()));
    for (double r : *rates) {
      p->points.push_back({r, c.burstiness, c.max_concurrency, 0, "rate=" + RateLabel(r)});
    }
    p->sweep = true;
  } else if (!c.sweep_concurrency.empty()) {
    auto values = ParseRateList(c.sweep_concurrency);
    STRATA_RETURN_IF_ERROR(Flag("sweep-concurrency", values.status()));
    for (double v : *values) {
      if (std::isinf(v) || v != std::floor(v)) {
        return FlagError("sweep-concurrency", "values must be whole numbers");
      }
      int conc = static_cast<int>(v);
      p->points.push_back({p->rate, c.burstiness, conc, 0, "concurrency=" + std::to_string(conc)});
    }
    p->sweep = true;
  } else {
    p->points.push_back({p->rate, c.burstiness, c.max_concurrency, 0, ""});
  }

  // Model and tokenizer.
  std::string model = c.model;
  if (model.empty()) {
    auto served = FirstServedModel(p->target);
    if (!served.ok()) {
      return FlagError(
          "model", "not given and the server did not name one (" + served.status().message() + ")");
    }
    model = *served;
  }
  p->target.model = model;
  std::string tokenizer_dir = c.tokenizer;
  if (tokenizer_dir.empty() && std::filesystem::is_directory(model)) tokenizer_dir = model;
  if (tokenizer_dir.empty()) {
    return FlagError("tokenizer",
                     "needed to make prompts of exact token counts: give the model's directory "
                     "(with tokenizer.json), or a --model that is one");
  }
  auto codec = LoadTokenCodec(tokenizer_dir);
  STRATA_RETURN_IF_ERROR(Flag("tokenizer", codec.status()));
  p->codec = std::move(*codec);
  auto specs = BuildWorkload(w, *p->codec);
  STRATA_RETURN_IF_ERROR(Flag("dataset", specs.status()));
  p->specs = std::move(*specs);
  if (static_cast<int>(p->specs.size()) <= c.warmup) {
    return FlagError("warmup", "the dataset has only " + std::to_string(p->specs.size()) +
                                   " requests, not more than the warmup");
  }

  p->header.date = NowDateString();
  p->header.backend = p->target.kind == EndpointKind::kChat ? "openai-chat" : "openai";
  p->header.model_id = model;
  p->header.tokenizer_id = tokenizer_dir;
  p->header.git_sha = kGitSha;
  p->header.version = kVersion;
  p->header.server_version = ProbeServerVersion(p->target);
  p->header.settings = {
      {"base_url", c.base_url},
      {"endpoint", c.endpoint},
      {"model", model},
      {"tokenizer", tokenizer_dir},
      {"dataset", c.workload.dataset},
      {"num_prompts", c.num_prompts},
      {"duration_s", c.duration_s},
      {"warmup", c.warmup},
      {"input_len", c.workload.input_len},
      {"output_len", c.workload.output_len},
      {"range_ratio", c.workload.range_ratio},
      {"prefix_groups", c.workload.prefix_groups},
      {"prefix_requests", c.workload.prefix_requests},
      {"prefix_len", c.workload.prefix_len},
      {"trace_block_size", c.workload.trace_block_size},
      {"seed", c.workload.seed},
      {"ignore_eos", c.ignore_eos},
      {"extra_body", p->target.extra_body},
      {"request_rate", c.request_rate},
      {"burstiness", c.burstiness},
      {"max_concurrency", c.max_concurrency},
      {"sweep_rates", c.sweep_rates},
      {"sweep_concurrency", c.sweep_concurrency},
      {"abort_fraction", c.abort_fraction},
      {"timeout_s", c.timeout_s},
      {"goodput", c.goodput},
      {"num_io_threads", c.num_io_threads},
      {"kernel_timestamps", c.kernel_timestamps},
      {"api_key_set", !c.api_key.empty()},
  };
  return OkStatus();
}

}  // namespace

StatusOr<std::vector<double>> ParseRateList(const std::string& text) {
  std::vector<double> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string item =
        text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    STRATA_ASSIGN_OR_RETURN(double v, ParseRate(item));
    out.push_back(v);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (out.empty()) return InvalidArgumentError("empty list");
  return out;
}

Status RunBench(const BenchConfig& c, std::FILE* out) {
  Prepared p;
  STRATA_RETURN_IF_ERROR(Prepare(c, &p));
  bool trace = DatasetHasArrivals(c.workload.dataset);
  // A prefix or ShareGPT dataset may hold fewer requests than --num-prompts: send each once.
  int64_t measured =
      std::min<int64_t>(c.num_prompts, static_cast<int64_t>(p.specs.size()) - c.warmup);
  if (p.sweep) {
    std::error_code ec;
    std::filesystem::create_directories(c.sweep_out, ec);
    if (ec) return FlagError("sweep-out", "cannot create '" + c.sweep_out + "': " + ec.message());
  }
  std::vector<SweepPoint> results;
  for (PointSettings point : p.points) {
    auto runner = Runner::Create(p.target, c.num_io_threads, c.kernel_timestamps);
    STRATA_RETURN_IF_ERROR(Flag("base-url", runner.status()));
    if (!point.label.empty()) std::fprintf(out, "\n--- sweep point %s ---\n", point.label.c_str());
    if (c.warmup > 0) {
      RunPlan warm;
      warm.specs = &p.specs;
      warm.num_requests = c.warmup;
      warm.request_rate = INFINITY;
      warm.max_concurrency = point.max_concurrency > 0 ? point.max_concurrency : c.warmup;
      warm.timeout_s = c.timeout_s;
      warm.request_id_prefix = "warmup-";
      auto w = (*runner)->Run(warm);
      STRATA_RETURN_IF_ERROR(w.status());
      int64_t ok = 0;
      for (const auto& r : w->records) ok += r.success;
      std::fprintf(out, "warmup: %lld/%d requests succeeded\n", static_cast<long long>(ok),
                   c.warmup);
    }
    RunPlan plan;
    plan.specs = &p.specs;
    plan.first_spec = static_cast<size_t>(c.warmup);
    plan.num_requests = c.duration_s > 0 && !trace ? 0 : measured;
    plan.duration_s = c.duration_s;
    plan.request_rate = point.request_rate;
    plan.burstiness = point.burstiness;
    plan.max_concurrency = point.max_concurrency;
    plan.timeout_s = c.timeout_s;
    plan.abort_fraction = c.abort_fraction;
    plan.seed = c.workload.seed;
    plan.use_spec_arrivals = trace;
    std::optional<ProgressReporter> progress;
    bool tty = c.progress == "tty" || (c.progress == "auto" && IsTerminal(stderr));
    if (c.progress != "off") {
      progress.emplace((*runner)->live(), plan.num_requests, c.duration_s, tty,
                       c.progress_interval_s, stderr);
    }
    auto result = (*runner)->Run(plan);
    progress.reset();
    STRATA_RETURN_IF_ERROR(result.status());
    point.num_prompts = static_cast<int64_t>(result->records.size());
    Summary summary = Summarize(result->records, result->DurationSeconds(), p.slo);
    std::fputs(SummaryTable(point, summary, p.slo).c_str(), out);
    std::fflush(out);
    nlohmann::json j = ResultJson(p.header, point, summary, p.slo);
    std::string result_path = c.result_json;
    std::string jsonl_path = c.requests_jsonl;
    if (p.sweep) {
      std::string stem = c.sweep_out + "/" + point.label;
      for (char& ch : stem) ch = ch == '=' ? '_' : ch;
      result_path = stem + ".json";
      jsonl_path = stem + ".requests.jsonl";
    }
    if (!result_path.empty()) {
      STRATA_RETURN_IF_ERROR(WriteTextFile(result_path, j.dump(2) + "\n"));
    }
    if (!jsonl_path.empty()) {
      STRATA_RETURN_IF_ERROR(WriteRequestsJsonl(jsonl_path, result->records, result->start_ns));
    }
    if (summary.failed > 0) {
      log::Warn("{} of {} requests failed; first error: {}", summary.failed,
                summary.completed + summary.failed,
                summary.errors.empty() ? "" : summary.errors[0]);
    }
    results.push_back({point, std::move(summary)});
  }
  if (p.sweep) {
    STRATA_RETURN_IF_ERROR(WriteTextFile(c.sweep_out + "/sweep.csv", SweepCsv(results, p.slo)));
    std::string title = "strata bench: " + p.header.model_id + " (" + c.workload.dataset + ", " +
                        (!c.sweep_rates.empty() ? "request-rate sweep" : "concurrency sweep") + ")";
    STRATA_RETURN_IF_ERROR(
        WriteTextFile(c.sweep_out + "/sweep.svg", SweepSvg(results, p.slo, title)));
    std::fprintf(out, "\nsweep: wrote %s/sweep.csv, %s/sweep.svg and one JSON per point\n",
                 c.sweep_out.c_str(), c.sweep_out.c_str());
  }
  return OkStatus();
}

}  // namespace strata::bench
