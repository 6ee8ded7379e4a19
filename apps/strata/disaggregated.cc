#include "apps/strata/disaggregated.h"

#include <filesystem>
#include <iostream>
#include <thread>
#include <vector>

#include "common/config.h"
#include "common/log.h"
#include "common/memory_info.h"
#include "supervisor/free_ports.h"
#include "supervisor/supervisor.h"
#include "transport/ucx/ucx_transport.h"

namespace strata::apps {
namespace {

std::string Self() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("strata") : p.string();
}

void Add(std::vector<std::string>* argv, const std::string& flag, const std::string& value) {
  argv->push_back("--" + flag);
  argv->push_back(value);
}

int64_t PrefillKvBytes(const server::ServeConfig& cfg, const DisaggregatedFlags& f) {
  return f.prefill_kv_cache_bytes > 0 ? f.prefill_kv_cache_bytes : cfg.kv_cache_bytes;
}
int64_t DecodeKvBytes(const server::ServeConfig& cfg, const DisaggregatedFlags& f) {
  return f.decode_kv_cache_bytes > 0 ? f.decode_kv_cache_bytes : cfg.kv_cache_bytes;
}

// Flags of `serve --disaggregated` beyond ValidateServeConfig's, and that the memory holds
// everything the roles fault in at start: a role that finds it gone would be refused, and
// restarted again and again.
Status Validate(const server::ServeConfig& cfg, const DisaggregatedFlags& f) {
  Status bad = OkStatus();
  if (f.num_prefill < 1) bad = FlagError("prefill", "must be at least 1");
  if (f.num_decode < 1) bad = FlagError("decode", "must be at least 1");
  if (f.num_kvcache < 0) bad = FlagError("kvcache", "must be >= 0");
  if (f.prefill_ep < 0) bad = FlagError("prefill-ep", "must be >= 0");
  if (f.decode_ep < 0) bad = FlagError("decode-ep", "must be >= 0");
  if (f.prefill_threads < 0) bad = FlagError("prefill-threads", "must be >= 0 (0: --threads)");
  if (f.decode_threads < 0) bad = FlagError("decode-threads", "must be >= 0 (0: --threads)");
  if (!f.ep_dispatch_dtype.empty() && f.ep_dispatch_dtype != "int8" &&
      f.ep_dispatch_dtype != "bf16") {
    bad = FlagError("ep-dispatch-dtype", "must be int8 or bf16");
  }
  if (f.kvcache_capacity_bytes < (1 << 20)) {
    bad = FlagError("kvcache-capacity-bytes", "must be at least 1 MiB");
  } else if (f.num_kvcache > 0) {
    const uint64_t pools = static_cast<uint64_t>(f.num_kvcache);
    const uint64_t bytes = f.kvcache_capacity_bytes;
    Status fits =
        bytes > UINT64_MAX / pools
            ? FlagError("kvcache-capacity-bytes", "times --kvcache overflows 64 bits")
            : CheckFitsInMemory(
                  "kvcache-capacity-bytes", pools * bytes, AvailableMemoryBytes(),
                  std::to_string(pools) + " KV pool(s) of " + std::to_string(bytes) + " bytes");
    if (!fits.ok()) bad = fits;
  }
  if (Status tls = transport::CheckUcxTransports(cfg.ucx_tls); !tls.ok()) {
    bad = FlagError("ucx-tls", tls.message());
  }
  if (bad.ok()) bad = server::ValidateServeConfig(cfg);
  if (f.prefill_kv_cache_bytes != 0 && f.prefill_kv_cache_bytes < (1 << 20)) {
    bad = FlagError("prefill-kv-cache-bytes", "must be at least 1 MiB (0: --kv-cache-bytes)");
  }
  if (f.decode_kv_cache_bytes != 0 && f.decode_kv_cache_bytes < (1 << 20)) {
    bad = FlagError("decode-kv-cache-bytes", "must be at least 1 MiB (0: --kv-cache-bytes)");
  }
  if (!bad.ok()) return bad;
  const long double prefill_kv =
      PrefillKvBytes(cfg, f) * static_cast<long double>(std::max(1, f.prefill_ep));
  const long double decode_kv =
      DecodeKvBytes(cfg, f) * static_cast<long double>(std::max(1, f.decode_ep));
  const long double total = f.num_prefill * prefill_kv + f.num_decode * decode_kv +
                            f.num_kvcache * static_cast<long double>(f.kvcache_capacity_bytes);
  const std::string what = "the KV caches of " + std::to_string(f.num_prefill) + " prefill (" +
                           ByteSizeText(static_cast<uint64_t>(prefill_kv)) + " each) and " +
                           std::to_string(f.num_decode) + " decode instance(s) (" +
                           ByteSizeText(static_cast<uint64_t>(decode_kv)) + " each) and " +
                           std::to_string(f.num_kvcache) + " KV pool(s) of " +
                           ByteSizeText(static_cast<uint64_t>(f.kvcache_capacity_bytes));
  const char* flag =
      f.prefill_kv_cache_bytes > 0 && f.decode_kv_cache_bytes == 0   ? "prefill-kv-cache-bytes"
      : f.decode_kv_cache_bytes > 0 && f.prefill_kv_cache_bytes == 0 ? "decode-kv-cache-bytes"
                                                                     : "kv-cache-bytes";
  if (total > static_cast<long double>(UINT64_MAX)) {
    return FlagError(flag, what + " overflow 64 bits");
  }
  return CheckFitsInMemory(flag, static_cast<uint64_t>(total), AvailableMemoryBytes(), what);
}

}  // namespace

