// TTFT of one long prompt (DESIGN.md §7, issue #7): embedded (one engine), disaggregated (a
// router, a prefill and a decode instance, each with its own UCX transport, KV pushed layer by
// layer) and disaggregated with a KV-pool hit on most of the prompt. Also how much of the KV
// push the layer-by-layer schedule hides behind the prefill compute. Roles run in this process
// on their own threads and transports; the transfers are real UCX transfers over loopback.
//
//   disagg_bench --model DIR [--prompt-tokens 2048] [--hit 0.9] [--repeats 3] [--threads 1]
//                [--ucx-tls tcp] [--out bench/results/disagg.json]
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <condition_variable>
#include <fstream>
#include <future>
#include <iostream>
#include <thread>

#include "common/clock.h"
#include "common/log.h"
#include "common/version.h"
#include "decode/decode_instance.h"
#include "decode/engine.h"
#include "kvcache/pool_server.h"
#include "prefill/prefill_instance.h"
#include "server/cluster_router.h"
#include "transport/ucx/ucx_transport.h"

namespace strata {
namespace {

struct Flags {
  std::string model;
  int prompt_tokens = 2048;
  double hit = 0.9;
  int repeats = 3;
  int threads = 1;
  std::string tls = "tcp";
  std::string out;
};

std::vector<int32_t> MakePrompt(int n, int salt, int64_t vocab) {
  std::vector<int32_t> p;
  for (int i = 0; i < n; ++i) {
    p.push_back(static_cast<int32_t>(
        (static_cast<int64_t>(i) * 7919 + salt * 104729 + 13) % (vocab - 10) + 5));
  }
  return p;
}

decode::GenerateRequest OneToken(const std::string& id, std::vector<int32_t> prompt) {
  decode::GenerateRequest r;
  r.request_id = id;
  r.prompt_token_ids = std::move(prompt);
  r.sampling.temperature = 0;
  r.sampling.max_tokens = 2;  // the first token from prefill, one from decode
  r.sampling.ignore_eos = true;
  return r;
}

// Submits and returns (ms to the first token, ms to the end).
std::pair<double, double> Time(decode::GenerationService& service, decode::GenerateRequest r) {
  auto first = std::make_shared<std::promise<double>>();
  auto done = std::make_shared<std::promise<double>>();
  auto seen = std::make_shared<bool>(false);
  Stopwatch watch;
  Status st = service.Submit(std::move(r), [=](decode::TokenEvent ev) {
    if (!ev.tokens.empty() && !*seen) {
      *seen = true;
      first->set_value(watch.ElapsedMillis());
    }
    if (ev.finish != decode::FinishReason::kNone) {
      if (!*seen) {
        *seen = true;
        first->set_value(-1);
      }
      done->set_value(ev.finish == decode::FinishReason::kError ? -1 : watch.ElapsedMillis());
    }
  });
  if (!st.ok()) {
    std::cerr << "submit failed: " << st.ToString() << "\n";
    return {-1, -1};
  }
  double f = first->get_future().get();
  double d = done->get_future().get();
  return {f, d};
}

std::unique_ptr<model::ModelRunner> Load(const Flags& f, int64_t kv_bytes) {
  model::RunnerOptions ro;
  ro.num_threads = f.threads;
  ro.kv_cache_bytes = kv_bytes;
  auto r = model::ModelRunner::Load(f.model, ro);
  if (!r.ok()) {
    std::cerr << "cannot load " << f.model << ": " << r.status().ToString() << "\n";
    std::exit(1);
  }
  return std::move(*r);
}

decode::SchedulerOptions Sched(const model::ModelRunner& r, int prompt_tokens, bool prefix_cache) {
  decode::SchedulerOptions so;
  so.max_num_batched_tokens = std::max(512, prompt_tokens);
  so.max_model_len = prompt_tokens + 16;
  so.enable_prefix_caching = prefix_cache;
  for (int64_t id : r.config().eos_token_ids) so.eos_token_ids.push_back(static_cast<int32_t>(id));
  return so;
}

std::unique_ptr<transport::Transport> Ucx(const Flags& f) {
  transport::UcxOptions o;
  o.tls = f.tls;
  auto t = transport::UcxTransport::Create(o);
  if (!t.ok()) {
    std::cerr << "UCX: " << t.status().ToString() << "\n";
    std::exit(1);
  }
  return std::move(*t);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

int Run(const Flags& f) {
  const int64_t kv_bytes = int64_t{1} << 28;
  nlohmann::json out;
  out["git_sha"] = kGitSha;
  out["model"] = f.model;
  out["prompt_tokens"] = f.prompt_tokens;
  out["threads_per_instance"] = f.threads;
  out["ucx_tls"] = f.tls;
  out["hit_fraction"] = f.hit;
  int64_t vocab = 0;

  // Embedded: one engine. It stays loaded next to the disaggregated roles so that the
  // configurations are measured interleaved, one run of each per repeat: a shared machine's
  // slow spells then hit all three alike, not whichever configuration ran during them.
  auto embedded_runner = Load(f, kv_bytes);
  vocab = embedded_runner->config().vocab_size;
  auto embedded_options = Sched(*embedded_runner, f.prompt_tokens, /*prefix_cache=*/false);
  decode::Engine engine(embedded_options, std::move(embedded_runner));
  // Warm-up at full length: the first long prompt grows every scratch buffer (one run 1.5-2x
  // slower than the rest otherwise).
  Time(engine, OneToken("warm", MakePrompt(f.prompt_tokens, 999, vocab)));

  // Disaggregated: router + 1 prefill + 1 decode (+ 1 pool), UCX between them.
  kvcache::KvPoolServerOptions po;
  po.capacity_bytes = 1ull << 30;
  auto pool = kvcache::KvPoolServer::Create(Ucx(f), po);
  if (!pool.ok()) return 1;
  auto pool_addr = (*pool)->Listen("127.0.0.1:0");
  server::RouterOptions ro;
  ro.vocab_size = vocab;
  ro.max_model_len = f.prompt_tokens + 16;
  auto router = server::ClusterRouter::Start(ro, Ucx(f));
  if (!router.ok() || !pool_addr.ok()) return 1;
  decode::InstanceConfig ic;
  ic.router = (*router)->address();
  ic.listen = "127.0.0.1:0";
  ic.instance_id = "prefill-0";
  ic.kvcache = {*pool_addr};
  auto prunner = Load(f, kv_bytes);
  ic.scheduler = Sched(*prunner, f.prompt_tokens, /*prefix_cache=*/false);
  auto prefill = prefill::PrefillInstance::Start(ic, std::move(prunner), Ucx(f));
  ic.instance_id = "decode-0";
  ic.kvcache.clear();
  auto drunner = Load(f, kv_bytes);
  ic.scheduler = Sched(*drunner, f.prompt_tokens, /*prefix_cache=*/false);
  auto decode = decode::DecodeInstance::Start(ic, std::move(drunner), Ucx(f));
  if (!prefill.ok() || !decode.ok()) {
    std::cerr << "cannot start the roles\n";
    return 1;
  }
  while (!(*router)->Ready()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  Time(**router, OneToken("warm", MakePrompt(f.prompt_tokens, 998, vocab)));

  std::vector<double> embedded, disagg, hit;
  prefill::PrefillStats before = (*prefill)->Stats();
  for (int i = 0; i < f.repeats; ++i) {
    auto [ttft_embedded, e2e_embedded] =
        Time(engine, OneToken("e" + std::to_string(i), MakePrompt(f.prompt_tokens, i, vocab)));
    embedded.push_back(ttft_embedded);
    std::cerr << "embedded ttft " << ttft_embedded << " ms\n";
    // A fresh prompt (a pool miss); it also fills the pool for the next run.
    auto prompt = MakePrompt(f.prompt_tokens, 100 + i, vocab);
    auto [ttft, e2e] = Time(**router, OneToken("d" + std::to_string(i), prompt));
    disagg.push_back(ttft);
    std::cerr << "disaggregated ttft " << ttft << " ms\n";
    // Wait for the pool offer, then the same prefix with a different tail.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const int keep = static_cast<int>(f.prompt_tokens * f.hit);
    auto tail = MakePrompt(f.prompt_tokens - keep, 500 + i, vocab);
    std::copy(tail.begin(), tail.end(), prompt.begin() + keep);
    auto [ttft_hit, e2e_hit] = Time(**router, OneToken("h" + std::to_string(i), prompt));
    hit.push_back(ttft_hit);
    std::cerr << "disaggregated + pool hit ttft " << ttft_hit << " ms\n";
  }
  prefill::PrefillStats after = (*prefill)->Stats();
  const double push_total = static_cast<double>(after.kv_push_total_ns - before.kv_push_total_ns);
  const double push_exposed =
      static_cast<double>(after.kv_push_exposed_ns - before.kv_push_exposed_ns);
  out["ttft_ms"] = {{"embedded", Median(embedded)},
                    {"disaggregated", Median(disagg)},
                    {"disaggregated_pool_hit", Median(hit)}};
  out["ttft_ms_runs"] = {
      {"embedded", embedded}, {"disaggregated", disagg}, {"disaggregated_pool_hit", hit}};
  out["pool_hit_speedup"] = Median(hit) > 0 ? Median(disagg) / Median(hit) : 0;
  out["pool_hit_tokens"] = after.pool_hit_tokens - before.pool_hit_tokens;
  out["kv_bytes_pushed"] = after.kv_bytes_pushed - before.kv_bytes_pushed;
  out["kv_push_ms_total"] = push_total / 1e6;
  out["kv_push_ms_exposed"] = push_exposed / 1e6;
  out["kv_push_hidden_fraction"] = push_total > 0 ? 1.0 - push_exposed / push_total : 0;
  out["disaggregated_overhead_ms"] = Median(disagg) - Median(embedded);
  (*prefill)->Shutdown();
  (*decode)->Shutdown();
  (*router)->Shutdown();
  (*pool)->Shutdown();
  std::cout << out.dump(2) << "\n";
  if (!f.out.empty()) std::ofstream(f.out) << out.dump(2) << "\n";
  return 0;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  CLI::App app{"TTFT: embedded vs disaggregated vs disaggregated with a KV pool hit"};
  strata::Flags f;
  app.add_option("--model", f.model, "Checkpoint directory")->required();
  app.add_option("--prompt-tokens", f.prompt_tokens, "Prompt length");
  app.add_option("--hit", f.hit, "Fraction of the prompt the pool holds in the hit runs");
  app.add_option("--repeats", f.repeats, "Runs per configuration (the median is reported)");
  app.add_option("--threads", f.threads, "Compute threads per instance");
  app.add_option("--ucx-tls", f.tls, "UCX transports between the roles");
  app.add_option("--out", f.out, "Write the JSON here too");
  CLI11_PARSE(app, argc, argv);
  return strata::Run(f);
}
