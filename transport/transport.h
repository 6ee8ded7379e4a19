// transport::Transport -- how Strata processes talk (DESIGN.md §4): ordered messages for control,
// registered memory with Put/Get for bulk (KV blocks).
//
// Implementations: ucx/ (UCX active messages + RMA or AM rendezvous), inproc/ (peers in one
// process), fault/ (a decorator that injects drops, delays and failures, for tests).
//
// Threading contract (every implementation):
//   - All public methods are thread-safe, and may also be called from inside a callback.
//   - Callbacks (Handlers and Completions) run on a thread owned by the transport (its progress
//     or dispatch thread), never inside the call that started the work (except Put/Get after
//     Shutdown, which complete at once with kCancelled on the caller). They run one at a time
//     per transport, so they must not block (no waiting on a future of this same transport, no
//     long compute): hand work to another thread instead.
//   - After Shutdown() returns (or the destructor), no callback runs any more and every pending
//     operation has completed (with an error if it had not finished).
//
// Every operation that waits for a peer has a deadline: a Put/Get that has not completed by its
// deadline completes with kDeadlineExceeded. Errors are common/status.h Statuses:
//   kUnavailable        the peer is gone (closed, failed, never connected)
//   kDeadlineExceeded   the deadline passed first
//   kCancelled          this side closed the peer or shut down while the operation was pending
//   kInvalidArgument    a bad address, type, region, offset or length
//   kFailedPrecondition a call in the wrong state (e.g. SetHandlers after Listen)
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/status.h"

namespace strata::transport {

// A connected peer, as this side knows it. Ids are never reused within one Transport; 0 is
// never a valid id.
using PeerId = uint64_t;
inline constexpr PeerId kInvalidPeer = 0;

using Deadline = MonoClock::time_point;
inline Deadline DeadlineAfterMillis(int64_t ms) {
  return MonoClock::now() + std::chrono::milliseconds(ms);
}

// Message types are chosen by the layer above (proto::kEnvelopeMessageType = 1, ...). Types at
// or above kFirstReservedMessageType are the transports' own and are refused by Send.
using MessageType = uint32_t;
inline constexpr MessageType kFirstReservedMessageType = 0xffff0000u;

struct Message {
  PeerId peer = kInvalidPeer;  // who sent it
  MessageType type = 0;
  std::string payload;
};

// Memory of a peer that this side may Put into / Get from. It is plain data, produced by
// Region::remote() on the owner and carried in a message (proto strata.v1.RemoteMemory has the
// same three fields). `packed_key` is opaque and only valid with the transport kind that made it.
struct RemoteRegion {
  uint64_t address = 0;  // the owner's address of the region's first byte
  uint64_t length = 0;
  std::string packed_key;
};

// Local memory registered with a transport. The memory stays owned by the caller and must stay
// valid while the Region exists; destroying the Region deregisters it. Destroy a Region only when
// no Put/Get of this side uses it and no peer will access it any more (a peer that still does
// gets an error or, with RMA, undefined data).
class Region {
 public:
  virtual ~Region() = default;
  virtual void* data() const = 0;
  virtual uint64_t size() const = 0;
  // The descriptor to send to peers.
  virtual const RemoteRegion& remote() const = 0;
};

// One bulk move between `length` bytes at local->data() + local_offset and the remote region at
// remote_offset. Put writes local -> remote; Get reads remote -> local.
struct Transfer {
  PeerId peer = kInvalidPeer;
  const Region* local = nullptr;
  uint64_t local_offset = 0;
  RemoteRegion remote;
  uint64_t remote_offset = 0;
  uint64_t length = 0;
  Deadline deadline{};
};

// A peer's memory mapped into this process for reading (Transport::MapRemote).
class RemoteMapping {
 public:
  virtual ~RemoteMapping() = default;
  virtual uint64_t size() const = 0;
  // Runs `read` with the region's first byte while the mapping is guaranteed to stay; returns
  // false, without running it, once the peer has closed or failed (the mapping is gone). `read`
  // must be short and must not call the transport: closing the peer waits for it. The peer may
  // write the memory meanwhile; the caller validates what it read (e.g. by a version word).
  virtual bool Access(const std::function<void(const uint8_t* base)>& read) const = 0;
};

// Called exactly once per Put/Get. OK means the data is in place at the destination (for Put:
// visible to the remote side; for Get: in local memory). Once it has been called, with any
// status, the transport no longer touches either buffer of that transfer.
using Completion = std::function<void(Status)>;

// Called exactly once per PutBatch/GetBatch, with each transfer's status in the batch's order;
// as for Completion, the transport no longer touches any of the buffers by then.
using BatchCompletion = std::function<void(std::vector<Status>)>;

struct Handlers {
  // A message arrived. Messages from one peer arrive in the order that peer sent them.
  std::function<void(Message)> on_message;
  // A peer connected to our listener (after the connection handshake). Optional.
  std::function<void(PeerId, const std::string& remote_address)> on_peer_connected;
  // A peer failed or closed its side: its pending operations fail with kUnavailable and later
  // calls naming it return kUnavailable. Not called for peers this side Disconnect()s. Optional.
  std::function<void(PeerId, const Status& why)> on_peer_failure;
};

class Transport {
 public:
  virtual ~Transport() = default;

