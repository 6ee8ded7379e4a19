// KvPoolClient -- how an instance (prefill) uses the shared KV pool (DESIGN.md §3-4): look up
// the longest cached prefix of a request's block hashes, read hit blocks into its own KV blocks,
// and offer newly computed full blocks.
//
// Several pool instances are sharded by consistent hashing of each block hash (a hash ring with
// virtual nodes, kvcache/pool_ring.h): every block lives on exactly one pool, and a request's
// chain is spread over all of them, so every call talks to the shards in parallel and combines
// their answers into one leading prefix. An empty address list means no pool: every block misses.
//
// Failures never surface as errors of the cache: a pool that is down, slow or fails counts as a
// miss (logged once until it answers again). After a connection failure the pool is not tried
// again for `reconnect_backoff_ms`; connections are made lazily (node->Connect) and re-made after
// a pool restarts.
//
// Threading: thread-safe. Lookup() and Fetch() block until their answers or the deadline, so
// they must not run on the node's dispatch thread (Lookup returns 0 there, Fetch
// kFailedPrecondition). Store() does not wait for the pools, but may block up to
// `connect_timeout_ms` per pool it is not connected to yet. `local` (RegisteredKv) must be
// registered with the node's transport.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "kvcache/block_pool.h"
#include "kvcache/kv_transfer.h"
#include "kvcache/pool_direct_reads.h"
#include "kvcache/pool_ring.h"
#include "service/rpc_node.h"

namespace strata::kvcache {

struct KvPoolClientOptions {
  int num_virtual_nodes = 128;  // ring points per pool
  // A lease outlives the reads it protects: at least this, and at least the call's deadline
  // plus a second.
  int64_t lease_ms = 10'000;
  int64_t connect_timeout_ms = 2'000;
  int64_t reconnect_backoff_ms = 1'000;
  // Store: how long after its deadline to wait for a pool's reply (the pool's reads are bounded
  // by the deadline; the reply still has to travel).
  int64_t store_reply_grace_ms = 2'000;
  std::string instance_id;  // who we are, for the pools' logs
  // Read blocks read before again straight from a same-host pool's memory, without a lease
  // (kvcache/pool_direct_reads.h), where the transport can map it.
  bool direct_reads = true;
};

class KvPoolClient {
 public:
  // `node` must outlive the client.
  KvPoolClient(service::RpcNode* node, std::vector<std::string> pool_addresses,
               KvPoolClientOptions options = {});
  ~KvPoolClient();

  int num_pools() const { return num_shards_; }
  // The pool (index into the address list) that owns `hash`; -1 without pools.
  int ShardOf(BlockHash hash) const { return ring_.ShardOf(hash); }

  // Number of leading `hashes` held by the pools.
  int Lookup(std::span<const BlockHash> hashes, transport::Deadline deadline);

  // Reads the blocks of the longest held prefix of `hashes` into `local_blocks` (token order;
  // at least hashes.size() of them): leases them, RMA-gets them through PlanBlockMoves, and
  // releases the leases. Blocks this client read before from a pool on its host are copied
  // from the pool's memory without a lease when all of them are still there unchanged
  // (options.direct_reads). Returns how many leading blocks were read: fewer than Lookup said when
  // blocks were evicted meanwhile or a pool failed. Errors: kInvalidArgument (too few local
  // blocks; a pool holding another layout or block size), kFailedPrecondition on the dispatch
  // thread. Blocks past the returned count may have been partly written.
  StatusOr<int> Fetch(std::span<const BlockHash> hashes, const RegisteredKv& local,
                      std::span<const BlockId> local_blocks, transport::Deadline deadline);

  // Offers full blocks `local_blocks` (token order) under `hashes`: each pool pulls its blocks
  // by RMA Get. `done` runs once, when every pool answered (or the deadline plus
  // store_reply_grace_ms passed): OK, or the first pool's error (pools that are down included).
  // Keep the blocks unchanged until then. It runs on the node's dispatch thread, or on the
  // caller's thread when nothing was sent (no pools, bad arguments, no pool reachable).
  void Store(std::vector<BlockHash> hashes, const RegisteredKv& local,
             std::vector<BlockId> local_blocks, transport::Deadline deadline,
             std::function<void(Status)> done);

 private:
  struct Shard {
    std::string address;
    transport::Deadline retry_after{};  // after a connection failure
    bool reported_bad = false;
  };
  // Shared with the reply callbacks of Store(), which may run after the client is gone.
  struct Health {
    std::mutex mu;
    std::vector<Shard> shards;
    void ReportFailure(int s, const Status& why);
    void ReportSuccess(int s);
  };
  // Per shard: the positions (indexes into the caller's hashes) it owns, in order.
  std::vector<std::vector<int>> Split(std::span<const BlockHash> hashes) const;
  // Fetch without leases (direct_): true when every block was read and is valid.
  bool ReadDirectly(std::span<const BlockHash> hashes,
                    const std::vector<std::vector<int>>& positions, const RegisteredKv& local,
                    std::span<const BlockId> local_blocks, transport::Deadline deadline);
  // The connected peer of shard `s`, or an error (backoff, connection failure).
  StatusOr<transport::PeerId> PeerOf(int s, transport::Deadline deadline);
  // Combines per-shard prefix lengths into the leading prefix of the whole chain.
  static int CombinePrefix(const std::vector<std::vector<int>>& positions,
                           const std::vector<int>& held, int total);

  service::RpcNode* node_;
  KvPoolClientOptions options_;
  PoolHashRing ring_;
  std::shared_ptr<Health> health_;
  int num_shards_ = 0;
  std::unique_ptr<PoolDirectReads> direct_;  // options.direct_reads
};

}  // namespace strata::kvcache
