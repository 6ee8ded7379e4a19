#include "apps/strata/instance_role.h"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <sstream>
#include <thread>

#include "apps/strata/commands.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "common/thread_pool.h"
#include "decode/decode_instance.h"
#include "expert_parallel/group/ep_group.h"
#include "model/model_runner.h"
#include "prefill/prefill_instance.h"
#include "server/serve.h"
#include "transport/ucx/ucx_transport.h"

namespace strata::apps {
namespace {

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

Status Validate(const InstanceRoleFlags& f) {
  if (!std::filesystem::is_directory(f.model)) {
    return FlagError("model", "'" + f.model + "' is not a directory");
  }
  if (f.router.empty()) return FlagError("router", "is required (the server's --router-listen)");
  if (f.device != "cpu") {
    return FlagError("device", "'" + f.device +
                                   "': disaggregated roles move KV from host memory; only cpu "
                                   "is supported by this build's KV transfer");
  }
  if (f.threads < 0) return FlagError("threads", "must be >= 0 (0: every core)");
  if (f.kv_cache_bytes < (1 << 20)) return FlagError("kv-cache-bytes", "must be at least 1 MiB");
  if (f.block_size < 1 || f.block_size > 1024)
    return FlagError("block-size", "must be in [1, 1024]");
  if (f.max_num_seqs < 1) return FlagError("max-num-seqs", "must be at least 1");
  if (f.max_num_batched_tokens < 1) return FlagError("max-num-batched-tokens", "must be >= 1");
  if (f.max_model_len < 0) return FlagError("max-model-len", "must be >= 0 (0: the model's)");
  return OkStatus();
}

}  // namespace

void AddInstanceRoleFlags(CLI::App& app, InstanceRoleFlags* f, bool prefill) {
  AddFlag(app, "model", &f->model, "Model directory (config.json, *.safetensors)")->required();
  AddFlag(app, "router", &f->router, "The server's router address (its --router-listen)");
  AddFlag(app, "listen", &f->listen, "Transport address peers connect to (port 0: any)");
  AddFlag(app, "instance-id", &f->instance_id, "Name in the cluster (default: role-host-pid)");
  AddFlag(app, "device", &f->device, "Where the model runs (cpu)");
  AddFlag(app, "threads", &f->threads, "Model compute threads (0: every core)");
  AddFlag(app, "kv-cache-bytes", &f->kv_cache_bytes, "Memory for the KV cache");
  AddFlag(app, "block-size", &f->block_size, "Tokens per KV block");
  AddFlag(app, "max-num-seqs", &f->max_num_seqs, "Sequences in a batch at most");
  AddFlag(app, "max-num-batched-tokens", &f->max_num_batched_tokens,
          "Tokens per step (decode tokens + prefill chunks)");
  AddFlag(app, "max-model-len", &f->max_model_len, "Context length (0: the model's)");
  AddFlag(app, "enable-prefix-caching", &f->enable_prefix_caching,
          "Reuse the KV of cached prompt prefixes (true/false)");
  AddFlag(app, "ucx-tls", &f->ucx_tls, "UCX transports, as UCX_TLS (e.g. tcp or sm,tcp)");
  AddFlag(app, "drain-timeout", &f->drain_timeout_s,
          "Seconds SIGTERM waits for requests in flight before stopping");
  expert_parallel::AddEpFlags(app, &f->ep);
  if (prefill) {
    AddFlag(app, "kvcache", &f->kvcache,
            "KV pool instances, comma-separated host:port list (empty: no pool)");
  }
}

int RunInstanceRole(const InstanceRoleFlags& f, bool prefill) {
  const char* role = prefill ? "prefill" : "decode";
  if (Status st = Validate(f); !st.ok()) {
    std::cerr << "strata " << role << ": " << st.message() << "\n";
    return 2;
  }
  const sigset_t signals = BlockStopSignals();

  model::RunnerOptions ro;
  ro.device = f.device;
  ro.num_threads = f.threads > 0 ? f.threads : DefaultThreadCount();
  ro.kv_block_size = f.block_size;
  ro.kv_cache_bytes = f.kv_cache_bytes;
  Stopwatch watch;
  // With --ep N the instance is an EP group: this process is rank 0 (attention and the
  // scheduler), `strata ep-worker` processes hold the other ranks' experts.
  std::vector<pid_t> ep_workers;
  StatusOr<std::unique_ptr<model::ModelRunner>> runner = InternalError("not loaded");
  if (f.ep.ep > 1) {
    auto g = expert_parallel::ToGroupOptions(f.ep);
    if (!g.ok()) {
      std::cerr << "strata " << role << ": " << g.status().message() << "\n";
      return 2;
    }
    std::vector<std::string> prefix = {"/proc/self/exe",  "ep-worker",
                                       "--model",         f.model,
                                       "--threads",       std::to_string(ro.num_threads),
                                       "--kv-block-size", std::to_string(ro.kv_block_size)};
    for (auto& a : expert_parallel::EpFlagArgs(f.ep)) prefix.push_back(a);
    auto group = expert_parallel::StartLeader(f.model, ro, *g, prefix);
    if (!group.ok()) {
      log::Error("cannot start the EP group: {}", group.status().ToString());
      return 1;
    }
    ep_workers = group->workers;
    runner = std::unique_ptr<model::ModelRunner>(std::move(group->runner));
  } else {
    runner = model::ModelRunner::Load(f.model, ro);
  }
  if (!runner.ok()) {
    log::Error("cannot load the model: {}", runner.status().ToString());
    return 1;
  }
  const auto& mc = (*runner)->config();
  decode::InstanceConfig ic;
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  ic.instance_id = !f.instance_id.empty()
                       ? f.instance_id
                       : std::string(role) + "-" + host + "-" + std::to_string(getpid());
  ic.model_name = server::DefaultModelName(f.model);
  ic.listen = f.listen;
  ic.router = f.router;
  ic.kvcache = SplitList(f.kvcache);
  auto& so = ic.scheduler;
  so.max_num_seqs = f.max_num_seqs;
  so.max_num_batched_tokens = f.max_num_batched_tokens;
  so.max_model_len =
      f.max_model_len > 0 ? f.max_model_len : static_cast<int>(mc.max_position_embeddings);
  so.enable_prefix_caching = f.enable_prefix_caching;
  if (f.ep.ep > 1) so.idle_step_ms = std::max<int64_t>(100, f.ep.timeout_ms / 4);
  for (int64_t id : mc.eos_token_ids) so.eos_token_ids.push_back(static_cast<int32_t>(id));
  log::Info("{}: model {} loaded in {:.0f} ms", role, f.model, watch.ElapsedMillis());
  transport::UcxOptions uo;
  uo.tls = f.ucx_tls;
  auto transport = transport::UcxTransport::Create(uo);
  if (!transport.ok()) {
    log::Error("cannot start UCX: {}", transport.status().ToString());
    return 1;
  }

  std::unique_ptr<prefill::PrefillInstance> p;
  std::unique_ptr<decode::DecodeInstance> d;
  if (prefill) {
    auto started = prefill::PrefillInstance::Start(ic, std::move(*runner), std::move(*transport));
    if (!started.ok()) {
      log::Error("cannot start the prefill instance: {}", started.status().ToString());
      return 1;
    }
    p = std::move(*started);
  } else {
    auto started = decode::DecodeInstance::Start(ic, std::move(*runner), std::move(*transport));
    if (!started.ok()) {
      log::Error("cannot start the decode instance: {}", started.status().ToString());
      return 1;
    }
    d = std::move(*started);
  }
  int sig = 0;
  sigwait(&signals, &sig);
  log::Info("signal {}: draining", sig);
  // Drain: requests in flight finish (up to the timeout), then everything stops.
  const int64_t until = MonotonicNanos() + static_cast<int64_t>(f.drain_timeout_s * 1e9);
  while (MonotonicNanos() < until) {
    decode::GenerationStats s = p ? p->EngineStats() : d->Stats();
    if (s.num_running + s.num_waiting == 0 && s.kv_blocks_used == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (p) p->Shutdown();
  if (d) d->Shutdown();
  // The EP runner went with the instance (its destructor stops the group): wait for the workers.
  p.reset();
  d.reset();
  if (!ep_workers.empty()) {
    Status st = expert_parallel::WaitForWorkers(ep_workers, 10000);
    if (!st.ok()) log::Warn("EP workers: {}", st.message());
  }
  log::Info("stopped");
  return 0;
}

}  // namespace strata::apps
