// CPU engine benchmark: this machine's limits (read bandwidth, peak FLOPs) and the engine's
// figures on the bench presets (batch-1 decode vs the bandwidth roofline, 512-token prefill vs
// peak FLOPs, batched decode, load time), written as JSON to bench/results/.
//
//   strata_cpu_bench --models DIR --tokenizers DIR --out bench/results/cpu_engine.json
//
// Bench checkpoints are generated with gen-model into DIR/bench_<arch> when missing.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>
#include <sstream>

#include "bench/ops/machine_limits.h"
#include "common/version.h"
#include "model/gen_model.h"
#include "model/generate_loop.h"
#include "model/model_runner.h"
#include "ops/cpu/cpu_features.h"

namespace strata::bench {
namespace {

using Clock = std::chrono::steady_clock;
double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

struct Flags {
  std::string models = "models";
  std::string tokenizers = ".cache/test-assets/tokenizers";
  std::string out = "bench/results/cpu_engine.json";
  std::vector<std::string> archs = {"qwen3_moe", "deepseek_v3"};
  std::vector<int> threads = {1, 2};
  int decode_tokens = 32;
  int prefill_tokens = 512;
  std::vector<int> batches = {8, 32, 64};
  int batch_steps = 8;
  size_t bandwidth_bytes = size_t{512} << 20;
  std::vector<std::string> sections = {"decode", "prefill", "batched"};
  std::string limits_from;  // reuse the "limits" of an earlier result JSON (profiling runs)
  bool Has(const std::string& s) const {
    return std::find(sections.begin(), sections.end(), s) != sections.end();
  }
};

// The 1, 5 and 15 minute load averages (the machine is shared: figures are noisy under load).
std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

std::vector<int32_t> Prompt(int n, int salt, int64_t vocab) {
  std::vector<int32_t> p(n);
  for (int i = 0; i < n; ++i) p[i] = static_cast<int32_t>((1000 + 7919 * (i + 131 * salt)) % vocab);
  return p;
}

StatusOr<std::string> EnsureModel(const Flags& f, model::Arch arch) {
  std::string dir = f.models + "/bench_" + std::string(model::ModelTypeName(arch));
  if (std::filesystem::exists(dir + "/config.json")) return dir;
  model::GenModelOptions o;
  o.arch = arch;
  o.preset = "bench";
  o.tokenizer_dir = f.tokenizers + (arch == model::Arch::kDeepseekV3 ? "/deepseek_v3" : "/qwen3");
  o.out_dir = dir;
  o.seed = 1;
  o.show_progress = true;
  STRATA_RETURN_IF_ERROR(model::GenerateModel(o));
  return dir;
}

// Wall and (single-threaded runs) thread-CPU milliseconds of fn().
struct Timing {
  double wall_ms = 0;
  double cpu_ms = 0;
  Timing& operator+=(const Timing& o) {
    wall_ms += o.wall_ms;
    cpu_ms += o.cpu_ms;
    return *this;
  }
};
template <typename Fn>
Timing Time(Fn&& fn) {
  double w = Now(TimeBase::kWall), c = Now(TimeBase::kThreadCpu);
  fn();
  return {(Now(TimeBase::kWall) - w) * 1e3, (Now(TimeBase::kThreadCpu) - c) * 1e3};
}

// A figure next to its limit: on wall-clock time, and for one thread also on thread CPU time
// (what the figure is without the other processes of a shared machine).
nlohmann::json Figure(double wall_value, double cpu_value, double wall_limit, double cpu_limit,
                      int threads, const std::string& unit, const std::string& limit) {
  nlohmann::json j = {{unit, wall_value},
                      {"limit_" + unit, wall_limit},
                      {"ratio", wall_value / wall_limit},
                      {"limit", limit}};
  if (threads == 1) {
    j["cpu_time"] = {
        {unit, cpu_value}, {"limit_" + unit, cpu_limit}, {"ratio", cpu_value / cpu_limit}};
  }
  return j;
}

int ArgmaxRow(std::span<const float> row) {
  return static_cast<int>(std::max_element(row.begin(), row.end()) - row.begin());
}

StatusOr<nlohmann::json> BenchModel(const Flags& f, model::Arch arch, int threads,
                                    const nlohmann::json& limits) {
  STRATA_ASSIGN_OR_RETURN(std::string dir, EnsureModel(f, arch));
  model::RunnerOptions ro;
  ro.num_threads = threads;
  ro.kv_block_size = 16;
  int max_batch = f.batches.empty() ? 1 : *std::max_element(f.batches.begin(), f.batches.end());
  ro.num_kv_blocks = std::max(model::BlocksForTokens(f.prefill_tokens + f.decode_tokens, 16) + 2,
                              max_batch * model::BlocksForTokens(16 + f.batch_steps + 1, 16) + 2);
  std::unique_ptr<model::ModelRunner> runner;
  Status load_status;
  Timing load = Time([&] {
    auto r = model::ModelRunner::Load(dir, ro);
    if (r.ok()) {
      runner = std::move(*r);
    } else {
      load_status = r.status();
    }
  });
  STRATA_RETURN_IF_ERROR(load_status);
  const model::LoadStats& st = runner->load_stats();
  const model::ModelConfig& c = runner->config();
  const std::string tkey = std::to_string(threads);
  const double bw = limits["read_bandwidth_gbs"][tkey].get<double>();
  const double bw_cpu = limits["thread_cpu_time"]["read_bandwidth_gbs"].get<double>();
  const double peak = limits["peak_bf16_gflops"][tkey].get<double>();
  const double peak_cpu = limits["thread_cpu_time"]["peak_bf16_gflops"].get<double>();
  nlohmann::json j;
  j["threads"] = threads;
  j["load"] = {{"wall_ms", load.wall_ms},
               {"note",
                "page cache warm; bf16 weights mmap'd and prefaulted, router and MLA "
                "absorption converted"}};
  j["weight_bytes_mapped"] = st.weight_bytes;
  j["decode_weight_bytes_per_token"] = st.decode_bytes_per_token;

  // Batch-1 greedy decode after a 16-token prompt; best of 3 runs of decode_tokens steps.
  const int bs = 16;
  std::vector<int32_t> table(model::BlocksForTokens(f.prefill_tokens + f.decode_tokens, bs));
  std::iota(table.begin(), table.end(), 0);
  Timing best{1e30, 1e30};
  for (int r = 0; r < (f.Has("decode") ? 3 : 0); ++r) {
    std::vector<int32_t> tokens = Prompt(16, 1, c.vocab_size);
    model::ForwardBatch b;
    b.sequences.push_back({tokens, 0, table, model::LogitsMode::kLast});
    model::ForwardResult res;
    STRATA_RETURN_IF_ERROR(runner->Forward(b, &res));
    Timing total;
    for (int i = 0; i < f.decode_tokens; ++i) {
      tokens.push_back(ArgmaxRow(res.Row(0)));
      model::ForwardBatch d;
      d.sequences.push_back({std::span<const int32_t>(&tokens.back(), 1),
                             static_cast<int32_t>(tokens.size() - 1), table,
                             model::LogitsMode::kLast});
      Status s;
      total += Time([&] { s = runner->Forward(d, &res); });
      STRATA_RETURN_IF_ERROR(s);
    }
    best.wall_ms = std::min(best.wall_ms, total.wall_ms);
    best.cpu_ms = std::min(best.cpu_ms, total.cpu_ms);
  }
  const double bytes = static_cast<double>(st.decode_bytes_per_token);
  if (f.Has("decode")) {
    j["decode_batch1"] =
        Figure(f.decode_tokens * 1e3 / best.wall_ms, f.decode_tokens * 1e3 / best.cpu_ms,
               bw * 1e9 / bytes, bw_cpu * 1e9 / bytes, threads, "tokens_per_s",
               "measured read bandwidth / weight bytes read per token");
    j["decode_batch1"]["context_tokens"] = 16 + f.decode_tokens;
  }

  // Prefill of one prompt of prefill_tokens, logits for the last token only; best of 3.
  std::vector<int32_t> long_prompt = Prompt(f.prefill_tokens, 2, c.vocab_size);
  best = {1e30, 1e30};
  for (int r = 0; r < (f.Has("prefill") ? 3 : 0); ++r) {
    model::ForwardBatch b;
    b.sequences.push_back({long_prompt, 0, table, model::LogitsMode::kLast});
    model::ForwardResult res;
    Status s;
    Timing t = Time([&] { s = runner->Forward(b, &res); });
    STRATA_RETURN_IF_ERROR(s);
    best.wall_ms = std::min(best.wall_ms, t.wall_ms);
    best.cpu_ms = std::min(best.cpu_ms, t.cpu_ms);
  }
  const double n = f.prefill_tokens;
  const double lm_head = static_cast<double>(c.vocab_size) * c.hidden_size;
  double attn_macs;  // QK^T and PV over the causal triangle, per layer
  if (c.IsMla()) {
    attn_macs = c.num_attention_heads * (c.qk_nope_head_dim + c.qk_rope_head_dim + c.v_head_dim) *
                n * (n + 1) / 2;
  } else {
    attn_macs = c.num_attention_heads * 2.0 * c.head_dim * n * (n + 1) / 2;
  }
  const double flops =
      2.0 * ((st.macs_per_token - lm_head) * n + lm_head + attn_macs * c.num_hidden_layers);
  if (f.Has("prefill")) {
    j["prefill"] = Figure(flops / (best.wall_ms * 1e6), flops / (best.cpu_ms * 1e6), peak, peak_cpu,
                          threads, "gflops", "measured peak vdpbf16ps FLOPs");
    j["prefill"]["tokens"] = f.prefill_tokens;
    j["prefill"]["tokens_per_s"] = n * 1e3 / best.wall_ms;
    if (threads == 1) j["prefill"]["cpu_time"]["tokens_per_s"] = n * 1e3 / best.cpu_ms;
  }

  // Batched decode: B sequences with 16-token prompts (prefilled together, untimed), then
  // batch_steps timed decode steps of all B.
  nlohmann::json batched = nlohmann::json::array();
  for (int B : f.Has("batched") ? f.batches : std::vector<int>{}) {
    const int per_seq = model::BlocksForTokens(16 + f.batch_steps + 1, bs);
    std::vector<std::vector<int32_t>> tokens(B), tables(B);
    model::ForwardBatch pre;
    for (int s = 0; s < B; ++s) {
      tokens[s] = Prompt(16, 10 + s, c.vocab_size);
      tables[s].resize(per_seq);
      std::iota(tables[s].begin(), tables[s].end(), s * per_seq);
      pre.sequences.push_back({tokens[s], 0, tables[s], model::LogitsMode::kLast});
    }
    model::ForwardResult res;
    STRATA_RETURN_IF_ERROR(runner->Forward(pre, &res));
    Timing total;
    for (int step = 0; step < f.batch_steps; ++step) {
      for (int s = 0; s < B; ++s) tokens[s].push_back(ArgmaxRow(res.Row(s)));
      model::ForwardBatch b;
      for (int s = 0; s < B; ++s) {
        b.sequences.push_back({std::span<const int32_t>(&tokens[s].back(), 1),
                               static_cast<int32_t>(tokens[s].size() - 1), tables[s],
                               model::LogitsMode::kLast});
      }
      Status st2;
      total += Time([&] { st2 = runner->Forward(b, &res); });
      STRATA_RETURN_IF_ERROR(st2);
    }
    nlohmann::json e = {{"batch", B},
                        {"tokens_per_s", B * f.batch_steps * 1e3 / total.wall_ms},
                        {"ms_per_step", total.wall_ms / f.batch_steps}};
    if (threads == 1) e["cpu_time"] = {{"tokens_per_s", B * f.batch_steps * 1e3 / total.cpu_ms}};
    batched.push_back(e);
  }
  if (f.Has("batched")) j["decode_batched"] = batched;
  return j;
}

int Main(int argc, char** argv) {
  Flags f;
  CLI::App app{"CPU engine benchmark"};
  app.add_option("--models", f.models, "Directory of bench checkpoints (generated when missing)");
  app.add_option("--tokenizers", f.tokenizers, "Tokenizer directories (test assets)");
  app.add_option("--out", f.out, "Result JSON");
  app.add_option("--archs", f.archs, "Architectures")->delimiter(',');
  app.add_option("--threads", f.threads, "Engine thread counts")->delimiter(',');
  app.add_option("--decode-tokens", f.decode_tokens, "Batch-1 decode length");
  app.add_option("--prefill-tokens", f.prefill_tokens, "Prefill prompt length");
  app.add_option("--batches", f.batches, "Batched decode sizes")->delimiter(',');
  app.add_option("--batch-steps", f.batch_steps, "Timed steps per batched decode");
  app.add_option("--sections", f.sections, "What to run: decode, prefill, batched")->delimiter(',');
  app.add_option("--limits-from", f.limits_from,
                 "Take the machine limits from this earlier result JSON instead of measuring");
  CLI11_PARSE(app, argc, argv);

  const auto& cpu = ops::GetCpuFeatures();
  const std::string load_start = LoadAverage();
  nlohmann::json out;
  out["git_sha"] = kGitSha;
  out["cpu"] = {{"model", cpu.model_name}, {"cores", cpu.num_cores}, {"features", cpu.Describe()}};
  out["settings"] = {{"threads", f.threads},
                     {"machine_note",
                      "2 cores shared with other processes: wall-clock figures are "
                      "noisy; 1-thread figures also on thread CPU time"},
                     {"decode_tokens", f.decode_tokens},
                     {"prefill_tokens", f.prefill_tokens},
                     {"batch_steps", f.batch_steps},
                     {"dtype", "bf16 weights, f32 activations, bf16 KV"},
                     {"kernels", "auto"}};
  nlohmann::json limits;
  if (!f.limits_from.empty()) {
    std::ifstream in(f.limits_from);
    nlohmann::json old = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (!old.contains("limits")) {
      std::cerr << f.limits_from << ": no \"limits\" object\n";
      return 2;
    }
    limits = old["limits"];
  }
  for (int t : f.limits_from.empty() ? std::vector<int>{1, 2} : std::vector<int>{}) {
    std::string k = std::to_string(t);
    limits["read_bandwidth_gbs"][k] = MeasureReadBandwidthGBs(t, f.bandwidth_bytes, 5);
    limits["peak_bf16_gflops"][k] = MeasurePeakBf16Gflops(t);
    limits["peak_f32_gflops"][k] = MeasurePeakF32Gflops(t);
    std::cerr << "limits " << t << " thread(s): " << limits["read_bandwidth_gbs"][k] << " GB/s, "
              << limits["peak_bf16_gflops"][k] << " bf16 GFLOPS\n";
  }
  if (f.limits_from.empty()) {
    limits["thread_cpu_time"] = {
        {"read_bandwidth_gbs",
         MeasureReadBandwidthGBs(1, f.bandwidth_bytes, 5, TimeBase::kThreadCpu)},
        {"peak_bf16_gflops", MeasurePeakBf16Gflops(1, TimeBase::kThreadCpu)},
        {"peak_f32_gflops", MeasurePeakF32Gflops(1, TimeBase::kThreadCpu)}};
  }
  std::cerr << "limits (thread CPU time): " << limits["thread_cpu_time"].dump() << "\n";
  out["limits"] = limits;
  for (const std::string& name : f.archs) {
    auto arch = model::ParseModelType(name);
    if (!arch.ok()) {
      std::cerr << arch.status().ToString() << "\n";
      return 2;
    }
    for (int t : f.threads) {
      auto r = BenchModel(f, *arch, t, limits);
      if (!r.ok()) {
        std::cerr << name << ": " << r.status().ToString() << "\n";
        return 1;
      }
      out["models"][name]["threads_" + std::to_string(t)] = *r;
      std::cerr << name << " threads " << t << ": " << r->dump() << "\n";
    }
  }
  out["load_average"] = {{"start", load_start}, {"end", LoadAverage()}};
  std::filesystem::create_directories(std::filesystem::path(f.out).parent_path());
  std::ofstream(f.out) << out.dump(2) << "\n";
  std::cout << out.dump(2) << "\n";
  return 0;
}

}  // namespace
}  // namespace strata::bench

int main(int argc, char** argv) { return strata::bench::Main(argc, argv); }
