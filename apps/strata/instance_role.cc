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
#include "common/memory_info.h"
#include "common/thread_pool.h"
#include "decode/decode_instance.h"
#include "expert_parallel/group/ep_group.h"
#include "expert_parallel/group/ep_runner.h"
#include "model/model_runner.h"
#include "prefill/prefill_instance.h"
#include "server/serve.h"
#include "transport/address.h"
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
  STRATA_RETURN_IF_ERROR(
      transport::CheckAddressFlag("router", f.router, transport::AddressUse::kConnect));
  STRATA_RETURN_IF_ERROR(
      transport::CheckAddressFlag("listen", f.listen, transport::AddressUse::kListen));
  for (const std::string& pool : SplitList(f.kvcache)) {
    STRATA_RETURN_IF_ERROR(
        transport::CheckAddressFlag("kvcache", pool, transport::AddressUse::kConnect));
  }
  if (!f.ep_leader.empty()) {
    STRATA_RETURN_IF_ERROR(
        transport::CheckAddressFlag("ep-leader", f.ep_leader, transport::AddressUse::kConnect));
  }
  if (f.device != "cpu") {
    return FlagError("device", "'" + f.device +
                                   "': disaggregated roles move KV from host memory; only cpu "
                                   "is supported by this build's KV transfer");
  }
  if (f.threads < 0) return FlagError("threads", "must be >= 0 (0: every core)");
  if (f.ep.ep > 1 && f.ep.transport != "ucx") {
    return FlagError("ep-transport", "'" + f.ep.transport +
                                         "': a prefill or decode EP group runs its ranks as "
                                         "processes over ucx");
  }
  if (Status tls = transport::CheckUcxTransports(f.ucx_tls); !tls.ok()) {
    return FlagError("ucx-tls", tls.message());
  }
  if (f.kv_cache_bytes < (1 << 20)) return FlagError("kv-cache-bytes", "must be at least 1 MiB");
  STRATA_RETURN_IF_ERROR(CheckFitsInMemory("kv-cache-bytes",
                                           static_cast<uint64_t>(f.kv_cache_bytes),
                                           AvailableMemoryBytes(), "the KV cache's blocks"));
  if (f.block_size < 1 || f.block_size > 1024)
    return FlagError("block-size", "must be in [1, 1024]");
  if (f.max_num_seqs < 1) return FlagError("max-num-seqs", "must be at least 1");
  if (f.max_num_batched_tokens < 1) return FlagError("max-num-batched-tokens", "must be >= 1");
  if (f.max_model_len < 0) return FlagError("max-model-len", "must be >= 0 (0: the model's)");
  if (f.admission_threads < 1 || f.admission_threads > 256) {
    return FlagError("admission-threads", "must be in [1, 256]");
  }
  if (f.ep_rank < 0 || (f.ep_rank > 0 && (f.ep_rank >= f.ep.ep || f.ep_leader.empty()))) {
    return FlagError("ep-rank", "must be in [1, --ep) with --ep-leader (set by rank 0)");
  }
  return OkStatus();
}

// `host:port` with the port replaced by 0 (the other ranks of a group listen on rank 0's host).
std::string AnyPort(const std::string& address) {
  const size_t colon = address.rfind(':');
  return (colon == std::string::npos ? address : address.substr(0, colon)) + ":0";
}

