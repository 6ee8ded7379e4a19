// expert_parallel::EpRunner: one rank of an EP group as a model::ModelRunner (DESIGN.md §1).
//
// Attention runs data-parallel: each rank forwards its own sequences on its own runner and KV
// cache; the MoE layers dispatch tokens to the ranks holding their experts through the rank's
// EpEndpoint. EpRunner is a decorator, so everything that drives a ModelRunner (GenerateOne,
// the decode loop) drives an EP rank unchanged:
//
//   Forward(batch): BeginStep (ranks agree on the step: tokens, placement swap, stop), then
//     - microbatching off: the batch on the rank's runner (stream 0);
//     - on (some rank's batch >= microbatch_min_tokens, the same decision on every rank): the
//       batch split by sequences into two microbatches, run at once on the runner (stream 0)
//       and its fork (stream 1); a ComputeGate lets one compute while the other's
//       dispatch/combine waits for peers. Results are identical either way (batch invariance).
//   An empty batch still joins every MoE layer (lock-step).
//
// Followers (ranks with no requests of their own, e.g. the workers of `strata generate --ep`)
// call ServeUntilStop(); the rank that drives the requests calls Stop() when done. When every
// rank serves requests (data-parallel instances), each rank's engine waits on "own work or
// PeerStepPending()" and joins a peer's step with an empty batch.
// Thread-safety: one thread drives an EpRunner (as for any ModelRunner); PeerStepPending,
// SetPeerStepWake, stopped() and stats() from any thread.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "expert_parallel/compute_gate.h"
#include "expert_parallel/ep_endpoint.h"
#include "model/model_runner.h"

namespace strata::expert_parallel {

struct EpRunnerOptions {
  bool microbatch = true;
  // Microbatching is on for a step when the largest batch of any rank has at least this many
  // tokens (below it the per-layer overhead of two streams costs more than the overlap gains).
  // Measured: splitting decode batches of 16-256 tokens per rank cost more (a second pass over
  // the weights, per-microbatch overheads) than the overlap hid, on 2 CPU cores and on an H100
  // (README, bench/results/ep*.json).
  int64_t microbatch_min_tokens = 512;
};

struct EpRunnerStats {
  int64_t steps = 0;
  int64_t microbatched_steps = 0;
  EpStats ep;
  OverlapStats overlap;
};

class EpRunner final : public model::ModelRunner {
 public:
  // Loads the checkpoint for this rank around a joined `endpoint` (EpEndpoint::Join done).
  static StatusOr<std::unique_ptr<EpRunner>> Create(const std::string& model_dir,
                                                    model::RunnerOptions runner_options,
                                                    std::unique_ptr<EpEndpoint> endpoint,
                                                    EpRunnerOptions options);
  ~EpRunner() override;

  const model::ModelConfig& config() const override { return runner_->config(); }
  const kvcache::KvCacheSpec& kv_spec() const override { return runner_->kv_spec(); }
  int32_t num_kv_blocks() const override { return runner_->num_kv_blocks(); }
  const model::LoadStats& load_stats() const override { return runner_->load_stats(); }
  ops::Backend& backend() override { return runner_->backend(); }
  // kCancelled when another rank has asked the group to stop.
  Status Forward(const model::ForwardBatch& batch, model::ForwardResult* result) override;
  StatusOr<std::unique_ptr<ModelRunner>> Fork(Communicator* communicator) override {
    return runner_->Fork(communicator);
  }
  kvcache::PagedKvCache* host_kv_cache() override { return runner_->host_kv_cache(); }
  std::span<const ops::MlpWeights> ExpertWeights(int layer) const override {
    return runner_->ExpertWeights(layer);
  }
  bool PeerStepPending() const override { return !stopped_ && endpoint_->PeerStepPending(); }
  void SetPeerStepWake(std::function<void()> wake) override {
    endpoint_->SetStepListener(std::move(wake));
  }
  // Some rank stopped the group (Stop), or this one did.
  bool stopped() const { return stopped_; }

  // Joins steps with no tokens until some rank calls Stop().
  Status ServeUntilStop();
  // Tells every rank to stop (they return from ServeUntilStop; their Forward fails).
  Status Stop();

  EpEndpoint& endpoint() { return *endpoint_; }
  EpRunnerStats stats() const;
  void ResetStats();

 private:
  EpRunner() = default;
  Status RunStep(const model::ForwardBatch& batch, const StepInfo& info,
                 model::ForwardResult* result);

  EpRunnerOptions options_;
  std::unique_ptr<EpEndpoint> endpoint_;
  std::unique_ptr<ComputeGate> gate_;
  std::unique_ptr<Communicator> comm0_, comm1_;
  std::unique_ptr<model::ModelRunner> runner_, fork_;
  model::ForwardResult result1_;
  std::atomic<int64_t> steps_{0}, microbatched_steps_{0};  // read by stats() on other threads
  std::atomic<bool> stopped_{false};
};

// Faults in the pages of the experts `placement` puts on `rank` (the EPLB weight preparation on
// a CPU: the weights are mapped; the new experts' pages are read before the swap so the first
// step after it does not stall on them).
Status PrefaultExperts(const model::ModelRunner& runner, const Placement& placement, int rank);

}  // namespace strata::expert_parallel
