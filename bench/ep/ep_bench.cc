// ep_bench: expert-parallel figures (DESIGN.md §7), one JSON object per line on stdout.
//
//   ep_bench comm --ep N --transport inproc|ucx [--tls sm,tcp|tcp] --dtype int8|bf16 --tokens T
//       dispatch + combine of one MoE layer (bench deepseek_v3 shapes: hidden 1024, 64 experts,
//       top-6), ranks as threads each with its own transport endpoint; time per layer, bytes
//       each rank sends, and the resulting bandwidth.
//   ep_bench decode --model DIR --ep N --batch B --steps S [--no-microbatch] [--device cuda]
//       decode tokens/s of a checkpoint with an EP group of threads (in-process transport):
//       every rank decodes B sequences (data-parallel attention); overlap achieved.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <iostream>
#include <random>
#include <thread>

#include "common/clock.h"
#include "expert_parallel/group/ep_group.h"
#include "transport/inproc/inproc_transport.h"
#include "transport/ucx/ucx_transport.h"

namespace strata::expert_parallel {
namespace {

int Comm(int ep, const std::string& transport, const std::string& tls, const std::string& dtype,
         int64_t tokens, int iters) {
  EpOptions o;
  o.size = ep;
  o.num_layers = 1;
  o.num_experts = 64;
  o.top_k = 6;
  o.hidden = 1024;
  o.max_tokens_per_rank = tokens;
  o.dispatch_dtype = *ParseWireDType(dtype);
  o.num_streams = 1;
  auto fabric = transport::NewInprocFabric();
  std::vector<std::unique_ptr<EpEndpoint>> eps;
  std::string leader;
  for (int r = 0; r < ep; ++r) {
    o.rank = r;
    std::unique_ptr<transport::Transport> t;
    if (ep > 1) {
      if (transport == "ucx") {
        transport::UcxOptions uo;
        uo.tls = tls;
        auto u = transport::UcxTransport::Create(uo);
        if (!u.ok()) {
          std::cerr << u.status().message() << "\n";
          return 1;
        }
        t = std::move(*u);
      } else {
        t = transport::NewInprocTransport(fabric);
      }
    }
    auto e = EpEndpoint::Create(o, std::move(t));
    if (!e.ok()) {
      std::cerr << e.status().message() << "\n";
      return 1;
    }
    if (ep > 1) {
      auto a =
          (*e)->Listen(transport == "ucx" ? "127.0.0.1:0" : "bench" + std::to_string(r) + ":0");
      if (!a.ok()) return 1;
      if (r == 0) leader = *a;
    }
    eps.push_back(std::move(*e));
  }
  std::vector<std::thread> th;
  for (int r = 0; r < ep; ++r) th.emplace_back([&, r] { (void)eps[r]->Join(leader); });
  for (auto& t : th) t.join();
  th.clear();
  std::vector<double> layer_us(ep, 0);
  std::vector<Status> st(ep);
  for (int r = 0; r < ep; ++r) {
    th.emplace_back([&, r] {
      auto comm = eps[r]->NewCommunicator(0);
      std::mt19937 rng(r);
      std::normal_distribution<float> nd;
      std::vector<float> h(tokens * 1024), w(tokens * 6, 0.1f);
      for (float& v : h) v = nd(rng);
      std::vector<int32_t> ids(tokens * 6);
      std::vector<int32_t> perm(64);
      for (int64_t t = 0; t < tokens; ++t) {
        for (int e = 0; e < 64; ++e) perm[e] = e;
        std::shuffle(perm.begin(), perm.end(), rng);
        for (int j = 0; j < 6; ++j) ids[t * 6 + j] = perm[j];
      }
      DispatchInput in{h.data(), tokens, 1024, ids.data(), w.data(), 6, 0};
      Dispatched d;
      std::vector<float> combined(tokens * 1024);
      for (int it = 0; it < iters + 2; ++it) {
        if (it == 2) eps[r]->ResetStats();  // two warm-up layers
        Stopwatch sw;
        st[r] = comm->Dispatch(in, &d);
        if (!st[r].ok()) return;
        // The "experts" are the identity: this measures communication only.
        st[r] = comm->Combine(in, d, d.rows.data(), combined.data());
        if (!st[r].ok()) return;
        if (it >= 2) layer_us[r] += sw.ElapsedMillis() * 1e3;
      }
    });
  }
  for (auto& t : th) t.join();
  for (int r = 0; r < ep; ++r) {
    if (!st[r].ok()) {
      std::cerr << "rank " << r << ": " << st[r].message() << "\n";
      return 1;
    }
  }
  EpStats s = eps[0]->stats();
  double us = 0;
  for (double v : layer_us) us = std::max(us, v / iters);
  const double sent = static_cast<double>(s.dispatch_bytes + s.combine_bytes) / iters;
  nlohmann::json j{
      {"bench", "comm"},
      {"ep", ep},
      {"transport", ep == 1 ? "none" : transport + (transport == "ucx" ? "(" + tls + ")" : "")},
      {"dtype", dtype},
      {"tokens_per_rank", tokens},
      {"layer_us", us},
      {"dispatch_us", s.dispatch_ns / 1e3 / iters},
      {"combine_us", s.combine_ns / 1e3 / iters},
      {"wait_us", s.wait_ns / 1e3 / iters},
      {"dispatch_bytes_per_rank", static_cast<double>(s.dispatch_bytes) / iters},
      {"combine_bytes_per_rank", static_cast<double>(s.combine_bytes) / iters},
      {"bytes_per_rank", sent},
      {"mb_per_s_per_rank", us > 0 ? sent / us : 0.0},
      {"iters", iters}};
  std::cout << j.dump() << std::endl;
  return 0;
}

int Decode(const std::string& dir, int ep, int batch, int steps, bool microbatch,
           const std::string& dtype, const std::string& device, int threads) {
  EpGroupOptions g;
  g.size = ep;
  g.transport = "inproc";
  g.dispatch_dtype = *ParseWireDType(dtype);
  g.runner.microbatch = microbatch;
  g.runner.microbatch_min_tokens = 2;
  g.max_tokens_per_rank = std::max(batch * 8, 64);
  model::RunnerOptions ro;
  ro.device = device;
  ro.num_threads = threads;
  ro.num_kv_blocks = batch * 2;
  ro.kv_block_size = 16;
  ro.prefault_weights = false;
  auto runners = CreateThreadGroup(dir, ro, g);
  if (!runners.ok()) {
    std::cerr << runners.status().message() << "\n";
    return 1;
  }
  std::vector<Status> st(ep);
  std::vector<double> decode_s(ep, 0);
  std::vector<std::thread> th;
  for (int r = 0; r < ep; ++r) {
    th.emplace_back([&, r] {
      EpRunner& run = *(*runners)[r];
      std::vector<std::vector<int32_t>> tables(batch, std::vector<int32_t>(2));
      std::vector<int32_t> last(batch);
      model::ForwardBatch fb;
      model::ForwardResult res;
      std::vector<std::vector<int32_t>> prompts(batch);
      for (int s = 0; s < batch; ++s) {
        tables[s] = {2 * s, 2 * s + 1};
        prompts[s] = {100 + s + 7 * r, 200 + s, 300 + r, 400 + s};
        fb.sequences.push_back({prompts[s], 0, tables[s], model::LogitsMode::kLast});
      }
      st[r] = run.Forward(fb, &res);
      if (!st[r].ok()) return;
      run.ResetStats();
      for (int s = 0; s < batch; ++s) last[s] = 1 + s;
      Stopwatch sw;
      for (int step = 0; step < steps && st[r].ok(); ++step) {
        fb.sequences.clear();
        for (int s = 0; s < batch; ++s) {
          fb.sequences.push_back({std::span<const int32_t>(&last[s], 1), 4 + step, tables[s],
                                  model::LogitsMode::kLast});
        }
        st[r] = run.Forward(fb, &res);
      }
      decode_s[r] = sw.ElapsedSeconds();
      if (st[r].ok()) st[r] = run.Stop();
    });
  }
  for (auto& t : th) t.join();
  for (int r = 0; r < ep; ++r) {
    if (!st[r].ok()) {
      std::cerr << "rank " << r << ": " << st[r].message() << "\n";
      return 1;
    }
  }
  double wall = *std::max_element(decode_s.begin(), decode_s.end());
  auto stats = (*runners)[0]->stats();
  nlohmann::json j{{"bench", "decode"},
                   {"ep", ep},
                   {"batch_per_rank", batch},
                   {"steps", steps},
                   {"microbatch", microbatch},
                   {"dtype", dtype},
                   {"device", device},
                   {"threads_per_rank", threads},
                   {"tokens_per_s", static_cast<double>(ep) * batch * steps / wall},
                   {"step_ms", wall * 1e3 / steps},
                   {"rank0", StatsJson(stats, (*runners)[0]->endpoint().options())}};
  j["rank0"].erase("layers");
  std::cout << j.dump() << std::endl;
  return 0;
}

}  // namespace
}  // namespace strata::expert_parallel