// The command line of rank r >= 1 of a data-parallel group (rank 0 adds --ep-rank r
// --ep-leader ADDR): the same role flags, so every rank serves the same way.
std::vector<std::string> RankArgv(const InstanceRoleFlags& f, bool prefill,
                                  const std::string& instance_id, int threads) {
  std::vector<std::string> a = {"/proc/self/exe",
                                prefill ? "prefill" : "decode",
                                "--model",
                                f.model,
                                "--router",
                                f.router,
                                "--listen",
                                AnyPort(f.listen),
                                "--instance-id",
                                instance_id,
                                "--device",
                                f.device,
                                "--threads",
                                std::to_string(threads),
                                "--kv-cache-bytes",
                                std::to_string(f.kv_cache_bytes),
                                "--block-size",
                                std::to_string(f.block_size),
                                "--max-num-seqs",
                                std::to_string(f.max_num_seqs),
                                "--max-num-batched-tokens",
                                std::to_string(f.max_num_batched_tokens),
                                "--max-model-len",
                                std::to_string(f.max_model_len),
                                "--enable-prefix-caching",
                                f.enable_prefix_caching ? "true" : "false",
                                "--drain-timeout",
                                std::to_string(f.drain_timeout_s)};
  if (!f.ucx_tls.empty()) a.insert(a.end(), {"--ucx-tls", f.ucx_tls});
  if (prefill && !f.kvcache.empty()) a.insert(a.end(), {"--kvcache", f.kvcache});
  if (prefill) a.insert(a.end(), {"--admission-threads", std::to_string(f.admission_threads)});
  for (auto& e : expert_parallel::EpFlagArgs(f.ep)) a.push_back(e);
  return a;
}

// Rank 0's view of its EP group for the router's /metrics: tokens each rank's experts received
// per layer, the worst layer's max / mean load, dispatch / combine / wait time, overlap.
void FillExpertParallelLoad(expert_parallel::EpRunner& runner, v1::ExpertParallelLoad* out) {
  const expert_parallel::EpRunnerStats s = runner.stats();
  const expert_parallel::EpOptions& o = runner.endpoint().options();
  out->set_ranks(static_cast<uint32_t>(o.size));
  out->set_layers(static_cast<uint32_t>(o.num_layers));
  if (s.ep.received.size() == static_cast<size_t>(o.num_layers) * o.size) {
    for (int64_t n : s.ep.received) out->add_tokens_received(static_cast<uint64_t>(n));
  }
  out->set_max_mean_load_ratio(expert_parallel::WorstLoadRatio(s.ep, o));
  out->set_moe_rounds(static_cast<uint64_t>(s.ep.rounds));
  out->set_dispatch_seconds(static_cast<double>(s.ep.dispatch_ns) / 1e9);
  out->set_combine_seconds(static_cast<double>(s.ep.combine_ns) / 1e9);
  out->set_wait_seconds(static_cast<double>(s.ep.wait_ns) / 1e9);
  out->set_overlap_fraction(s.overlap.overlap());
  out->set_steps(static_cast<uint64_t>(s.steps));
  out->set_microbatched_steps(static_cast<uint64_t>(s.microbatched_steps));
}

}  // namespace

