// decode::DecodeInstance -- the decode role of disaggregated serving (DESIGN.md §3): it
// registers with the router, reserves KV blocks on DecodeAdmit and answers with where they are
// (a prefill instance writes the prompt's KV straight into them), starts decoding on KvReady,
// and sends the router one TokenBatch per step with every request's new tokens. Aborts and
// releases free the blocks; reservations whose KV never comes are reclaimed at their lease;
// requests of a router that goes away are aborted.
//
// Data-parallel EP groups (InstanceConfig::ep_size / group_leader): every rank is a
// DecodeInstance. The router sees rank 0 only. Rank 0 forwards each DecodeAdmit to the rank with
// the most free KV blocks (its own load, the others' reports, and what it admitted since), so the
// admit reply -- and with it the prefill's KV writes, KvWriteBegin and KvReady -- names that
// rank's blocks and address. The other ranks send their TokenBatches to rank 0 (the peer their
// admits came from), which relays them to the router; the router's Abort/Release go through
// rank 0 to the rank that holds the request. A rank that goes away ends its requests with an
// error (the EP group fails with it anyway).
//
// Thread-safety: Start/Shutdown from one thread; the rest is internal (the RpcNode's dispatch
// thread and the engine's step thread).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "decode/engine.h"
#include "decode/instance_config.h"
#include "decode/rank_group.h"
#include "kvcache/kv_transfer.h"
#include "service/registration.h"
#include "service/rpc_node.h"

namespace strata::decode {

class DecodeInstance {
 public:
  // Takes a loaded runner (host KV: --device cpu) and a fresh transport; listens, registers
  // with the router in the background and returns.
  static StatusOr<std::unique_ptr<DecodeInstance>> Start(
      InstanceConfig config, std::unique_ptr<model::ModelRunner> runner,
      std::unique_ptr<transport::Transport> transport);
  ~DecodeInstance();  // Shutdown()

  const std::string& address() const { return address_; }
  // The instance's load: on rank 0 of a group, the whole group's (its own plus the other ranks'
  // last reports, and the requests it forwarded that have not finished counted as running).
  GenerationStats Stats() const;
  GenerationStats EngineStats() const { return engine_->Stats(); }  // this rank's alone
  // Rank 0 of a group: how many requests each rank was given since the start ([0]: rank 0's
  // own; the others in the order they registered). Otherwise empty.
  std::vector<int64_t> RequestsPerRank() const;
  // Registered with the router (rank 0 of a group: once every rank has joined it), or with
  // rank 0 (the other ranks).
  bool WaitRegistered(transport::Deadline deadline) {
    return registration_->WaitRegistered(deadline);
  }
  // Stops registering, aborts every request, stops the engine and the transport. Idempotent.
  void Shutdown();

 private:
  DecodeInstance() = default;
  void OnRequest(transport::PeerId from, v1::Envelope envelope);
  void Admit(transport::PeerId from, uint64_t call_id, const v1::DecodeAdmit& admit);
  void OnPeerFailure(transport::PeerId peer);
  void Flush();  // step thread: sends the step's TokenBatches
  v1::Load CurrentLoad() const;
  // Reserves here. `counted_blocks`: what rank 0 added to pending_here_blocks_ for it.
  void AdmitHere(transport::PeerId from, uint64_t call_id, const v1::DecodeAdmit& admit,
                 int64_t counted_blocks);

  // --- Rank 0 of a data-parallel group (group_ set).
  // Admits on the rank with the most free KV, not one of `full` (ranks that said they are).
  void AdmitOnBestRank(transport::PeerId from, uint64_t call_id, const v1::DecodeAdmit& admit,
                       std::vector<transport::PeerId> full);
  bool is_group_leader() const { return config_.ep_size > 1 && config_.group_leader.empty(); }
  void RelayTokens(transport::PeerId from, const v1::TokenBatch& batch);
  // A forwarded request's Abort/Release goes to its rank; false when it is not forwarded.
  bool ForwardToRank(const std::string& request_id, v1::Envelope envelope);
  // Ends the forwarded requests matching `pred` at their routers with `finish` (mu_ not held).
  void EndForwarded(const std::function<bool(const RankGroup::Forwarded&)>& pred,
                    FinishReason finish, const Status& why);

  InstanceConfig config_;
  std::string address_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<service::RpcNode> node_;
  std::unique_ptr<kvcache::RegisteredKv> kv_;
  // Rank 0 of a group registers once every rank has joined it (or after group_join_timeout_ms).
  std::unique_ptr<service::Registration> registration_;
  int32_t num_kv_blocks_ = 0;

  mutable std::mutex mu_;
  std::map<std::string, transport::PeerId> owners_;     // request -> its router's peer
  std::map<transport::PeerId, v1::TokenBatch> outbox_;  // step thread
  uint64_t step_ = 0;                                   // step thread
  // Rank 0 of a group.
  std::unique_ptr<RankGroup> group_;  // set in Start, before any message
  int64_t pending_here_blocks_ = 0;   // guarded by mu_: admitted here, not reserved yet
};

}  // namespace strata::decode
