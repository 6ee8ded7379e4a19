// KvPoolServer -- one instance of the shared KV-cache pool (DESIGN.md §3-4): a DRAM arena of
// fixed-size slots registered with the transport, an index block hash -> slot, and the
// strata.v1 KvPool* requests (proto/kvpool.proto) served over its own service::RpcNode.
//
//   Lookup  the number of leading hashes held (the longest cached prefix).
//   Put     write-once: for each hash not held, reserve a slot (evicting the least recently
//           used unleased block when full; when nothing is evictable, fewer are stored and the
//           reply says so), pull the block from the source KvLocation by RMA Get through the
//           peer that sent the Put, and publish the hash only once its bytes arrived. A failed
//           read frees the slot unpublished. Replies KvPoolPutReply.
//   Get     leases the longest held prefix and replies where it is. Leased slots are never
//           evicted or reused; the lease ends with KvPoolRelease, after lease_ms (a timer), or
//           when its peer fails.
// The layout is fixed by the first Put (num_segments x segment_bytes, block_size_tokens); a
// Put with another layout is answered with INVALID_ARGUMENT. The arena is then laid out like an
// instance's paged KV: one array of num_slots segments per KV segment, each registered as its
// own region, so the pool describes its blocks with segments_in_regions = true (segment s of
// slot k at regions[s] + k * segment_bytes). Consecutive slots thus hold each segment
// contiguously, and a run of consecutive blocks moves as one transfer per segment
// (kvcache/pool_transfers.h) instead of one per block and segment.
//
// Threading: requests and timers run on the node's dispatch thread, read completions on the
// transport's thread; both take the server's lock briefly. Stats() may be called from any
// thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/metrics.h"
#include "common/status.h"
#include "kvcache/pool_arena.h"
#include "kvcache/pool_index.h"
#include "kvcache/pool_metrics.h"
#include "kvcache/slot_versions.h"
#include "service/rpc_node.h"

namespace strata::kvcache {

struct KvPoolServerOptions {
  uint64_t capacity_bytes = 1ull << 30;
  // The blocks live in memory from the transport's AllocateMemory (UCX: shared memory that a
  // client on this host copies to and from directly). Off, or when that allocation fails: an
  // anonymous arena, with huge pages when try_huge_pages and the system has them (better for
  // NIC registration when clients are on other hosts).
  bool transport_memory = true;
  bool try_huge_pages = true;
  // Fault the block memory in behind the first Put (the whole capacity is then resident from
  // the start: a capacity the host cannot hold fails at once instead of when the pool fills).
  bool prefault = true;
  // Lease length when a Get names none (0), and the most a Get may ask for.
  int64_t default_lease_ms = 10'000;
  int64_t max_lease_ms = 120'000;
  // How long pulling a Put's blocks may take when the Put names no timeout, and at most.
  int64_t default_put_timeout_ms = 10'000;
  int64_t max_put_timeout_ms = 120'000;
  // Larger requests are refused (INVALID_ARGUMENT): bounds the work one message can ask for.
  int64_t max_blocks_per_request = 1 << 16;
  std::string instance_id = "kvcache";
  // Prometheus metrics (strata_kvpool_*) go here when set; it must outlive the server.
  MetricsRegistry* metrics = nullptr;
};

struct KvPoolStats {
  uint64_t capacity_bytes = 0;
  uint64_t slot_bytes = 0;  // 0 until the first Put fixed the layout
  uint64_t used_bytes = 0;  // held + pending slots
  int64_t num_slots = 0;
  int64_t held_blocks = 0;
  int64_t pending_blocks = 0;
  int64_t leased_blocks = 0;
  int64_t active_leases = 0;
  int64_t hit_blocks = 0;   // Lookup: leading blocks found
  int64_t miss_blocks = 0;  // Lookup: blocks asked for beyond the held prefix
  uint64_t bytes_in = 0;    // stored by Puts
  uint64_t bytes_out = 0;   // read by readers: leased by Gets, or read directly
  int64_t evictions = 0;
  int64_t leases_granted = 0;
  int64_t leases_expired = 0;
  int64_t failed_blocks = 0;  // Put blocks whose read failed
  // Blocks read by same-host readers without a lease (kvcache/slot_versions.h), as they reported.
  int64_t direct_read_blocks = 0;
  std::string page_kind;  // "transport" | "hugetlb" | "thp" | "4k"
  // Bytes of the pool's memory faulted in ahead of the Puts that fill it (a background thread
  // starts when the first Put fixes the layout; a first write into a page would otherwise pay
  // for its fault inside the transfer).
  uint64_t prefaulted_bytes = 0;
};

class KvPoolServer {
 public:
  // Maps the arena, registers it with `transport` (fresh, as RpcNode::Create takes it) and starts
  // the node. Call Listen() next.
  static StatusOr<std::unique_ptr<KvPoolServer>> Create(
      std::unique_ptr<transport::Transport> transport, KvPoolServerOptions options);
  ~KvPoolServer();  // Shutdown()

