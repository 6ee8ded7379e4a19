// The KV pool's bookkeeping (kvcache/pool_server.h), apart from memory and messages: which slot
// of the arena holds which block hash, least-recently-used eviction, and read leases.
//
// A slot is in exactly one state:
//   free       holds nothing
//   pending    reserved by a Put whose data is still arriving; not visible, not evictable
//   held       published under its hash; visible to lookups; evictable while no lease covers it
// A lease pins held slots for a reader: they are neither evicted nor reused until the lease is
// released, expires, or its peer fails. Hashes are write-once: a hash held or pending is not
// stored again.
// Thread-safety: none; the server calls it under its lock.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <queue>
#include <span>
#include <unordered_map>
#include <vector>

#include "kvcache/block_pool.h"
#include "transport/transport.h"

namespace strata::kvcache {

using PoolSlot = int64_t;

struct PoolIndexCounts {
  int64_t num_slots = 0;
  int64_t free = 0;
  int64_t pending = 0;
  int64_t held = 0;
  int64_t leased_slots = 0;  // held slots under at least one lease
  int64_t active_leases = 0;
  int64_t evictions = 0;
};

class PoolIndex {
 public:
  explicit PoolIndex(int64_t num_slots);

  // Number of leading `hashes` held. With `touch`, marks them recently used (the first block of
  // a chain most recently, so a chain is evicted from its tail).
  int64_t CountHeldPrefix(std::span<const BlockHash> hashes, bool touch);

  enum class ReserveOutcome { kReserved, kAlreadyHeld, kNoSpace };
  // A slot for a new block `hash` (pending until Publish/Abort): a free slot, else the least
  // recently used unleased held slot (evicted).
  ReserveOutcome Reserve(BlockHash hash, PoolSlot* slot);
  // The data of pending `slot` arrived: its hash becomes visible (most recently used).
  void Publish(PoolSlot slot);
  // The data of pending `slot` did not arrive: the slot is free again.
  void Abort(PoolSlot slot);
  // Rebinds the pending `slots` of `hashes` (same order) so that the slots rise with the hashes'
  // order, and sorts `slots` to match: a Put's consecutive blocks then land in ascending slots
  // (evicted slots come in any order) and their segments move as one transfer.
  void SortPending(std::span<const BlockHash> hashes, std::span<PoolSlot> slots);

  // Leases the longest held prefix of `hashes` for `peer` until `expiry`; its slots in order go
  // to `slots`. Returns the lease id, or 0 (no lease) when not even the first hash is held.
  uint64_t Lease(std::span<const BlockHash> hashes, transport::PeerId peer,
                 transport::Deadline expiry, std::vector<PoolSlot>* slots);
  // Ends lease `id` if `peer` holds it; false otherwise.
  bool Release(uint64_t id, transport::PeerId peer);
  // Ends every lease of `peer`; returns how many.
  int64_t DropLeasesOf(transport::PeerId peer);
  // Ends every lease whose expiry is at or before `now`; returns how many. `next_expiry` (when
  // given) becomes the earliest expiry of the leases left, or Deadline::max() when none is.
  int64_t ExpireLeases(transport::Deadline now, transport::Deadline* next_expiry = nullptr);

  PoolIndexCounts counts() const;
  BlockHash hash_of(PoolSlot slot) const { return slots_[slot].hash; }

 private:
  enum class State { kFree, kPending, kHeld };
  struct Slot {
    State state = State::kFree;
    BlockHash hash = 0;
    int32_t leases = 0;
    bool in_lru = false;
    std::list<PoolSlot>::iterator lru_pos;
  };
  struct LeaseEntry {
    transport::PeerId peer = 0;
    transport::Deadline expiry{};
    std::vector<PoolSlot> slots;
  };
  void Touch(PoolSlot slot);  // to the most recent end (held, unleased slots only)
  void EndLease(std::unordered_map<uint64_t, LeaseEntry>::iterator it);

  // Lowest free slot first, so a Put's blocks tend to get consecutive slots, whose segments
  // transfer as one: slots given back (free_), then the ones never used, in order. A pool of
  // millions of slots starts at once (the slots are only reserved; filling them all up front
  // took 0.5 s for 2.2 M slots on the development VM, under the server's lock).
  int64_t num_slots_;
  std::vector<Slot> slots_;  // the slots used so far; capacity num_slots_ (never reallocated)
  std::priority_queue<PoolSlot, std::vector<PoolSlot>, std::greater<>> free_;
  std::list<PoolSlot> lru_;                        // held, unleased; least recently used first
  std::unordered_map<BlockHash, PoolSlot> index_;  // held and pending
  std::unordered_map<uint64_t, LeaseEntry> leases_;
  uint64_t next_lease_id_ = 1;
  int64_t num_pending_ = 0;
  int64_t num_held_ = 0;
  int64_t num_leased_slots_ = 0;
  int64_t evictions_ = 0;
};

}  // namespace strata::kvcache