void AddInstanceRoleFlags(CLI::App& app, InstanceRoleFlags* f, bool prefill) {
  AddFlag(app, "model", &f->model, "Model directory (config.json, *.safetensors)")->required();
  AddFlag(app, "router", &f->router, "The server's router address (its --router-listen)");
  AddFlag(app, "listen", &f->listen, "Transport address peers connect to (port 0: any)");
  AddFlag(app, "instance-id", &f->instance_id, "Name in the cluster (default: role-host-pid)");
  AddFlag(app, "device", &f->device, "Where the model runs (cpu)");
  AddFlag(app, "threads", &f->threads, "Model compute threads (0: every core)");
  AddByteSizeFlag(app, "kv-cache-bytes", &f->kv_cache_bytes, "Memory for the KV cache");
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
  AddFlag(app, "ep-rank", &f->ep_rank,
          "Set by rank 0 of an EP group on the processes it starts: this process is that rank "
          "(not by hand)")
      ->group("");
  AddFlag(app, "ep-leader", &f->ep_leader, "Rank 0's EP address (with --ep-rank)")->group("");
  if (prefill) {
    AddFlag(app, "kvcache", &f->kvcache,
            "KV pool instances, comma-separated host:port list (empty: no pool)");
    AddFlag(app, "admission-threads", &f->admission_threads,
            "Requests admitted at once (each waits for its decode grant and KV pool reads)");
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
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  const std::string instance_id =
      !f.instance_id.empty() ? f.instance_id
                             : std::string(role) + "-" + host + "-" + std::to_string(getpid());
  log::SetIdentity(instance_id, f.ep_rank);  // "[prefill-0:0]": which instance, which EP rank
  Stopwatch watch;
  // With --ep N the instance is a data-parallel EP group of N processes: every rank runs its
  // own instance (scheduler, KV cache, transport) around its EP rank; rank 0 (this process
  // unless --ep-rank) registers with the router and spreads the requests over the ranks, which
  // it starts as `strata prefill|decode ... --ep-rank r`.
  const bool data_parallel = f.ep.ep > 1;
  const bool rank_process = data_parallel && f.ep_rank > 0;
  std::vector<pid_t> ep_workers;
  expert_parallel::EpRunner* ep_runner = nullptr;  // owned by the instance
  StatusOr<std::unique_ptr<model::ModelRunner>> runner = InternalError("not loaded");
  std::string group_leader;  // rank >= 1: rank 0's instance address
  if (f.ep.ep > 1) {
    auto g = expert_parallel::ToGroupOptions(f.ep);
    if (!g.ok()) {
      std::cerr << "strata " << role << ": " << g.status().message() << "\n";
      return 2;
    }
    if (rank_process) {
      auto joined = expert_parallel::JoinAsWorker(f.model, ro, *g, f.ep_rank, f.ep_leader);
      if (!joined.ok()) {
        log::Error("EP rank {}: cannot join the group: {}", f.ep_rank, joined.status().ToString());
        return 1;
      }
      ep_runner = joined->get();
      // Rank 0 tells the others where its instance listens once it is up.
      auto leader = ep_runner->endpoint().WaitBroadcast(g->timeout_ms);
      if (!leader.ok()) {
        log::Error("EP rank {}: {}", f.ep_rank, leader.status().ToString());
        return 1;
      }
      group_leader = std::move(*leader);
      runner = std::unique_ptr<model::ModelRunner>(std::move(*joined));
    } else {
      auto group = expert_parallel::StartLeader(f.model, ro, *g,
                                                RankArgv(f, prefill, instance_id, ro.num_threads));
      if (!group.ok()) {
        log::Error("cannot start the EP group: {}", group.status().ToString());
        return 1;
      }
      ep_workers = group->workers;
      ep_runner = group->runner.get();
      runner = std::unique_ptr<model::ModelRunner>(std::move(group->runner));
    }
  } else {
    runner = model::ModelRunner::Load(f.model, ro);
  }
  if (!runner.ok()) {
    log::Error("cannot load the model: {}", runner.status().ToString());
    return 1;
  }
  // Past here a failure to start fails the whole EP group at once (the other ranks exit too).
  auto fail_group = [&](const Status& why) {
    if (ep_runner != nullptr) ep_runner->endpoint().Abort(why);
    return 1;
  };
  const auto& mc = (*runner)->config();
  decode::InstanceConfig ic;
  ic.instance_id = rank_process ? instance_id + "/rank" + std::to_string(f.ep_rank) : instance_id;
  ic.model_name = server::DefaultModelName(f.model);
  ic.listen = f.listen;
  ic.router = f.router;
  ic.kvcache = SplitList(f.kvcache);
  ic.admission_threads = f.admission_threads;
  if (data_parallel) {
    ic.ep_size = f.ep.ep;
    ic.ep_rank = f.ep_rank;
    ic.group_leader = group_leader;
    if (!rank_process) {
      ic.expert_parallel_load = [ep_runner](v1::ExpertParallelLoad* out) {
        FillExpertParallelLoad(*ep_runner, out);
      };
    }
  }
  auto& so = ic.scheduler;
  so.max_num_seqs = f.max_num_seqs;
  so.max_num_batched_tokens = f.max_num_batched_tokens;
  so.max_model_len =
      f.max_model_len > 0 ? f.max_model_len : static_cast<int>(mc.max_position_embeddings);
  so.enable_prefix_caching = f.enable_prefix_caching;
  // Every rank steps when it has work; an idle rank joins its peers' steps as they begin.
  so.join_peer_steps = data_parallel;
  for (int64_t id : mc.eos_token_ids) so.eos_token_ids.push_back(static_cast<int32_t>(id));
  log::Info("{}: model {} loaded in {:.0f} ms", role, f.model, watch.ElapsedMillis());
  transport::UcxOptions uo;
  uo.tls = f.ucx_tls;
  auto transport = transport::UcxTransport::Create(uo);
  if (!transport.ok()) {
    log::Error("cannot start UCX: {}", transport.status().ToString());
    return fail_group(transport.status());
  }

  std::unique_ptr<prefill::PrefillInstance> p;
  std::unique_ptr<decode::DecodeInstance> d;
  if (prefill) {
    auto started = prefill::PrefillInstance::Start(ic, std::move(*runner), std::move(*transport));
    if (!started.ok()) {
      log::Error("cannot start the prefill instance: {}", started.status().ToString());
      return fail_group(started.status());
    }
    p = std::move(*started);
    if (data_parallel && !rank_process) {
      if (Status st = ep_runner->endpoint().Broadcast(p->address()); !st.ok()) {
        log::Error("cannot tell the EP ranks where this instance is: {}", st.ToString());
        return fail_group(st);
      }
    }
  } else {
    auto started = decode::DecodeInstance::Start(ic, std::move(*runner), std::move(*transport));
    if (!started.ok()) {
      log::Error("cannot start the decode instance: {}", started.status().ToString());
      return fail_group(started.status());
    }
    d = std::move(*started);
    if (data_parallel && !rank_process) {
      if (Status st = ep_runner->endpoint().Broadcast(d->address()); !st.ok()) {
        log::Error("cannot tell the EP ranks where this instance is: {}", st.ToString());
        return fail_group(st);
      }
    }
  }
  // Until a stop signal -- or, for a data-parallel group, until the group fails (a rank died:
  // exit, the supervisor starts the instance again) or rank 0 stops it (the other ranks).
  int sig = 0;
  bool group_failed = false;
  if (!data_parallel) {
    sigwait(&signals, &sig);
  } else {
    int64_t give_up_ns = 0;  // a rank told to stop waits (bounded) for rank 0 to stop the group
    while (true) {
      timespec slice{0, 100 * 1000 * 1000};
      const int got = sigtimedwait(&signals, nullptr, &slice);
      if (got > 0 && !rank_process) {
        sig = got;
        break;
      }
      if (got > 0 && give_up_ns == 0) {
        give_up_ns = MonotonicNanos() + static_cast<int64_t>((f.drain_timeout_s + 10) * 1e9);
      }
      if (Status st = ep_runner->endpoint().status(); !st.ok()) {
        log::Error("EP rank {}: the group failed: {}", f.ep_rank, st.message());
        group_failed = true;
        break;
      }
      if (ep_runner->stopped()) break;
      if (give_up_ns > 0 && MonotonicNanos() > give_up_ns) {
        log::Warn("EP rank {}: rank 0 did not stop the group; stopping", f.ep_rank);
        break;
      }
    }
  }
  if (sig != 0) {
    log::Info("signal {}: draining", sig);
    // Drain: requests in flight finish (up to the timeout), then everything stops. A group's
    // rank 0 counts the other ranks' requests too.
    const int64_t until = MonotonicNanos() + static_cast<int64_t>(f.drain_timeout_s * 1e9);
    while (MonotonicNanos() < until) {
      decode::GenerationStats s = p ? p->InstanceStats() : d->Stats();
      if (s.num_running + s.num_waiting == 0 && s.kv_blocks_used == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  if (data_parallel) {
    decode::GenerationStats s = p ? p->EngineStats() : d->EngineStats();
    if (!rank_process) {
      std::string per_rank;
      for (int64_t n : p ? p->RequestsPerRank() : d->RequestsPerRank()) {
        per_rank += (per_rank.empty() ? "" : ", ") + std::to_string(n);
      }
      log::Info("{} instance {} (EP group of {}): requests per rank [{}]", role, ic.instance_id,
                f.ep.ep, per_rank);
    }
    log::Info("{} instance {} (EP rank {}): stopping with {} KV block(s) in use, {} request(s)",
              role, ic.instance_id, f.ep_rank, s.kv_blocks_used, s.num_running + s.num_waiting);
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
  return group_failed ? 1 : 0;
}

}  // namespace strata::apps
