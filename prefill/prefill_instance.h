// prefill::PrefillInstance -- the prefill role of disaggregated serving (DESIGN.md §3). For each
// PrefillRequest of the router it computes the prompt (batched with others by token budget,
// chunked when long), pushes each layer's KV into the decode instance's reserved blocks as soon
// as the forward has written that layer (the transfer of layer l overlaps the compute of layers
// l+1..), sends the first token to the router as soon as it is sampled, and tells the decode
// instance KvReady once every byte has landed. With a KV pool it first looks the prompt's
// full blocks up there and reads the hits instead of computing them, and offers the blocks it
// computed afterwards.
//
// Data-parallel EP groups (decode::InstanceConfig::ep_size / group_leader): every rank is a
// PrefillInstance. The router sees rank 0 only; rank 0 sends each PrefillRequest to the rank
// with the fewest queued prompt tokens (its own, the others' reports and what it sent them
// since), relays that rank's FirstToken to the router and the router's Abort to the rank. The
// rank pushes the KV to decode and talks to the KV pool itself.
//
// Thread-safety: Start/Shutdown from one thread; the rest is internal (the RpcNode's dispatch
// thread, an admission thread, the engine's step thread and the transport's thread).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "decode/engine.h"
#include "decode/instance_config.h"
#include "decode/rank_group.h"
#include "kvcache/kv_transfer.h"
#include "service/registration.h"
#include "service/rpc_node.h"

namespace strata::kvcache {
class KvPoolClient;
}

namespace strata::prefill {

struct PrefillStats {
  int64_t requests = 0;
  int64_t prompt_tokens = 0;
  int64_t pool_hit_tokens = 0;  // prompt tokens read from the KV pool instead of computed
  int64_t kv_bytes_pushed = 0;
  // Layer-by-layer push: per request, the time from its first KV transfer to its last one's
  // completion (total), and the part of it after the forward had finished (exposed: what the
  // push added to the prefill). Hidden fraction = 1 - exposed / total.
  int64_t kv_push_total_ns = 0;
  int64_t kv_push_exposed_ns = 0;
  int64_t failed = 0;
};

class PrefillInstance {
 public:
  static StatusOr<std::unique_ptr<PrefillInstance>> Start(
      decode::InstanceConfig config, std::unique_ptr<model::ModelRunner> runner,
      std::unique_ptr<transport::Transport> transport);
  ~PrefillInstance();  // Shutdown()

  const std::string& address() const { return address_; }
  PrefillStats Stats() const;
  decode::GenerationStats EngineStats() const { return engine_->Stats(); }
  // The instance's: on rank 0 of a group the requests other ranks run count as running.
  decode::GenerationStats InstanceStats() const;
  // Rank 0 of a group: requests given to each rank since the start ([0] its own); else empty.
  std::vector<int64_t> RequestsPerRank() const;
  bool WaitRegistered(transport::Deadline deadline) {
    return registration_->WaitRegistered(deadline);
  }
  void Shutdown();

 private:
  struct Job;
  PrefillInstance() = default;
  void OnRequest(transport::PeerId from, v1::Envelope envelope);
  void OnPeerFailure(transport::PeerId peer);
  void AdmitLoop();
  void Admit(transport::PeerId from, v1::PrefillRequest request);
  // Reads the prompt's pool hits into local blocks (admission thread); returns them.
  std::vector<kvcache::BlockId> FetchFromPool(const std::vector<int32_t>& prompt, Job* job);
  void SendKvReadyError(transport::PeerId decode, const std::string& id, const Status& why);
  void FailEarly(transport::PeerId server, transport::PeerId decode, const std::string& id,
                 const Status& why);
  // Step thread hooks.
  void OnLayerWritten(const std::string& id, std::span<const kvcache::BlockId> blocks,
                      int64_t num_tokens, int layer);
  void OnPrefilled(const std::string& id, std::vector<kvcache::BlockId> blocks, int32_t first);
  // Starts the transfers of one layer's KV of the prompt to decode (once per layer).
  void PushLayer(const std::shared_ptr<Job>& job, std::span<const kvcache::BlockId> blocks,
                 int64_t num_tokens, int layer);
  void OnEvent(const std::shared_ptr<Job>& job, decode::TokenEvent ev);
  void RunOnAdmissionThread(std::function<void()> task);
  // Offers the job's newly computed full blocks to the pool, then gives them back.
  void OfferToPool(const std::shared_ptr<Job>& job);
  // Every push of `job` is done and its first token known: KvReady, release, pool offer.
  void Complete(const std::shared_ptr<Job>& job);
  void MaybeComplete(const std::shared_ptr<Job>& job);  // mu_ held by nobody
  v1::Load CurrentLoad() const;
  int64_t OwnQueuedTokens(uint32_t* num_queued) const;  // mu_ held
  // Rank 0 of a group (group_ set).
  bool is_group_leader() const { return config_.ep_size > 1 && config_.group_leader.empty(); }
  // Sends the request to another rank; false when this rank should take it.
  bool ForwardToRank(transport::PeerId from, v1::Envelope& envelope);
  // Ends the forwarded requests `pred` selects with a FirstToken error to their routers.
  void FailForwarded(const std::function<bool(const decode::RankGroup::Forwarded&)>& pred,
                     const Status& why);

  decode::InstanceConfig config_;
  std::string address_;
  int block_size_ = 16;
  std::unique_ptr<decode::Engine> engine_;
  std::unique_ptr<service::RpcNode> node_;
  std::unique_ptr<kvcache::RegisteredKv> kv_;
  std::unique_ptr<kvcache::KvPoolClient> pool_;
  std::unique_ptr<service::Registration> registration_;
  std::unique_ptr<decode::RankGroup> group_;  // rank 0 of a group; set before the node

  mutable std::mutex mu_;
  std::condition_variable cv_;
  // Work for the admission threads (admissions, pool offers): it may block on the network.
  std::deque<std::function<void()>> tasks_;
  int64_t queued_prompt_tokens_ = 0;  // of admissions not started yet
  bool stop_ = false;
  std::map<std::string, std::shared_ptr<Job>> jobs_;
  PrefillStats stats_;
  std::vector<std::thread> admit_threads_;  // config_.admission_threads of them
};

}  // namespace strata::prefill
