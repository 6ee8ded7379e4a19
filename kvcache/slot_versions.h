// Lease-free reads of the KV pool by readers on its host (DESIGN.md §4, "KV pool"): the pool
// keeps one 64-bit version per slot in memory such readers map (Transport::MapRemote). A slot's
// version advances before the slot is written again (when a Put reserves it), never otherwise.
// A reader that learned a block's slot and version from a lease reply copies the block later
// straight from the mapped memory and then reads the version again: unchanged means no write
// began during or before the copy, so the copy is the block's (the optimistic reads of FaRM and
// Pilaf, a seqlock without an odd "being written" state because slots are write-once between
// reservations). Changed means the copy is garbage and the reader takes a lease instead.
//
// Ordering: the pool advances the version (sequentially consistent) before it hands the slot's
// transfers to the transport, whose thread or peer writes the bytes after; the reader copies, then
// reads the version with acquire ordering. This relies on the stores of one writer being seen in
// order by other cores (x86-64 and ARMv8 are multi-copy atomic).
#pragma once

#include <cstdint>
#include <memory>

#include "common/status.h"
#include "transport/transport.h"

namespace strata::kvcache {

class SlotVersions {
 public:
  // A zeroed table of `num_slots` versions in memory the transport allocates (UCX: shared memory
  // that same-host peers map).
  static StatusOr<std::unique_ptr<SlotVersions>> Create(transport::Transport& transport,
                                                        int64_t num_slots);

  // Before `slot` is written again.
  void Advance(int64_t slot) { __atomic_fetch_add(&words_[slot], 1, __ATOMIC_SEQ_CST); }
  uint64_t Get(int64_t slot) const { return __atomic_load_n(&words_[slot], __ATOMIC_ACQUIRE); }
  const transport::RemoteRegion& remote() const { return region_->remote(); }

  // The reader's side: the version of `slot` in a mapped table (after the copy it validates).
  static uint64_t Load(const uint8_t* table, int64_t slot) {
    __atomic_thread_fence(__ATOMIC_ACQUIRE);  // the copy's loads come first
    return __atomic_load_n(reinterpret_cast<const uint64_t*>(table) + slot, __ATOMIC_ACQUIRE);
  }

 private:
  explicit SlotVersions(std::unique_ptr<transport::Region> region)
      : region_(std::move(region)), words_(static_cast<uint64_t*>(region_->data())) {}
  std::unique_ptr<transport::Region> region_;
  uint64_t* words_;
};

}  // namespace strata::kvcache
