#include "kvcache/pool_index.h"

#include <algorithm>

namespace strata::kvcache {

PoolIndex::PoolIndex(int64_t num_slots) : num_slots_(num_slots) {
  // Address space only: pages are touched as slots come into use.
  slots_.reserve(static_cast<size_t>(num_slots));
}

void PoolIndex::Touch(PoolSlot slot) {
  Slot& s = slots_[slot];
  if (s.state != State::kHeld || s.leases > 0) return;
  if (s.in_lru) lru_.erase(s.lru_pos);
  s.lru_pos = lru_.insert(lru_.end(), slot);
  s.in_lru = true;
}

int64_t PoolIndex::CountHeldPrefix(std::span<const BlockHash> hashes, bool touch) {
  int64_t n = 0;
  for (BlockHash h : hashes) {
    auto it = index_.find(h);
    if (it == index_.end() || slots_[it->second].state != State::kHeld) break;
    ++n;
  }
  if (touch) {
    for (int64_t i = n - 1; i >= 0; --i) Touch(index_.at(hashes[i]));
  }
  return n;
}

PoolIndex::ReserveOutcome PoolIndex::Reserve(BlockHash hash, PoolSlot* slot) {
  if (index_.count(hash) != 0) return ReserveOutcome::kAlreadyHeld;
  PoolSlot s;
  if (!free_.empty()) {  // given back, so below every slot never used
    s = free_.top();
    free_.pop();
  } else if (static_cast<int64_t>(slots_.size()) < num_slots_) {
    s = static_cast<PoolSlot>(slots_.size());
    slots_.emplace_back();
  } else if (!lru_.empty()) {
    s = lru_.front();
    lru_.pop_front();
    Slot& victim = slots_[s];
    victim.in_lru = false;
    index_.erase(victim.hash);
    --num_held_;
    ++evictions_;
  } else {
    return ReserveOutcome::kNoSpace;
  }
  Slot& fresh = slots_[s];
  fresh.state = State::kPending;
  fresh.hash = hash;
  fresh.leases = 0;
  index_[hash] = s;
  ++num_pending_;
  *slot = s;
  return ReserveOutcome::kReserved;
}

void PoolIndex::Publish(PoolSlot slot) {
  Slot& s = slots_[slot];
  if (s.state != State::kPending) return;
  s.state = State::kHeld;
  --num_pending_;
  ++num_held_;
  Touch(slot);
}

void PoolIndex::SortPending(std::span<const BlockHash> hashes, std::span<PoolSlot> slots) {
  std::sort(slots.begin(), slots.end());
  for (size_t i = 0; i < slots.size(); ++i) {
    slots_[slots[i]].hash = hashes[i];
    index_[hashes[i]] = slots[i];
  }
}

void PoolIndex::Abort(PoolSlot slot) {
  Slot& s = slots_[slot];
  if (s.state != State::kPending) return;
  index_.erase(s.hash);
  s.state = State::kFree;
  --num_pending_;
  free_.push(slot);
}

uint64_t PoolIndex::Lease(std::span<const BlockHash> hashes, transport::PeerId peer,
                          transport::Deadline expiry, std::vector<PoolSlot>* slots) {
  slots->clear();
  const int64_t n = CountHeldPrefix(hashes, /*touch=*/true);
  if (n == 0) return 0;
  LeaseEntry lease{peer, expiry, {}};
  for (int64_t i = 0; i < n; ++i) {
    const PoolSlot slot = index_.at(hashes[i]);
    Slot& s = slots_[slot];
    if (s.leases++ == 0) {
      ++num_leased_slots_;
      if (s.in_lru) {
        lru_.erase(s.lru_pos);
        s.in_lru = false;
      }
    }
    lease.slots.push_back(slot);
  }
  *slots = lease.slots;
  const uint64_t id = next_lease_id_++;
  leases_.emplace(id, std::move(lease));
  return id;
}

void PoolIndex::EndLease(std::unordered_map<uint64_t, LeaseEntry>::iterator it) {
  // Unpinned in reverse so that the chain's first block is the most recently used.
  const auto& held = it->second.slots;
  for (auto s = held.rbegin(); s != held.rend(); ++s) {
    if (--slots_[*s].leases == 0) {
      --num_leased_slots_;
      Touch(*s);
    }
  }
  leases_.erase(it);
}

bool PoolIndex::Release(uint64_t id, transport::PeerId peer) {
  auto it = leases_.find(id);
  if (it == leases_.end() || it->second.peer != peer) return false;
  EndLease(it);
  return true;
}

int64_t PoolIndex::DropLeasesOf(transport::PeerId peer) {
  int64_t n = 0;
  for (auto it = leases_.begin(); it != leases_.end();) {
    auto next = std::next(it);
    if (it->second.peer == peer) {
      EndLease(it);
      ++n;
    }
    it = next;
  }
  return n;
}

int64_t PoolIndex::ExpireLeases(transport::Deadline now, transport::Deadline* next_expiry) {
  int64_t n = 0;
  transport::Deadline next = transport::Deadline::max();
  for (auto it = leases_.begin(); it != leases_.end();) {
    auto after = std::next(it);
    if (it->second.expiry <= now) {
      EndLease(it);
      ++n;
    } else {
      next = std::min(next, it->second.expiry);
    }
    it = after;
  }
  if (next_expiry != nullptr) *next_expiry = next;
  return n;
}

PoolIndexCounts PoolIndex::counts() const {
  PoolIndexCounts c;
  c.num_slots = num_slots_;
  c.free = static_cast<int64_t>(free_.size()) + (num_slots_ - static_cast<int64_t>(slots_.size()));
  c.pending = num_pending_;
  c.held = num_held_;
  c.leased_slots = num_leased_slots_;
  c.active_leases = static_cast<int64_t>(leases_.size());
  c.evictions = evictions_;
  return c;
}

}  // namespace strata::kvcache
