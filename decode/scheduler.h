// Continuous batching over a paged KV cache: the step loop of the embedded engine.
//
// Each Step() builds one ForwardBatch under a token budget: running sequences first (in arrival
// order; a decode needs one token, a sequence still in prefill takes a chunk of its prompt),
// then waiting sequences in FIFO order while the budget, max_num_seqs and the KV blocks allow
// (chunked prefill: a long prompt is spread over several steps). A waiting sequence first looks
// its full prompt blocks up in the prefix index and reuses the cached ones (reported as
// cached_tokens). When the running set needs a block and none is free, the most recently
// arrived running sequence is preempted: its blocks are released (full ones stay cached) and it
// goes back to the head of the queue to be recomputed (prompt + what it generated so far).
// After the forward, each sequence whose chunk reached its last known token samples one token
// (ops::SampleToken; its uniform draw depends only on seed and position, so preemption and
// batching do not change outputs), and the new full blocks are published for reuse.
//
// Every block is released on every path: finish, stop, abort, deadline, error. Thread-safety:
// none; the Engine calls it from its step thread only.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "decode/generation.h"
#include "kvcache/block_pool.h"
#include "model/model_runner.h"

namespace strata::decode {

// Disaggregated prefill (DESIGN.md §3): what the prefill instance learns while a request's
// prompt is computed. Both run on the step thread, inside Step().
struct PrefillHooks {
  // Layer `layer`'s KV of the whole prompt of `request_id` is written (called during the forward
  // of the prompt's last chunk, once per layer): it can move to decode while later layers run.
  std::function<void(const std::string& request_id, std::span<const kvcache::BlockId> blocks,
                     int64_t num_tokens, int layer)>
      on_layer_kv_written;
  // The request sampled its first token and is done here. Its blocks are not freed: they pass
  // to the callee with one reference each, given back later with Scheduler::ReleaseBlocks().
  std::function<void(const std::string& request_id, std::vector<kvcache::BlockId> blocks,
                     int32_t first_token)>
      on_prefilled;
};

struct SchedulerOptions {
  int max_num_seqs = 64;             // running sequences at most
  int max_num_batched_tokens = 512;  // tokens per step (decode tokens + prefill chunks)
  int max_model_len = 4096;          // prompt + output
  int max_waiting = 1024;            // queue bound (Submit answers kResourceExhausted beyond)
  bool enable_prefix_caching = true;
  std::vector<int32_t> eos_token_ids;  // the model's EOS ids
  PrefillHooks prefill_hooks;          // set on a prefill instance only
  // A data-parallel EP rank (the runner is lock-step with peers that run their own requests):
  // the engine also wakes when a peer begins a step (ModelRunner::PeerStepPending) and joins it
  // with an empty forward when it has nothing to run.
  bool join_peer_steps = false;
  // Decode: a reservation that ends while a prefill instance writes into it keeps its blocks
  // until that writer is done (EndKvWrite), gone (DropKvWriter), or this long has passed.
  int64_t kv_write_grace_ms = 30000;
};

// One event to deliver, produced by a step. Delivered by the caller without locks held.
struct PendingEvent {
  GenerationService::EventCallback* callback = nullptr;  // valid until the next Step()
  TokenEvent event;
};

// The checks of a request that need only the model's vocabulary and context length: prompt
// not empty and inside the vocabulary, max_tokens >= 1, prompt + max_tokens within
// max_model_len, sampling values in range. kInvalidArgument naming the field.
Status ValidateGenerateRequest(const GenerateRequest& request, int64_t vocab_size,
                               int max_model_len);

class Scheduler {
 public:
  // `runner` must outlive the scheduler; its KV blocks are managed here.
  Scheduler(SchedulerOptions options, model::ModelRunner* runner);
  ~Scheduler();

  // Checks a request against the model (vocabulary, context, sampling ranges). Pure.
  Status Validate(const GenerateRequest& request) const;
  // Queues a validated request. kResourceExhausted when max_waiting is reached.
  Status Add(GenerateRequest request, GenerationService::EventCallback on_event);
  // Marks a request aborted; it is finished (kAbort) at the start of the next step.
  void Abort(const std::string& request_id);