  // Accepts clients at `address`; returns the address they should use.
  StatusOr<std::string> Listen(const std::string& address);
  std::string address() const { return node_->listen_address(); }

  KvPoolStats Stats() const;
  // The same figures as a registration heartbeat carries them (`strata kvcache --router`).
  v1::KvPoolLoad Load() const;
  // Stops the node and its transport (pending reads fail, nothing is published after). Idempotent.
  void Shutdown();

  service::RpcNode& node() { return *node_; }

 private:
  struct PutOp;
  struct Layout {
    uint32_t num_segments = 0;
    uint64_t segment_bytes = 0;
    uint32_t block_size_tokens = 0;
    uint64_t slot_bytes() const { return num_segments * segment_bytes; }
  };
  explicit KvPoolServer(KvPoolServerOptions options) : options_(std::move(options)) {}

  void OnRequest(transport::PeerId from, service::Envelope envelope);
  // Lookup, Get (lease), Release, and Put once the layout is fixed: short work under mu_,
  // answered on the transport's thread (no hop to the dispatch thread). The first Put goes to
  // the dispatch thread: it maps and registers the pool's memory.
  bool OnRequestInline(transport::PeerId from, service::Envelope& envelope);
  void OnPeerFailure(transport::PeerId peer);
  void OnLookup(transport::PeerId from, uint64_t call_id, const v1::KvPoolLookup& lookup);
  void OnPut(transport::PeerId from, uint64_t call_id, const v1::KvPoolPut& put);
  void OnGet(transport::PeerId from, uint64_t call_id, const v1::KvPoolGet& get);
  void OnRelease(transport::PeerId from, uint64_t call_id, const v1::KvPoolRelease& release);
  void OnDirectRead(transport::PeerId from, const v1::KvPoolDirectRead& read);
  // The Put's reads finished; blocks[t] are the blocks that transfer t carried.
  void OnPutTransfersDone(const std::shared_ptr<PutOp>& op,
                          const std::vector<std::vector<int>>& blocks,
                          const std::vector<Status>& statuses);
  // Checks `source` and fixes the layout on the first Put (mu_ held).
  Status AcceptLayoutLocked(const v1::KvLocation& source, int num_blocks);
  void ExpireLeases();
  // Makes sure a sweep runs by `expiry` (mu_ held): one timer for all leases, not one per Get
  // (each timer woke the dispatch thread).
  void ScheduleLeaseSweepLocked(transport::Deadline expiry);
  void ReplyTo(transport::PeerId peer, uint64_t call_id, service::Envelope reply);
  void SyncMetricsLocked();
  KvPoolStats StatsLocked() const;
  // Faults in regions_ in the background (mu_ held; once).
  void StartPrefaultLocked();

  const KvPoolServerOptions options_;
  std::unique_ptr<PoolArena> arena_;
  std::vector<std::unique_ptr<transport::Region>> regions_;  // one per segment, with the layout
  // With the layout, when regions_ came from the transport (mappable by same-host readers).
  std::unique_ptr<SlotVersions> versions_;
  std::unique_ptr<service::RpcNode> node_;

  mutable std::mutex mu_;
  Layout layout_;                                    // num_segments 0 until the first Put
  std::unique_ptr<PoolIndex> index_;                 // created with the layout
  KvPoolStats stats_;                                // counters; gauges are filled in by Stats()
  std::unique_ptr<KvPoolMetricsExporter> exporter_;  // with options_.metrics
  // When the pending lease sweep runs; Deadline::max() when none is pending.
  transport::Deadline lease_sweep_at_ = transport::Deadline::max();

  std::thread prefault_;
  std::atomic<bool> stop_prefault_{false};
  std::atomic<uint64_t> prefaulted_bytes_{0};
};

}  // namespace strata::kvcache
