// Internal to ep_endpoint.cc and ep_communicator.cc: the state of one EP rank.
#pragma once

#include <map>

#include "expert_parallel/ep_endpoint.h"

namespace strata::expert_parallel {

enum class Phase : int { kDispatch = 0, kCombine = 1 };

// Message types of the EP group (the layer above the transport picks them).
inline constexpr transport::MessageType kEpHello = 0x45500001;
inline constexpr transport::MessageType kEpTable = 0x45500002;
inline constexpr transport::MessageType kEpRegion = 0x45500003;
inline constexpr transport::MessageType kEpReady = 0x45500004;
inline constexpr transport::MessageType kEpStep = 0x45500005;
inline constexpr transport::MessageType kEpAbort = 0x45500006;
// "I have every record of the stop step": ranks leave only when all have said it.
inline constexpr transport::MessageType kEpBye = 0x45500007;
// EpEndpoint::Broadcast's payload (rank 0 -> the others).
inline constexpr transport::MessageType kEpBroadcast = 0x45500008;

// "Your receive buffer (stream, phase) now holds my round `round`, `bytes` long." 12 bytes, so
// the payload string stays in its small-string buffer (no allocation).
struct ReadyMessage {
  uint8_t stream;
  uint8_t phase;
  uint16_t reserved;
  uint32_t bytes;
  uint32_t round;
};
static_assert(sizeof(ReadyMessage) == 12);

struct StepMessage {
  uint64_t step;
  int64_t num_tokens;
  uint64_t ready_version;
  uint64_t stop;
};

struct EpEndpoint::Impl {
  EpOptions opt;
  WireShape shape;
  std::unique_ptr<transport::Transport> transport;
  std::unique_ptr<Collective> collective;  // instead of the transport, when set
  transport::Mailbox bootstrap;
  transport::Mailbox broadcasts;  // kEpBroadcast (apart: one may overtake a slow rank's Join)
  // SetStepListener's callback; its own lock, held while it runs (never with `mu`).
  std::mutex listener_mu;
  std::function<void()> on_peer_step;
  std::string listen_address;

  // Buffers: per stream [dispatch send | dispatch recv | combine send | combine recv], each
  // section one slot of capacity dcap / ccap per rank. One allocation, one registration.
  size_t dcap = 0, ccap = 0, stream_bytes = 0, buffer_bytes = 0;
  uint8_t* buffer = nullptr;
  std::unique_ptr<transport::Region> region;
  std::vector<transport::RemoteRegion> remote;  // per rank
  std::vector<transport::PeerId> peers;         // per rank (kInvalidPeer for self)

  enum Section { kDispatchSend = 0, kDispatchRecv = 1, kCombineSend = 2, kCombineRecv = 3 };
  size_t Offset(int stream, Section section, int slot) const {
    size_t base = stream * stream_bytes;
    const size_t size = static_cast<size_t>(opt.size);
    switch (section) {
      case kDispatchSend:
        return base + slot * dcap;
      case kDispatchRecv:
        return base + size * dcap + slot * dcap;
      case kCombineSend:
        return base + 2 * size * dcap + slot * ccap;
      case kCombineRecv:
        return base + 2 * size * dcap + size * ccap + slot * ccap;
    }
    return 0;
  }
  uint8_t* At(int stream, Section section, int slot) {
    return buffer + Offset(stream, section, slot);
  }

  mutable std::mutex mu;
  std::condition_variable cv;
  Status failed;  // guarded by mu
  bool closing = false;
  // The stop step is done here; ranks that said bye may close their connections (guarded by mu).
  bool stopping = false;
  std::vector<bool> bye_from;                // per rank
  std::map<transport::PeerId, int> rank_of;  // guarded by mu
  // [stream][phase][src]: rounds arrived, and the byte size of the latest.
  std::vector<int64_t> arrivals;
  std::vector<uint32_t> arrived_bytes;
  std::vector<int> puts_pending;  // [stream][phase]
  std::vector<uint64_t> rounds;   // [stream]: MoE calls completed (used by the stream only)
  std::vector<std::deque<StepMessage>> step_messages;  // per src

  size_t ArrivalIndex(int stream, Phase phase, int src) const {
    return (static_cast<size_t>(stream) * 2 + static_cast<int>(phase)) * opt.size + src;
  }

  // Placement and EPLB.
  std::shared_ptr<const Placement> placement;  // guarded by mu (swapped in BeginStep)
  std::shared_ptr<const Placement> pending;    // planned, being prepared
  std::atomic<uint64_t> ready_version{0};
  std::function<Status(const Placement&, int)> preparer;
  std::thread prep_thread;
  uint64_t step = 0;
  int steps_in_window = 0;
  ExpertLoad window_load;  // guarded by mu
  ExpertLoad total_load;   // guarded by mu
  EpStats stats;           // guarded by mu

  void Fail(const Status& why);  // first failure wins; wakes every waiter
  Status FailedStatus() {
    std::lock_guard<std::mutex> lock(mu);
    return failed;
  }
  void OnMessage(transport::Message m);
  void OnPeerFailure(transport::PeerId peer, const Status& why);
  // Puts [local offset, +bytes) into rank dst's region at remote_offset; on completion sends
  // the ready message. Counts as pending until then.
  void PutAndNotify(int stream, Phase phase, int dst, size_t local_offset, size_t remote_offset,
                    uint32_t bytes, uint32_t round);
  // Waits until every peer's round `round` of (stream, phase) arrived and this rank's Puts of
  // it completed. Releases `gate` meanwhile.
  Status WaitRound(int stream, Phase phase, int64_t round, ComputeGate* gate, int64_t* wait_ns);
  // Accounts one finished round: `received` [size] entries per rank, `experts` [num_experts]
  // global histogram of `layer`, and the timings/bytes in `delta` (its `received` is unused).
  void AddRound(int layer, const int64_t* received, const int64_t* experts, const EpStats& delta);
};

}  // namespace strata::expert_parallel
