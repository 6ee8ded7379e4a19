// `strata kvcache`: one instance of the shared KV-cache pool (DESIGN.md §3-4) over UCX, until
// SIGTERM or SIGINT. Prints "listening on HOST:PORT" on stdout once clients may connect.
#include <pthread.h>
#include <signal.h>

#include <cerrno>
#include <cstdlib>
#include <ctime>
#include <iostream>

#include "apps/strata/commands.h"
#include "common/config.h"
#include "common/log.h"
#include "common/memory_info.h"
#include "common/metrics.h"
#include "kvcache/pool_server.h"
#include "server/http_server.h"
#include "service/registration.h"
#include "transport/address.h"
#include "transport/ucx/ucx_transport.h"

namespace strata::apps {
namespace {

struct KvCacheFlags {
  std::string listen = "127.0.0.1:0";
  uint64_t capacity_bytes = 1ull << 30;
  std::string transport = "ucx";
  std::string ucx_tls;
  std::string ucx_bulk = "auto";
  bool no_huge_pages = false;
  bool anonymous_arena = false;
  bool no_prefault = false;
  int64_t max_lease_ms = 120'000;
  int metrics_port = 0;
  std::string metrics_host = "127.0.0.1";
  double stats_interval_s = 60;
  std::string instance_id;
  std::string router;
};

Status Validate(const KvCacheFlags& f) {
  if (f.transport != "ucx") {
    return FlagError("transport", "a standalone pool talks to other processes: only 'ucx'");
  }
  if (Status tls = transport::CheckUcxTransports(f.ucx_tls); !tls.ok()) {
    return FlagError("ucx-tls", tls.message());
  }
  STRATA_RETURN_IF_ERROR(
      transport::CheckAddressFlag("listen", f.listen, transport::AddressUse::kListen));
  if (!f.router.empty()) {
    STRATA_RETURN_IF_ERROR(
        transport::CheckAddressFlag("router", f.router, transport::AddressUse::kConnect));
  }
  if (f.capacity_bytes < 1) return FlagError("capacity-bytes", "must be above 0");
  STRATA_RETURN_IF_ERROR(CheckFitsInMemory("capacity-bytes", f.capacity_bytes,
                                           AvailableMemoryBytes(), "the pool's blocks"));
  if (f.max_lease_ms < 1) return FlagError("max-lease-ms", "must be at least 1");
  if (f.metrics_port < 0 || f.metrics_port > 65535) {
    return FlagError("metrics-port", "must be in [0, 65535] (0: no metrics endpoint)");
  }
  if (f.stats_interval_s < 0) return FlagError("stats-interval-s", "must be >= 0 (0: off)");
  return OkStatus();
}

void LogStats(const kvcache::KvPoolStats& s) {
  log::Info(
      "kvpool: {} of {} bytes used, {} blocks ({} leased, {} leases), hits {} misses {}, in {} "
      "out {} bytes, {} evictions, {} failed",
      s.used_bytes, s.capacity_bytes, s.held_blocks, s.leased_blocks, s.active_leases, s.hit_blocks,
      s.miss_blocks, s.bytes_in, s.bytes_out, s.evictions, s.failed_blocks);
}

int RunKvCache(const KvCacheFlags& f) {
  if (Status st = Validate(f); !st.ok()) {
    std::cerr << "strata kvcache: " << st.message() << "\n";
    return 2;
  }
  auto bulk = transport::ParseBulkMode(f.ucx_bulk);
  if (!bulk.ok()) {
    std::cerr << "strata kvcache: --ucx-bulk: " << bulk.status().message() << "\n";
    return 2;
  }
  // Signals are taken by sigtimedwait() on this thread.
  const sigset_t signals = BlockStopSignals();
  log::SetIdentity(f.instance_id.empty() ? "kvcache" : f.instance_id, 0);

  // A restarted pool must get its address back at once, while connections of the previous
  // process linger in TIME_WAIT (clients reconnect to the address they were given).
  setenv("UCX_TCP_CM_REUSEADDR", "y", /*overwrite=*/0);
  MetricsRegistry registry;
  transport::UcxOptions ucx;
  ucx.tls = f.ucx_tls;
  ucx.bulk_mode = *bulk;
  auto t = transport::UcxTransport::Create(ucx);
  if (!t.ok()) {
    log::Error("cannot start UCX: {}", t.status().ToString());
    return 1;
  }
  kvcache::KvPoolServerOptions options;
  options.capacity_bytes = f.capacity_bytes;
  options.try_huge_pages = !f.no_huge_pages;
  options.transport_memory = !f.anonymous_arena;
  options.prefault = !f.no_prefault;
  options.max_lease_ms = f.max_lease_ms;
  options.default_lease_ms = std::min(options.default_lease_ms, f.max_lease_ms);
  options.instance_id = f.instance_id.empty() ? "kvcache@" + f.listen : f.instance_id;
  options.metrics = &registry;
  auto pool = kvcache::KvPoolServer::Create(std::move(t).value(), options);
  if (!pool.ok()) {
    log::Error("cannot start the KV pool: {}", pool.status().ToString());
    return pool.status().code() == StatusCode::kInvalidArgument ? 2 : 1;
  }
  auto address = (*pool)->Listen(f.listen);
  if (!address.ok()) {
    log::Error("--listen {}: {}", f.listen, address.status().ToString());
    return 1;
  }
  std::unique_ptr<server::HttpServer> http;
  if (f.metrics_port > 0) {
    server::HttpServerOptions http_opt;
    http_opt.host = f.metrics_host;
    http_opt.port = f.metrics_port;
    http_opt.num_threads = 1;
    http = std::make_unique<server::HttpServer>(
        http_opt, [&registry](server::HttpRequest r, std::shared_ptr<server::Exchange> e) {
          server::HttpResponse response;
          if (r.path == "/metrics") {
            response.content_type = "text/plain; version=0.0.4";
            response.body = registry.SerializeText();
          } else if (r.path == "/health") {
            response.content_type = "text/plain";
            response.body = "ok\n";
          } else {
            response.status = 404;
            response.content_type = "text/plain";
            response.body = "not found: the pool serves /metrics and /health\n";
          }
          e->Respond(std::move(response));
        });
    if (Status st = http->Start(); !st.ok()) {
      log::Error("--metrics-port {}: {}", f.metrics_port, st.message());
      return 1;
    }
    log::Info("metrics on http://{}:{}/metrics", f.metrics_host, http->port());
  }
  std::unique_ptr<service::Registration> registration;
  if (!f.router.empty()) {
    // Only to report the pool's figures (the server's /metrics): the router routes nothing here.
    service::RegistrationOptions ro;
    ro.router_address = f.router;
    ro.instance.set_instance_id(options.instance_id);
    ro.instance.set_role(v1::ROLE_KVCACHE);
    ro.instance.set_address(*address);
    kvcache::KvPoolServer* raw = pool->get();
    registration = std::make_unique<service::Registration>(&raw->node(), std::move(ro), [raw] {
      v1::Load load;
      *load.mutable_kv_pool() = raw->Load();
      return load;
    });
  }
  std::cout << "listening on " << *address << std::endl;

  const int64_t interval_ms = static_cast<int64_t>(f.stats_interval_s * 1000);
  int sig = 0;
  while (true) {
    if (interval_ms == 0) {
      sigwait(&signals, &sig);
      break;
    }
    timespec wait{interval_ms / 1000, (interval_ms % 1000) * 1'000'000};
    sig = sigtimedwait(&signals, nullptr, &wait);
    if (sig > 0) break;
    if (errno == EAGAIN) LogStats((*pool)->Stats());
  }
  log::Info("signal {}: shutting down", sig);
  if (registration != nullptr) registration->Stop();
  if (http != nullptr) http->Stop();
  LogStats((*pool)->Stats());
  (*pool)->Shutdown();
  pool->reset();
  return 0;
}

}  // namespace

Command KvCacheCommand() {
  return {"kvcache", "One instance of the shared KV-cache pool (until SIGTERM/SIGINT)",
          [](CLI::App& app) -> std::function<int()> {
            auto f = std::make_shared<KvCacheFlags>();
            AddFlag(app, "listen", &f->listen, "Address clients connect to (host:port; 0 = any)");
            AddByteSizeFlag(app, "capacity-bytes", &f->capacity_bytes,
                            "Bytes of DRAM for KV blocks");
            AddFlag(app, "transport", &f->transport, "Transport to clients (ucx)");
            AddFlag(app, "ucx-tls", &f->ucx_tls, "UCX transports, as UCX_TLS (e.g. tcp, sm,tcp)");
            AddFlag(app, "ucx-bulk", &f->ucx_bulk, "Bulk path: auto, rma or am");
            AddSwitch(app, "anonymous-arena", &f->anonymous_arena,
                      "Keep blocks in an anonymous (huge-page) arena, not in UCX-allocated shared "
                      "memory (clients on other hosts)");
            AddSwitch(app, "no-prefault", &f->no_prefault,
                      "Do not fault the block memory in ahead of the Puts (it then becomes "
                      "resident as the pool fills)");
            AddSwitch(app, "no-huge-pages", &f->no_huge_pages,
                      "Do not ask for huge pages (with --anonymous-arena)");
            AddFlag(app, "max-lease-ms", &f->max_lease_ms, "Longest read lease a client gets");
            AddFlag(app, "metrics-port", &f->metrics_port,
                    "Serve Prometheus /metrics on this port (0: off)");
            AddFlag(app, "metrics-host", &f->metrics_host, "Address of the metrics endpoint");
            AddFlag(app, "stats-interval-s", &f->stats_interval_s,
                    "Log a stats line this often (0: off)");
            AddFlag(app, "instance-id", &f->instance_id, "Name in logs and metrics labels");
            AddFlag(app, "router", &f->router,
                    "Server's router address (host:port) to report the pool's figures to, for "
                    "the server's /metrics (optional)");
            return [f] { return RunKvCache(*f); };
          }};
}

}  // namespace strata::apps