  // --- Disaggregated serving (DESIGN.md §3).
  // Prefill: queues a validated request whose first `preloaded.size()` blocks already hold the
  // KV of its first preloaded.size() * block_size prompt tokens (read from the KV pool; one
  // reference each, now the request's). They count as cached tokens.
  Status AddPreloaded(GenerateRequest request, GenerationService::EventCallback on_event,
                      std::vector<kvcache::BlockId> preloaded);
  // Decode: reserves the blocks for a validated request whose prompt is prefilled elsewhere and
  // returns them (token order). The request holds them, not running, until Activate() or until
  // MonotonicNanos() passes `lease_deadline_ns` (then it ends with kError). kResourceExhausted
  // when the blocks are not free.
  StatusOr<std::vector<kvcache::BlockId>> Reserve(GenerateRequest request,
                                                  GenerationService::EventCallback on_event,
                                                  int64_t lease_deadline_ns);
  // Decode: the prompt's KV is in the reserved blocks and prefill sampled `first_token`: the
  // request queues to run (its next step computes first_token's KV and samples the second
  // token); if first_token already ends it, it finishes at the next step without more tokens.
  // kNotFound for an unknown (expired, aborted) request.
  Status Activate(const std::string& request_id, int32_t first_token);
  // Decode: `writer` (an opaque id of the prefill instance's connection) starts writing the
  // KV of the reserved request. From then on, if the reservation ends (abort, lease) before
  // Activate(), its blocks are held, not reused, until EndKvWrite(), DropKvWriter(writer) or
  // kv_write_grace_ms: a write still in flight never lands in another request's blocks.
  // kNotFound when the reservation is gone (the writer must not write).
  Status BeginKvWrite(const std::string& request_id, uint64_t writer);
  // The writer of `request_id` is done with it (KvReady, whether or not the push worked).
  void EndKvWrite(const std::string& request_id);
  // The writer's connection failed: nothing more of it lands, and the reservations it was
  // writing end (kError, kUnavailable) at the next step: their KV will not be complete.
  void DropKvWriter(uint64_t writer);
  // Block ids handed out by AddPreloaded's caller or PrefillHooks::on_prefilled: one reference
  // each. Also allocates for the KV-pool fetch of a prefill (AllocateBlocks).
  void ReleaseBlocks(std::span<const kvcache::BlockId> blocks);
  StatusOr<std::vector<kvcache::BlockId>> AllocateBlocks(int32_t n);
  // The local prefix index (prefill: how much of a prompt is cached here already).
  kvcache::BlockPool& mutable_block_pool() { return pool_; }
  int num_sequences() const { return static_cast<int>(sequences_.size()); }
  // Ends every request with `finish` (shutdown).
  void AbortAll(std::vector<PendingEvent>* events);

  // Runs one step. Appends the events to deliver; returns the forward's error if it failed
  // (the sequences of that batch then end with kError).
  Status Step(std::vector<PendingEvent>* events);

  bool HasWork() const { return !running_.empty() || !waiting_.empty(); }
  // Requests holding reserved blocks while they wait for Activate(), and ended reservations
  // whose blocks wait for their writer (both expire on their own: look again now and then).
  int num_reserved() const { return static_cast<int>(reserved_.size() + held_for_writer_.size()); }
  GenerationStats Stats() const;
  const kvcache::BlockPool& block_pool() const { return pool_; }
  // Steps run and sequences preempted so far (tests, benchmarks).
  int64_t num_steps() const { return num_steps_; }
  int64_t num_preemptions() const { return num_preemptions_; }

 private:
  struct Sequence;
  struct Scheduled {
    Sequence* seq;
    int num_tokens;
    bool sample;  // the chunk reaches the last known token: sample after it
  };

  // Grows `seq`'s block table to hold `num_tokens`; false when the pool is out of blocks.
  bool EnsureBlocks(Sequence* seq, int64_t num_tokens);
  void ReleaseBlocks(Sequence* seq);
  void Preempt(Sequence* seq);
  // Finishes a sequence: frees its blocks, queues its final event, drops it from the sets.
  void Finish(Sequence* seq, FinishReason reason, Status error, std::vector<PendingEvent>* events);
  void PublishFullBlocks(Sequence* seq);
  void Schedule(std::vector<Scheduled>* batch);
  bool AdmitWaiting(Sequence* seq, int* budget, std::vector<Scheduled>* batch);
  void ExpireAndAbort(std::vector<PendingEvent>* events);
  // The blocks of ended reservations whose writer may still write into them.
  struct HeldForWriter {
    std::string request_id;
    uint64_t writer = 0;
    std::vector<kvcache::BlockId> blocks;
    int64_t until_ns = 0;
  };
  void ReleaseHeldIf(const std::function<bool(const HeldForWriter&)>& pred);
  void Sample(Sequence* seq, std::span<const float> logits, std::vector<PendingEvent>* events);
  void Reap();

  SchedulerOptions options_;
  model::ModelRunner* runner_;
  int block_size_;
  int64_t vocab_size_;
  kvcache::BlockPool pool_;
  std::map<std::string, std::unique_ptr<Sequence>> sequences_;  // by request id
  std::vector<Sequence*> running_;                              // arrival order
  std::deque<Sequence*> waiting_;    // arrival order (preempted ones go back in order)
  std::vector<Sequence*> reserved_;  // decode: blocks reserved, waiting for Activate()
  std::vector<HeldForWriter> held_for_writer_;
  std::vector<std::unique_ptr<Sequence>> finished_;  // freed at the start of the next step
  uint64_t next_arrival_ = 0;
  int64_t num_steps_ = 0;
  int64_t num_preemptions_ = 0;
  int64_t prefix_hit_tokens_ = 0;
  int64_t prefix_query_tokens_ = 0;
};

}  // namespace strata::decode
