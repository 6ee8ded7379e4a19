// EpEndpoint: one rank of an expert-parallel group inside an instance (DESIGN.md §1, §4).
//
// It owns the rank's transport connections to every other rank, the static send/receive buffers
// of the dispatch and combine rounds, the current expert placement and the EPLB state, and hands
// out one Communicator per stream (stream = microbatch: 0, and 1 when pipelining). Each stream
// has its own buffer set, so two microbatches are in flight at once (double buffering); within a
// stream, lock-step (every rank joins every layer's dispatch and combine, with an empty batch if
// it has no tokens) guarantees a buffer is read before a peer can write it again.
//
// Data path of one MoE layer call (stream s, round n):
//   Dispatch: route each (token, choice) to the slot that holds its expert (Placement::SlotFor),
//   pack one message per destination rank into the registered send buffer (rows INT8 with
//   per-row scales or BF16, one row per token and destination, routing metadata -- entries per
//   rank and the expert histogram -- in the same message), Put it into the destination's
//   receive buffer, and once the Put completes send a 12-byte "ready" message. The rank's own
//   share goes through the same encoding, straight into its receive buffer.
//   Combine: send each received entry's expert output back as BF16 in the order of the source's
//   entries; the source sums each token's outputs in top-k order. Every (token, choice) thus
//   takes the same arithmetic path whatever the EP size and placement, so with BF16 dispatch
//   results are bit-identical across EP sizes (EP=1 included: it runs this same code with no
//   peers). LocalCommunicator (exact f32) is a different reference.
//
// Failure: every wait has a deadline (timeout_ms). A peer failure (transport callback), an
// Abort() of any rank or a malformed message fails the whole group: every pending and later call
// returns that Status (kUnavailable / kAborted / kDataLoss), never a hang.
//
// Steps: BeginStep() is called by every rank before each forward. It exchanges a small record
// (tokens, stop flag, EPLB readiness) so ranks agree on step-level decisions; the placement only
// changes there. EPLB (eplb_window_steps > 0): the expert histograms of every dispatch are summed
// (all ranks see all histograms, so every rank holds the same global counts); every window the
// planner computes a new placement (deterministic: the same on every rank), a background thread
// prepares the rank's weights for it (SetExpertPreparer), and once every rank reports it ready,
// all swap at the same step boundary.
//
// Data-parallel ranks (every rank drives its own requests, DESIGN.md §1): any rank may begin a
// step; the others must join it promptly, with an empty batch if they have nothing to run.
// SetStepListener tells a rank's driver when a peer has begun a step (PeerStepPending), so an
// idle driver waits on "own work or a peer's step" instead of polling.
//
// Thread-safety: BeginStep and stats calls from the driving thread; each stream's Communicator
// from one thread at a time; different streams from different threads concurrently;
// PeerStepPending, SetStepListener, Broadcast and WaitBroadcast from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "expert_parallel/collective.h"
#include "expert_parallel/communicator.h"
#include "expert_parallel/compute_gate.h"
#include "expert_parallel/eplb.h"
#include "expert_parallel/placement.h"
#include "expert_parallel/wire.h"
#include "transport/sync.h"
#include "transport/transport.h"