void AddDisaggregatedFlags(CLI::App& app, DisaggregatedFlags* f) {
  AddSwitch(app, "disaggregated", &f->enabled,
            "Run server, KV pools, prefill and decode as separate processes");
  AddFlag(app, "prefill", &f->num_prefill, "Disaggregated: prefill instances");
  AddFlag(app, "decode", &f->num_decode, "Disaggregated: decode instances");
  AddFlag(app, "kvcache", &f->num_kvcache, "Disaggregated: KV pool instances (0: no pool)");
  AddByteSizeFlag(app, "kvcache-capacity-bytes", &f->kvcache_capacity_bytes,
                  "Disaggregated: memory of each KV pool instance");
  AddFlag(app, "router-port", &f->router_port,
          "Disaggregated: port instances register at (0: a free one)");
  AddFlag(app, "prefill-ep", &f->prefill_ep,
          "Disaggregated: expert-parallel ranks per prefill instance (0/1: none)");
  AddFlag(app, "decode-ep", &f->decode_ep,
          "Disaggregated: expert-parallel ranks per decode instance (0/1: none)");
  AddFlag(app, "prefill-threads", &f->prefill_threads,
          "Disaggregated: compute threads per prefill instance (0: --threads, or an even share)");
  AddFlag(app, "decode-threads", &f->decode_threads,
          "Disaggregated: compute threads per decode instance (0: --threads, or an even share)");
  AddByteSizeFlag(app, "prefill-kv-cache-bytes", &f->prefill_kv_cache_bytes,
                  "Disaggregated: KV cache of each prefill instance (0: --kv-cache-bytes)");
  AddByteSizeFlag(app, "decode-kv-cache-bytes", &f->decode_kv_cache_bytes,
                  "Disaggregated: KV cache of each decode instance (0: --kv-cache-bytes)");
  AddFlag(app, "ep-dispatch-dtype", &f->ep_dispatch_dtype,
          "Disaggregated: EP dispatch dtype of the groups, int8 or bf16");
}

