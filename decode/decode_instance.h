// decode::DecodeInstance -- the decode role of disaggregated serving (DESIGN.md §3): it
// registers with the router, reserves KV blocks on DecodeAdmit and answers with where they are
// (a prefill instance writes the prompt's KV straight into them), starts decoding on KvReady,
// and sends the router one TokenBatch per step with every request's new tokens. Aborts and
// releases free the blocks; reservations whose KV never comes are reclaimed at their lease;
// requests of a router that goes away are aborted.
//
// Thread-safety: Start/Shutdown from one thread; the rest is internal (the RpcNode's dispatch
// thread and the engine's step thread).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "decode/engine.h"
#include "decode/instance_config.h"
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
  GenerationStats Stats() const { return engine_->Stats(); }
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

  InstanceConfig config_;
  std::string address_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<service::RpcNode> node_;
  std::unique_ptr<kvcache::RegisteredKv> kv_;
  std::unique_ptr<service::Registration> registration_;
  int32_t num_kv_blocks_ = 0;

  std::mutex mu_;
  std::map<std::string, transport::PeerId> owners_;     // request -> its router's peer
  std::map<transport::PeerId, v1::TokenBatch> outbox_;  // step thread
  uint64_t step_ = 0;                                   // step thread
};

}  // namespace strata::decode