namespace strata::expert_parallel {

struct EpOptions {
  int rank = 0;
  int size = 1;
  int num_layers = 0;  // model layers (placement tables are indexed by layer)
  int num_experts = 0;
  int top_k = 0;
  int64_t hidden = 0;
  int64_t max_tokens_per_rank = 256;  // tokens one rank passes to one MoE call, at most
  WireDType dispatch_dtype = WireDType::kInt8;
  int num_streams = 2;
  int64_t timeout_ms = 30000;                  // every wait for a peer
  int redundant_experts = 0;                   // extra slots (used when `placement` is null)
  std::shared_ptr<const Placement> placement;  // initial; null: Uniform(redundant_experts)
  int eplb_window_steps = 0;                   // 0: EPLB off
};

struct StepInfo {
  uint64_t step = 0;
  int64_t max_tokens = 0;    // largest num_tokens of any rank this step
  int64_t total_tokens = 0;  // over the group
  bool stop = false;         // some rank asked to stop
  bool swapped = false;      // the placement changed at this step
  uint64_t placement_version = 0;
};

struct EpStats {
  int64_t rounds = 0;                       // MoE calls (dispatch + combine pairs), all streams
  int64_t dispatch_ns = 0, combine_ns = 0;  // wall time in Dispatch / Combine
  int64_t wait_ns = 0;                      // of which waiting for peers
  int64_t dispatch_bytes = 0, combine_bytes = 0;  // this rank sent to peers
  int64_t local_bytes = 0;                        // encoded for itself
  // Entries (token, choice) each rank received, per layer: [num_layers * size]. Every rank
  // sees the whole matrix (it travels in the dispatch metadata).
  std::vector<int64_t> received;
  std::vector<int64_t> received_since_swap;  // the same, since the last placement swap
  int64_t swaps = 0;
  uint64_t placement_version = 0;
  int64_t Received(int layer, int rank, int size) const { return received[layer * size + rank]; }
};

class EpEndpoint {
 public:
  // `transport` may be null when size == 1. Allocates and registers the buffers.
  static StatusOr<std::unique_ptr<EpEndpoint>> Create(
      EpOptions options, std::unique_ptr<transport::Transport> transport);
  // The same over a Collective (e.g. NCCL, nccl_collective.h) instead of a Transport: every
  // round is one all-to-all, the rank's own share included. The collective is already
  // connected (no Listen/Join); it needs num_streams == 1 (one ordered sequence of rounds).
  static StatusOr<std::unique_ptr<EpEndpoint>> CreateWithCollective(
      EpOptions options, std::unique_ptr<Collective> collective);
  ~EpEndpoint();

  // Listens for the other ranks ("127.0.0.1:0" over UCX, "name:0" in-process); returns the
  // address. Rank 0's address is the one every other rank joins.
  StatusOr<std::string> Listen(const std::string& address);
  // Connects the full mesh and exchanges buffer descriptors; rank 0 waits for the others.
  Status Join(const std::string& leader_address);

  // The communicator of `stream` (< num_streams). `gate` (optional, not owned) is released while
  // waiting for peers. The endpoint must outlive it.
  std::unique_ptr<Communicator> NewCommunicator(int stream, ComputeGate* gate = nullptr);

  StatusOr<StepInfo> BeginStep(int64_t num_tokens, bool stop);

  // True when a peer has begun a step this rank has not joined yet (and the group has neither
  // failed nor stopped): the driver should call BeginStep (via a forward) soon, or the peer
  // waits until its deadline.
  bool PeerStepPending() const;
  // `on_peer_step` runs on a transport thread each time a peer's step record arrives (no
  // endpoint lock held; it must only notify). Null removes it; once SetStepListener returns, a
  // removed listener is not running and will not run again.
  void SetStepListener(std::function<void()> on_peer_step);

  // A small message from rank 0 to every other rank, once Join is done (e.g. the address of the
  // instance rank 0 serves, which the other ranks report to). Rank 0 sends; the others wait for
  // it up to `timeout_ms` (kDeadlineExceeded, or the group's failure).
  Status Broadcast(const std::string& payload);
  StatusOr<std::string> WaitBroadcast(int64_t timeout_ms);

  // Runs on a background thread for every new placement before this rank reports it ready
  // (e.g. fault in the weights of the experts it gains). An error fails the group.
  void SetExpertPreparer(std::function<Status(const Placement&, int rank)> preparer);

  // Fails the group with `why`: peers fail fast with kAborted.
  void Abort(const Status& why);

  const EpOptions& options() const { return options_; }
  int rank() const { return options_.rank; }
  int size() const { return options_.size; }
  std::shared_ptr<const Placement> placement() const;
  EpStats stats() const;
  void ResetStats();
  ExpertLoad total_load() const;  // global counts since the start (or ResetStats)
  Status status() const;          // OK, or why the group failed

  // Internal to the communicators (ep_communicator.cc).
  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  EpEndpoint() = default;
  static StatusOr<std::unique_ptr<EpEndpoint>> Build(EpOptions options,
                                                     std::unique_ptr<transport::Transport> t,
                                                     std::unique_ptr<Collective> c);
  EpOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata::expert_parallel