int main(int argc, char** argv) {
  CLI::App app("Strata expert-parallel benchmarks");
  std::string mode, transport = "inproc", tls = "sm,tcp", dtype = "int8", model;
  int ep = 2, iters = 20, batch = 8, steps = 4;
  int64_t tokens = 32;
  bool no_microbatch = false;
  std::string device = "cpu";
  int threads = 1;
  app.add_option("mode", mode, "comm | decode")->required();
  app.add_option("--device", device, "decode: where each rank's forward runs (cpu, cuda[:N])");
  app.add_option("--threads", threads, "decode: compute threads per rank (cpu)");
  app.add_option("--ep", ep);
  app.add_option("--transport", transport);
  app.add_option("--tls", tls);
  app.add_option("--dtype", dtype);
  app.add_option("--tokens", tokens);
  app.add_option("--iters", iters);
  app.add_option("--model", model);
  app.add_option("--batch", batch);
  app.add_option("--steps", steps);
  app.add_flag("--no-microbatch", no_microbatch);
  CLI11_PARSE(app, argc, argv);
  if (!strata::expert_parallel::ParseWireDType(dtype).ok()) return 2;
  if (mode == "comm") {
    return strata::expert_parallel::Comm(ep, transport, tls, dtype, tokens, iters);
  }
  if (mode == "decode") {
    return strata::expert_parallel::Decode(model, ep, batch, steps, !no_microbatch, dtype, device,
                                           threads);
  }
  return 2;
}
