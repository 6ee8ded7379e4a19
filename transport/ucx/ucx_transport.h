// UCX transport (libucx 1.13, ucp API): active messages for Send, memory registration with
// packed rkeys, and bulk Put/Get by RMA or by AM rendezvous.
//
// Bulk path (DESIGN.md §4). UCX emulates RMA over tcp in software, ~50x slower than its AM
// rendezvous there, while rc, dc and cuda_ipc do RMA natively. With BulkMode::kAuto each
// endpoint picks after its handshake: RMA (ucp_put_nbx/ucp_get_nbx + flush) when UCX assigned it
// an RMA lane on an RDMA transport, otherwise AM. Shared memory goes the AM way too: measured
// here, UCX 1.13's RMA on user memory over sm ran ~100x slower than AM rendezvous over sm (see
// ChooseRma in ucx_connection.cc); DESIGN.md §4 expected the opposite. AM path: a Put sends the
// bytes as an AM that the target receives straight into the registered region (rendezvous
// zero-copy for large sizes) and acknowledges; a Get asks the target to send them back the same
// way. The target checks every AM access against its registered regions. Force a path with
// kRma / kActiveMessage (e.g. in benchmarks); the chosen one is reported by BulkPath().
// Whatever the path, a transfer to a same-host peer (sm enabled) whose remote region came from
// AllocateMemory (UCX-allocated shared memory) is one memcpy into or out of that memory, mapped
// here with ucp_rkey_ptr: no messages, nothing needed from the peer's thread (without CMA, user
// memory cannot be reached that way, and UCX's own rendezvous for it runs over tcp lanes).
// A PutBatch/GetBatch is one command for the progress thread, and its direct copies are done
// together, split across the copy helpers when they come to 2 MiB or more (a KV block Put is
// 12-108 segment copies of a few KiB to 100 KiB; one by one each was a command and an event).
// MapRemote hands such a mapping to the caller, who then reads the peer's memory on its own
// thread; the mapping goes (Access returns false) when the peer closes or fails.
// Connections: Listen binds a ucp_listener on a TCP sockaddr ("127.0.0.1:0" picks a port).
// Connect creates a client endpoint and completes after a hello/ack handshake. Endpoints use
// UCP_ERR_HANDLING_MODE_PEER: a peer that dies (its sockets close) fails its endpoint, which runs
// on_peer_failure and completes that peer's pending transfers with kUnavailable.
// UCX_TLS and the other UCX_* variables are read from the environment as usual (tcp must be
// among them for the sockaddr connection manager, e.g. UCX_TLS=sm,tcp).
//
// Threading: one progress thread owns the ucp worker (UCS_THREAD_MODE_SINGLE). Public calls
// queue a command and wake it through the worker's event fd (ucp_worker_signal) when it sleeps;
// it sleeps in epoll on that fd when idle, after polling `spin_us` (and while UCX requests are in
// flight), yielding the CPU on turns that found nothing to do. All callbacks run on it, outside
// UCX's own callbacks (so they may call Send/Put/Get). Memory registration runs on the caller's
// thread (the context is created with mt_workers_shared).
//
// Deadlines: a transfer past its deadline completes with kDeadlineExceeded and its endpoint is
// closed (force): that is the only way to guarantee UCX no longer touches the buffers, so the
// peer is reported failed as well. Size deadlines for the slowest transfer you accept.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "transport/transport.h"

namespace strata::transport {

struct UcxOptions {
  // UCX transports to use, as UCX_TLS ("tcp", "sm,tcp", ...); empty = UCX_TLS or UCX's default.
  std::string tls;
  enum class BulkMode { kAuto, kRma, kActiveMessage };
  BulkMode bulk_mode = BulkMode::kAuto;
  // Poll (yielding between empty turns) this long after the last activity before sleeping on
  // the event fd. Lower latency for more CPU; 0 sleeps at once.
  int64_t spin_us = 100;
  // Threads that help the progress thread with same-host copies of 2 MiB and more (a transfer
  // into or out of a same-host peer's AllocateMemory region is a memcpy, and one core writes
  // fresh memory at a fraction of what the memory takes). -1: one per core beyond the first, at
  // most 3. Only with shared memory enabled; they sleep when there is nothing to copy.
  int copy_helpers = -1;
  // Larger incoming messages close the connection (kPayloadTooLarge); a bad peer cannot make
  // this side allocate without bound.
  uint64_t max_message_bytes = 256ull << 20;
  // How long Listen waits for the progress thread.
  int64_t setup_timeout_ms = 10000;
};

class UcxTransport : public Transport {
 public:
  // Creates the UCX context and worker and starts the progress thread.
  static StatusOr<std::unique_ptr<UcxTransport>> Create(const UcxOptions& options = {});

  // "rma" or "am" for an open peer; kUnavailable for one that is not.
  virtual StatusOr<std::string> BulkPath(PeerId peer) = 0;
};

// OK when the transports `tls` (UCX_TLS syntax; empty: UCX_TLS, else all) can connect two
// processes; else why not (e.g. "sm" alone: shared memory only, no connection ever opens).
Status CheckUcxTransports(const std::string& tls);

std::string_view BulkModeName(UcxOptions::BulkMode mode);
// "auto" | "rma" | "am".
StatusOr<UcxOptions::BulkMode> ParseBulkMode(std::string_view name);

}  // namespace strata::transport
