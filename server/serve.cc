#include "server/serve.h"

#include <pthread.h>
#include <signal.h>

#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>

#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "common/memory_info.h"
#include "decode/engine.h"
#include "model/model_runner.h"
#include "ops/gpu_info.h"
#include "server/api_server.h"
#include "server/cluster_router.h"
#include "server/http_server.h"
#include "server/model_text_codec.h"
#include "transport/address.h"
#include "transport/ucx/ucx_transport.h"

namespace strata::server {

std::string DefaultModelName(const std::string& dir) {
  std::filesystem::path p(dir);
  while (!p.empty() && p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

namespace {

// "cuda" -> 0, "cuda:N" -> N, anything else -> -1 ("cpu" included).
int CudaDeviceIndex(const std::string& device) {
  if (device == "cuda") return 0;
  if (device.rfind("cuda:", 0) != 0 || device.size() < 6 || device.size() > 8) return -1;
  if (device.find_first_not_of("0123456789", 5) != std::string::npos) return -1;
  return std::stoi(device.substr(5));
}

struct Loaded {
  std::unique_ptr<ModelTextCodec> codec;
  std::unique_ptr<decode::Engine> engine;  // embedded mode
  std::unique_ptr<ClusterRouter> router;   // server role
  decode::GenerationService* service() const {
    return engine ? static_cast<decode::GenerationService*>(engine.get()) : router.get();
  }
};

// Server role: the tokenizer and the model's config only; generation runs on the instances.
StatusOr<Loaded> StartRouter(const ServeConfig& cfg, int* max_model_len) {
  Loaded out;
  STRATA_ASSIGN_OR_RETURN(out.codec, ModelTextCodec::Load(cfg.model_dir));
  STRATA_ASSIGN_OR_RETURN(auto mc, model::LoadModelConfig(cfg.model_dir + "/config.json"));
  int model_len = static_cast<int>(mc.max_position_embeddings);
  if (cfg.max_model_len > model_len) {
    return FlagError("max-model-len", "is " + std::to_string(cfg.max_model_len) +
                                          ", over the model's max_position_embeddings " +
                                          std::to_string(model_len));
  }
  *max_model_len = cfg.max_model_len > 0 ? cfg.max_model_len : model_len;
  RouterOptions ro;
  ro.listen = cfg.router_listen;
  ro.model_name = DefaultModelName(cfg.model_dir);
  ro.vocab_size = mc.vocab_size;
  ro.max_model_len = *max_model_len;
  ro.max_waiting = cfg.max_waiting;
  STRATA_ASSIGN_OR_RETURN(ro.routing, ParseRoutingPolicy(cfg.routing_policy));
  for (int64_t id : mc.eos_token_ids) ro.eos_token_ids.push_back(static_cast<int32_t>(id));
  if (auto eos = out.codec->tokenizer().eos_token_id()) ro.eos_token_ids.push_back(*eos);
  transport::UcxOptions uo;
  uo.tls = cfg.ucx_tls;
  STRATA_ASSIGN_OR_RETURN(auto transport, transport::UcxTransport::Create(uo));
  STRATA_ASSIGN_OR_RETURN(out.router, ClusterRouter::Start(ro, std::move(transport)));
  return out;
}

StatusOr<Loaded> LoadModel(const ServeConfig& cfg, int* max_model_len) {
  Stopwatch watch;
  Loaded out;
  STRATA_ASSIGN_OR_RETURN(out.codec, ModelTextCodec::Load(cfg.model_dir));
  model::RunnerOptions ro;
  ro.num_threads =
      cfg.threads > 0 ? cfg.threads : std::max(1u, std::thread::hardware_concurrency());
  ro.kv_block_size = cfg.block_size;
  ro.kv_cache_bytes = cfg.kv_cache_bytes;
  ro.device = cfg.device;
  auto loaded_runner = model::ModelRunner::Load(cfg.model_dir, ro);
  if (!loaded_runner.ok() && cfg.device != "cpu" &&
      loaded_runner.status().code() == StatusCode::kUnavailable) {
    return FlagError("device", loaded_runner.status().message());
  }
  STRATA_ASSIGN_OR_RETURN(auto runner, std::move(loaded_runner));
  const auto& mc = runner->config();
  int model_len = static_cast<int>(mc.max_position_embeddings);
  if (cfg.max_model_len > model_len) {
    return FlagError("max-model-len", "is " + std::to_string(cfg.max_model_len) +
                                          ", over the model's max_position_embeddings " +
                                          std::to_string(model_len));
  }
  *max_model_len = cfg.max_model_len > 0 ? cfg.max_model_len : model_len;
  decode::SchedulerOptions so;
  so.max_num_seqs = cfg.max_num_seqs;
  so.max_num_batched_tokens = cfg.max_num_batched_tokens;
  so.max_model_len = *max_model_len;
  so.max_waiting = cfg.max_waiting;
  so.enable_prefix_caching = cfg.enable_prefix_caching;
  for (int64_t id : mc.eos_token_ids) so.eos_token_ids.push_back(static_cast<int32_t>(id));
  if (auto eos = out.codec->tokenizer().eos_token_id()) so.eos_token_ids.push_back(*eos);
  log::Info("model {} loaded in {:.0f} ms on {}: {} KV blocks of {} tokens, {} threads, context {}",
            cfg.model_dir, watch.ElapsedMillis(), cfg.device, runner->num_kv_blocks(),
            runner->block_size(), ro.num_threads, *max_model_len);
  out.engine = std::make_unique<decode::Engine>(so, std::move(runner));
  return out;
}

}  // namespace

Status ValidateServeConfig(const ServeConfig& c) {
  if (c.model_dir.empty()) return FlagError("model", "is required");
  if (!std::filesystem::is_directory(c.model_dir)) {
    return FlagError("model", "'" + c.model_dir + "' is not a directory");
  }
  if (c.port < 0 || c.port > 65535) return FlagError("port", "must be in [0, 65535]");
  if (c.max_num_seqs < 1) return FlagError("max-num-seqs", "must be at least 1");
  if (c.max_model_len < 0) return FlagError("max-model-len", "must be >= 0 (0: the model's)");
  if (c.max_num_batched_tokens < 1) return FlagError("max-num-batched-tokens", "must be >= 1");
  if (c.max_waiting < 1) return FlagError("max-waiting", "must be at least 1");
  if (c.kv_cache_bytes < (1 << 20)) return FlagError("kv-cache-bytes", "must be at least 1 MiB");
  if (c.block_size < 1 || c.block_size > 1024) {
    return FlagError("block-size", "must be in [1, 1024]");
  }
  if (c.device != "cpu" && CudaDeviceIndex(c.device) < 0) {
    return FlagError("device", "must be cpu, cuda or cuda:N, got '" + c.device + "'");
  }
  if (c.device == "cpu") {  // on a GPU the KV cache is device memory
    STRATA_RETURN_IF_ERROR(CheckFitsInMemory("kv-cache-bytes",
                                             static_cast<uint64_t>(c.kv_cache_bytes),
                                             AvailableMemoryBytes(), "the KV cache's blocks"));
  }
  if (c.threads < 0) return FlagError("threads", "must be >= 0 (0: every core)");
  if (c.http_threads < 1) return FlagError("http-threads", "must be at least 1");
  if (c.request_timeout_s < 0) return FlagError("request-timeout", "must be >= 0 (0: none)");
  if (c.max_body_bytes < 1024) return FlagError("max-body-bytes", "must be at least 1024");
  if (!c.router_listen.empty()) {
    STRATA_RETURN_IF_ERROR(transport::CheckAddressFlag("router-listen", c.router_listen,
                                                       transport::AddressUse::kListen));
  }
  if (StatusOr<RoutingPolicy> p = ParseRoutingPolicy(c.routing_policy); !p.ok()) {
    return FlagError("routing-policy", p.status().message());
  }
  return OkStatus();
}

Status CheckServeDevice(const std::string& device) {
  if (device == "cpu") return OkStatus();
  const int index = CudaDeviceIndex(device);
  if (index < 0) return FlagError("device", "must be cpu, cuda or cuda:N, got '" + device + "'");
  ops::GpuInfo gpus = ops::QueryGpus();
  if (!gpus.cuda_built) {
    return FlagError("device", "'" + device +
                                   "' needs CUDA, and this strata was built without it "
                                   "(configure with -DSTRATA_CUDA=ON on a machine with the CUDA "
                                   "toolkit), or use --device cpu");
  }
  if (gpus.devices.empty()) {
    return FlagError("device", "'" + device + "': no CUDA device is visible" +
                                   (gpus.error.empty() ? std::string() : " (" + gpus.error + ")") +
                                   "; use --device cpu");
  }
  if (index >= static_cast<int>(gpus.devices.size())) {
    return FlagError("device", "'" + device + "': there are " +
                                   std::to_string(gpus.devices.size()) +
                                   " CUDA device(s), numbered from 0");
  }
  return OkStatus();
}

int RunServe(const ServeConfig& cfg) {
  if (Status st = ValidateServeConfig(cfg); !st.ok()) {
    log::Error("{}", st.message());
    return 2;
  }
  // Before the port opens: a server that can never become ready should not start at all.
  Status device_ok = cfg.router_listen.empty() || cfg.device == "cpu"
                         ? CheckServeDevice(cfg.device)
                         : FlagError("device",
                                     "the server role runs no model: --device is for "
                                     "embedded `strata serve`");
  if (Status st = device_ok; !st.ok()) {
    log::Error("{}", st.message());
    return 2;
  }
  // Signals are taken by sigwait() on this thread only; every thread started below inherits
  // the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);  // the loader's "failed" notice
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  MetricsRegistry registry;
  ApiServerOptions api_opt;
  api_opt.served_model_name =
      cfg.served_model_name.empty() ? DefaultModelName(cfg.model_dir) : cfg.served_model_name;
  api_opt.api_key = cfg.api_key;
  api_opt.request_timeout_ms = static_cast<int64_t>(cfg.request_timeout_s * 1000.0);
  ApiServer api(api_opt, &registry);
  HttpServerOptions http_opt;
  http_opt.host = cfg.host;
  http_opt.port = cfg.port;
  http_opt.num_threads = cfg.http_threads;
  http_opt.max_body_bytes = cfg.max_body_bytes;
  HttpServer http(http_opt, [&api](HttpRequest r, std::shared_ptr<Exchange> e) {
    api.Handle(std::move(r), std::move(e));
  });
  if (Status st = http.Start(); !st.ok()) {
    log::Error("{}", st.message());
    return 1;
  }

  Loaded loaded;
  Status load_status;
  std::mutex load_mu;
  pthread_t main_thread = pthread_self();
  std::thread loader([&] {
    int max_model_len = 0;
    auto result = cfg.router_listen.empty() ? LoadModel(cfg, &max_model_len)
                                            : StartRouter(cfg, &max_model_len);
    std::lock_guard lock(load_mu);
    if (!result.ok()) {
      load_status = result.status();
      pthread_kill(main_thread, SIGUSR1);
      return;
    }
    loaded = std::move(*result);
    api.SetMaxModelLen(max_model_len);
    api.SetBackend(loaded.service(), loaded.codec.get());
    if (loaded.router) {
      log::Info("server role: '{}' on http://{}:{}; instances register at {}",
                api_opt.served_model_name, cfg.host, http.port(), loaded.router->address());
    } else {
      log::Info("ready: serving '{}' on http://{}:{}", api_opt.served_model_name, cfg.host,
                http.port());
    }
  });

  int sig = 0;
  sigwait(&signals, &sig);
  loader.join();
  int exit_code = 0;
  if (sig == SIGUSR1) {
    log::Error("cannot load the model: {}", load_status.ToString());
    exit_code = 1;
  } else {
    log::Info("signal {}: draining", sig);
  }
  api.StartDraining();
  http.StopAccepting();
  if (loaded.engine) {
    loaded.engine->Drain(static_cast<int64_t>(cfg.drain_timeout_s * 1000.0));
    loaded.engine->Shutdown();
    // Let the last responses reach their sockets.
    for (int i = 0; i < 200 && http.num_active_exchanges() > 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    loaded.engine.reset();
  }
  if (loaded.router) {
    // Let the requests in flight finish on the instances, then end what is left.
    const int64_t until = MonotonicNanos() + static_cast<int64_t>(cfg.drain_timeout_s * 1e9);
    while (MonotonicNanos() < until) {
      auto s = loaded.router->Stats();
      if (s.num_running + s.num_waiting == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    loaded.router->Shutdown();
    for (int i = 0; i < 200 && http.num_active_exchanges() > 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    loaded.router.reset();
  }
  http.Stop();
  log::Info("stopped");
  return exit_code;
}

}  // namespace strata::server