int RunDisaggregated(const server::ServeConfig& cfg, const DisaggregatedFlags& f) {
  log::SetIdentity("serve", 0);  // the supervisor; its roles say "[server:0]", "[prefill-0:0]", ...
  // Signals become a descriptor before any thread starts (the supervisor polls it).
  auto signals = supervisor::StopSignalFd::Create();
  Status bad = Validate(cfg, f);
  if (!bad.ok()) {
    std::cerr << "strata serve: " << bad.message() << "\n";
    return 2;
  }
  if (!signals.ok()) {
    std::cerr << "strata serve: " << signals.status().message() << "\n";
    return 1;
  }
  const std::string exe = Self();
  server::ServeConfig serve = cfg;
  supervisor::FreePorts ports;
  if (serve.port != 0) ports.Reserve(serve.port);
  if (f.router_port != 0) ports.Reserve(f.router_port);
  if (serve.port == 0) {
    // The server's port must be known here (to wait for it and to print it).
    auto p = ports.Pick();
    if (!p.ok()) {
      std::cerr << "strata serve: " << p.status().message() << "\n";
      return 1;
    }
    serve.port = *p;
  }
  int router_port = f.router_port;
  if (router_port == 0) {
    auto p = ports.Pick();
    if (!p.ok()) {
      std::cerr << "strata serve: " << p.status().message() << "\n";
      return 1;
    }
    router_port = *p;
  }
  const std::string router = "127.0.0.1:" + std::to_string(router_port);
  const int roles = f.num_prefill + f.num_decode;
  const int threads =
      cfg.threads > 0 ? cfg.threads
                      : std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / roles);
  const int prefill_threads = f.prefill_threads > 0 ? f.prefill_threads : threads;
  const int decode_threads = f.decode_threads > 0 ? f.decode_threads : threads;

  // The server (its router) first: the others register with it once it is ready, and a role
  // started before it would only log that it cannot reach it yet.
  std::vector<supervisor::ChildSpec> specs;
  {
    supervisor::ChildSpec s;
    s.name = "server";
    s.argv = {exe, "server"};
    Add(&s.argv, "model", cfg.model_dir);
    Add(&s.argv, "host", cfg.host);
    Add(&s.argv, "port", std::to_string(serve.port));
    Add(&s.argv, "router-listen", router);
    if (!cfg.served_model_name.empty()) Add(&s.argv, "served-model-name", cfg.served_model_name);
    Add(&s.argv, "max-model-len", std::to_string(cfg.max_model_len));
    Add(&s.argv, "max-waiting", std::to_string(cfg.max_waiting));
    Add(&s.argv, "http-threads", std::to_string(cfg.http_threads));
    if (!cfg.api_key.empty()) Add(&s.argv, "api-key", cfg.api_key);
    Add(&s.argv, "request-timeout", std::to_string(cfg.request_timeout_s));
    Add(&s.argv, "max-body-bytes", std::to_string(cfg.max_body_bytes));
    Add(&s.argv, "drain-timeout", std::to_string(cfg.drain_timeout_s));
    if (!cfg.ucx_tls.empty()) Add(&s.argv, "ucx-tls", cfg.ucx_tls);
    Add(&s.argv, "routing-policy", cfg.routing_policy);
    s.ready = supervisor::TcpPortReady(serve.host, serve.port);
    specs.push_back(std::move(s));
  }
  std::vector<std::string> pools;
  for (int i = 0; i < f.num_kvcache; ++i) {
    auto port = ports.Pick();
    if (!port.ok()) {
      std::cerr << "strata serve: " << port.status().message() << "\n";
      return 1;
    }
    pools.push_back("127.0.0.1:" + std::to_string(*port));
    supervisor::ChildSpec s;
    s.name = "kvcache-" + std::to_string(i);
    s.argv = {exe, "kvcache"};
    Add(&s.argv, "listen", pools.back());
    Add(&s.argv, "capacity-bytes", std::to_string(f.kvcache_capacity_bytes));
    Add(&s.argv, "instance-id", s.name);
    Add(&s.argv, "router", router);  // its figures join the server's /metrics
    if (!cfg.ucx_tls.empty()) Add(&s.argv, "ucx-tls", cfg.ucx_tls);
    specs.push_back(std::move(s));
  }
  std::string pool_list;
  for (const auto& p : pools) pool_list += (pool_list.empty() ? "" : ",") + p;
  for (int i = 0; i < roles; ++i) {
    const bool prefill = i < f.num_prefill;
    const int index = prefill ? i : i - f.num_prefill;
    supervisor::ChildSpec s;
    s.name = std::string(prefill ? "prefill-" : "decode-") + std::to_string(index);
    s.argv = {exe, prefill ? "prefill" : "decode"};
    Add(&s.argv, "model", cfg.model_dir);
    Add(&s.argv, "router", router);
    Add(&s.argv, "instance-id", s.name);
    Add(&s.argv, "threads", std::to_string(prefill ? prefill_threads : decode_threads));
    Add(&s.argv, "kv-cache-bytes",
        std::to_string(prefill ? PrefillKvBytes(cfg, f) : DecodeKvBytes(cfg, f)));
    Add(&s.argv, "block-size", std::to_string(cfg.block_size));
    Add(&s.argv, "max-num-seqs", std::to_string(cfg.max_num_seqs));
    Add(&s.argv, "max-num-batched-tokens", std::to_string(cfg.max_num_batched_tokens));
    Add(&s.argv, "max-model-len", std::to_string(cfg.max_model_len));
    Add(&s.argv, "enable-prefix-caching", cfg.enable_prefix_caching ? "true" : "false");
    Add(&s.argv, "drain-timeout", std::to_string(cfg.drain_timeout_s));
    if (!cfg.ucx_tls.empty()) Add(&s.argv, "ucx-tls", cfg.ucx_tls);
    if (prefill && !pool_list.empty()) Add(&s.argv, "kvcache", pool_list);
    const int ep = prefill ? f.prefill_ep : f.decode_ep;
    if (ep > 1) {
      Add(&s.argv, "ep", std::to_string(ep));
      if (!f.ep_dispatch_dtype.empty()) Add(&s.argv, "ep-dispatch-dtype", f.ep_dispatch_dtype);
      if (!cfg.ucx_tls.empty()) Add(&s.argv, "ep-ucx-tls", cfg.ucx_tls);
    }
    specs.push_back(std::move(s));
  }

  ports.Release();
  supervisor::SupervisorOptions so;
  so.grace_period_ms = static_cast<int64_t>(cfg.drain_timeout_s * 1000) + 5000;
  supervisor::Supervisor sup(so);
  log::Info(
      "disaggregated: server on http://{}:{}, router {}, {} prefill ({} thread(s) each), {} decode "
      "({} thread(s) each), {} KV pool(s)",
      serve.host, serve.port, router, f.num_prefill, prefill_threads, f.num_decode, decode_threads,
      f.num_kvcache);
  if (Status st = sup.Start(std::move(specs), (*signals)->fd()); !st.ok()) {
    log::Error("cannot start the roles: {}", st.message());
    return 1;
  }
  Status st = sup.Run((*signals)->fd());
  if (!st.ok()) {
    log::Error("{}", st.message());
    return 1;
  }
  log::Info("stopped");
  return 0;
}

}  // namespace strata::apps