  // A short name of the implementation and its configuration, e.g. "ucx(tcp)" or "inproc".
  virtual std::string name() const = 0;

  // Sets the callbacks. Only before the first Listen/Connect (kFailedPrecondition after).
  virtual Status SetHandlers(Handlers handlers) = 0;

  // Accepts connections at `address` ("host:port"; port 0 picks a free port). Returns the
  // address peers should connect to. At most one listener per transport.
  virtual StatusOr<std::string> Listen(const std::string& address) = 0;

  // Connects to a listening peer. Blocks the caller until the connection handshake completes or
  // the deadline passes (kDeadlineExceeded); must not be called from a callback.
  virtual StatusOr<PeerId> Connect(const std::string& address, Deadline deadline) = 0;

  // Queues `payload` for the peer and returns at once: OK means accepted, not delivered. Ordered
  // per peer. If the peer fails first, the message is lost and on_peer_failure says so.
  virtual Status Send(PeerId peer, MessageType type, std::string payload) = 0;

  // Registers [data, data + bytes) for Put/Get by this side and by peers.
  virtual StatusOr<std::unique_ptr<Region>> RegisterMemory(void* data, uint64_t bytes) = 0;

  // Allocates `bytes` (contents unspecified, page aligned) owned by the returned Region, which
  // frees it on destruction, and registers them as RegisterMemory does. Prefer it for memory that
  // peers Put into or Get from (KV blocks): a transport may place it where peers reach it
  // faster. UCX puts it in shared memory when it can, and peers on this host then copy to and
  // from it directly (one memcpy, no messages). This default allocates from the heap.
  virtual StatusOr<std::unique_ptr<Region>> AllocateMemory(uint64_t bytes);

  // Bulk moves; `done` runs on the transport thread (see the threading contract). A transfer whose
  // arguments are invalid completes with kInvalidArgument (still through `done`).
  virtual void Put(const Transfer& transfer, Completion done) = 0;
  virtual void Get(const Transfer& transfer, Completion done) = 0;

  // Several Puts (Gets) with one completion, after the last of them. Each transfer succeeds or
  // fails on its own, as alone. The default starts them one by one; UCX does a batch's same-host
  // copies in one go, shared out across its copy threads (a KV Put of 1 MiB is 12-108 segments
  // of a few KiB to 100 KiB). An empty batch completes at once, on the caller's thread.
  virtual void PutBatch(std::vector<Transfer> transfers, BatchCompletion done);
  virtual void GetBatch(std::vector<Transfer> transfers, BatchCompletion done);

  // The peer's `remote` region mapped into this process, so that this side reads it with plain
  // loads, without messages or the transport's thread. Only where the transport can: UCX maps a
  // same-host peer's AllocateMemory region when shared memory is enabled. kUnimplemented where
  // it cannot (this default, and tcp-only UCX), kFailedPrecondition for memory that cannot be
  // mapped (RegisterMemory of user memory), kUnavailable for a peer that is not open. May wait
  // for the transport's thread up to `deadline`; not from a callback.
  virtual StatusOr<std::shared_ptr<RemoteMapping>> MapRemote(PeerId peer,
                                                             const RemoteRegion& remote,
                                                             Deadline deadline);

  // Closes the connection to `peer`: its pending operations complete with kCancelled and the
  // peer sees a failure. Unknown or already closed peers are kNotFound.
  virtual Status Disconnect(PeerId peer) = 0;

  // Closes every connection and the listener, completes what is pending, stops the threads.
  // Idempotent. Must not be called from a callback.
  virtual void Shutdown() = 0;
};

// Range check shared by the implementations: kInvalidArgument naming what is wrong.
Status ValidateTransfer(const Transfer& transfer);

}  // namespace strata::transport
